"""The architecture matrix: the models that ``tests/test_matrix.py`` runs every command on
and that ``bench/matrix.py`` tabulates for docs/guide/models.md, with random weights, at the smallest
sizes they allow. One definition of the list and of how each command is called, so that the
table and the test can never describe different runs.

Each model is built once with a fixed seed and described as featviz describes it (input
size, smallest input, fixed size, stages, default layers), then run small (:func:`shrink`):
a model that takes any size at the smallest size it takes (explain at the smallest that
leaves its layers a 2x2 grid), a fixed-size one built small where its library allows it
(timm's ``img_size``). A zero-initialized head gets random weights (:func:`unzero`) and
BatchNorm statistics are measured on the shipped photos (:func:`calibrate`), so that random
weights give activations that neither vanish nor explode; the units rendered are ones alive
at the start (:func:`alive_channels`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import featviz
from featviz.models.hooks import capture
from featviz.models.zoo import RandomWeightsWarning

STEPS = 3  # render steps: enough for the objective to rise, few enough for 20 models on 2 cores
LR = 0.02  # the renders' Adam learning rate: three small steps that raise the objective
SIZE = 32  # the smallest render, examples and Microscope size (px)
EXAMPLES = 8  # images of the shipped data
PHOTO = "skimage:chelsea"

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class TenClasses(nn.Module):
    """A classifier of one's own: 10 classes, four resolutions (32, 16, 8, 4 px at 64 px)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _block(3, 8)
        self.stage1 = _block(8, 16)
        self.stage2 = _block(16, 32)
        self.stage3 = _block(32, 64)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.head(self.pool(x).flatten(1))


@dataclass(frozen=True)
class Case:
    """One model of the matrix: the name :func:`featviz.load_model` takes (``custom`` for
    :class:`TenClasses`), what goes to the library's factory, and how featviz must describe
    it: ``expect`` is its input size and whether it takes that size only."""

    name: str
    expect: tuple[int, bool]
    kwargs: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def library(self) -> str:
        return self.name.partition(":")[0] if ":" in self.name else "nn.Module"

    @property
    def id(self) -> str:
        return self.name.partition(":")[2] or self.name


ANY, FIXED = False, True  # takes any size from its smallest up / takes its input size only

CASES: list[Case] = [
    Case("torchvision:resnet18", (224, ANY)),
    Case("timm:resnet50", (224, ANY)),
    Case("timm:resnetv2_50", (224, ANY)),
    Case("torchvision:vgg16", (224, ANY)),
    Case("torchvision:alexnet", (224, ANY)),
    Case("torchvision:googlenet", (224, ANY)),
    Case("torchvision:inception_v3", (299, ANY)),
    Case("torchvision:densenet121", (224, ANY)),
    Case("timm:mobilenetv3_small_100", (224, ANY)),
    Case("torchvision:regnet_y_400mf", (224, ANY)),
    Case("timm:efficientnet_b0", (224, ANY)),
    Case("timm:convnext_atto", (224, ANY)),
    Case("timm:vit_tiny_patch16_224", (64, FIXED), {"img_size": 64}),
    Case("timm:deit_tiny_distilled_patch16_224", (64, FIXED), {"img_size": 64}, "class + distillation tokens"),
    Case("timm:vit_small_patch14_reg4_dinov2", (56, FIXED), {"img_size": 56, "num_classes": 1000}, "4 registers"),
    Case("timm:vit_xsmall_patch16_clip_224", (64, FIXED), {"img_size": 64, "num_classes": 1000}, "CLIP tower + head"),
    Case("timm:swin_tiny_patch4_window7_224", (56, FIXED), {"img_size": 56}),
    Case("timm:mixer_s16_224", (64, FIXED), {"img_size": 64}),
    Case("timm:levit_128s", (128, FIXED), {"img_size": 128}),
    Case("custom", (64, ANY), note="10 classes, labels list"),
]


def load(case: Case) -> featviz.ModelAdapter:
    """The model of ``case`` as featviz describes it (random weights, seed 0)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torchvision: GoogLeNet's and Inception's init will change
        if case.name == "custom":
            return featviz.load_model(TenClasses().eval(), input_size=64, labels=CIFAR10)
        return featviz.load_model(case.name, **case.kwargs)


def describe(adapter: featviz.ModelAdapter) -> dict[str, Any]:
    """What featviz says of the model before it runs anything: sizes, stages, default layers."""
    from featviz.analysis.attribution import default_layers as explain_layers
    from featviz.microscope.build import default_layers as microscope_layers
    from featviz.models.layers import stages

    out: dict[str, Any] = {
        "input_size": adapter.input_size,
        "min_size": adapter.min_size,
        "fixed_size": adapter.fixed_size,
        "classes": len(adapter.labels) if adapter.labels is not None else None,
        "stages": stages(adapter),
    }
    try:
        out["microscope_layers"] = microscope_layers(adapter)
    except featviz.FeatvizError as err:
        out["microscope_layers"], out["microscope_layers_error"] = [], str(err)
    try:
        out["explain_layers"] = list(explain_layers(adapter))
    except featviz.FeatvizError as err:
        out["explain_layers"], out["explain_layers_error"] = [], str(err)
    layers = dict.fromkeys(out["microscope_layers"] + out["explain_layers"])
    out["layouts"] = {n: adapter.layout(n).kind for n in layers}
    return out


def shrink(adapter: featviz.ModelAdapter, info: dict[str, Any]) -> tuple[featviz.ModelAdapter, int, int]:
    """The model as the matrix runs it, and its two sizes: renders, examples and the Microscope
    at the smallest size it takes (at least ``SIZE``); explain, which feeds the photo at the
    model's ``input_size``, at the smallest size that leaves its layers a grid of 2x2 or more,
    so the model is given that ``input_size`` (everything else as described). A fixed-size
    model keeps its own size for both."""
    from featviz.models.layers import output_shape

    if adapter.fixed_size:
        return adapter, adapter.input_size, adapter.input_size
    small = max(SIZE, adapter.min_size)
    side = small
    layers = [n for n in info["explain_layers"] if info["layouts"][n] in ("NCHW", "NHWC")]
    while side < adapter.input_size and any(min(output_shape(adapter, n, side)[1:]) < 2 for n in layers):
        side += 8
    same = {k: getattr(adapter, k) for k in ("mean", "std", "min_size", "labels", "name", "trained", "fixed_size")}
    return (
        featviz.ModelAdapter(adapter.module, input_size=side, prefix_tokens=adapter.prefix_tokens, **same),
        small,
        side,
    )


def unit_layer(info: dict[str, Any]) -> str:
    """The layer the matrix renders and builds a Microscope of: the middle default layer."""
    layers = info["microscope_layers"] or info["stages"]
    return layers[len(layers) // 2]


@torch.no_grad()
def unzero(adapter: featviz.ModelAdapter) -> None:
    """A linear layer that its library initializes to zero gets random weights: timm's Mixer
    head gives every image logits of 0, with nothing to render, explain or reach."""
    for m in adapter.module.modules():
        if isinstance(m, nn.Linear) and not m.weight.any():
            nn.init.trunc_normal_(m.weight, std=0.02)


@torch.no_grad()
def calibrate(adapter: featviz.ModelAdapter) -> None:
    """BatchNorm statistics measured on the shipped photos at the model's input size (weights
    untouched). A fresh BatchNorm's running statistics (mean 0, variance 1) can leave nothing
    of a random network's signal: torchvision's GoogLeNet gives logits that no input moves in
    the 8th digit, its Inception-v3 logits of a million."""
    from featviz.data.photos import natural_images, resize

    norms = [m for m in adapter.module.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if not norms:
        return
    photos = torch.stack([resize(p, adapter.input_size) for p in natural_images().values()])
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: one batch gives its own statistics
        m.train()
    try:
        adapter(photos.to(adapter.device))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
            m.eval()


def positions(adapter: featviz.ModelAdapter, layer: str, act: torch.Tensor) -> torch.Tensor:
    """A layer's raw output as ``[B, positions, channels]``, read where its layout keeps the
    channels (a Swin stage's last axis, a ViT's patch tokens without class or registers)."""
    kind = adapter.layout(layer).kind
    if kind == "NCHW":
        return act.flatten(2).transpose(1, 2)
    if kind == "NHWC":
        return act.flatten(1, 2)
    if kind == "tokens":
        return act[:, adapter.prefix_tokens or 0 :]
    raise AssertionError(f"{layer} of {adapter.name} is {kind}: no channels to read")


@torch.no_grad()
def alive_channels(adapter: featviz.ModelAdapter, layer: str, size: int) -> tuple[int, int]:
    """The channel and the neuron's channel the matrix renders: the first channel from 0 on
    that is above 0 somewhere for a grey ``size`` px image, and the first from 1 on that is above 0
    everywhere (so at the centre); 0 and 1 when none is. A unit behind a ReLU that starts dead
    gets no gradient, and random weights kill many (channel 0 of AlexNet's ``features.11``);
    redirecting ReLU gradients does not reach a unit whose layer is the ReLU itself."""
    grey = torch.full((1, 3, size, size), 0.5, device=adapter.device)
    with capture(adapter, [layer]) as cap:
        act = positions(adapter, layer, cap(grey)[layer])[0]  # [positions, channels]
    some = [c for c in range(act.shape[1]) if act[:, c].amax() > 0]
    every = [c for c in range(1, act.shape[1]) if act[:, c].amin() > 0]
    return (some[0] if some else 0), (every[0] if every else 1)


@dataclass
class Prepared:
    """A case built, described and made ready to run: the sizes and units the matrix uses."""

    case: Case
    adapter: featviz.ModelAdapter
    info: dict[str, Any]  # the description, before the matrix lowers the size
    size: int  # renders, examples, the Microscope
    side: int  # explain's photo
    layer: str
    channel: str  # ``LAYER:C``, C from :func:`alive_channels`
    neuron: str  # ``LAYER:C@``, the neuron at the centre of a channel, from :func:`alive_channels`


def prepare(case: Case) -> Prepared:
    adapter = load(case)
    unzero(adapter)  # before the description: explain's default layers are those the logits reach
    info = describe(adapter)
    adapter, size, side = shrink(adapter, info)
    calibrate(adapter)
    layer = unit_layer(info)
    channel, neuron = alive_channels(adapter, layer, size)
    return Prepared(case, adapter, info, size, side, layer, f"{layer}:{channel}", f"{layer}:{neuron}@")


def render(adapter: featviz.ModelAdapter, unit: str, size: int) -> featviz.RenderResult:
    """``STEPS`` steps of the default recipe without its random transforms, so that the curve's
    first value is the objective of the starting image and the final score is comparable.
    Adam at ``LR`` (the recipe's 0.05 overshoots: ShuffleNet's neuron ends below its start)
    and ReLU gradients redirected throughout, so that a neuron a step pushes into a dead ReLU
    comes back (timm's ResNet-50 ``layer2:1@`` at 0.05)."""
    from featviz.optvis.transforms import Compose

    return featviz.render(
        adapter, unit, steps=STEPS, size=size, lr=LR, transforms=Compose(), redirect_relu=STEPS, progress=False
    )


def examples(adapter: featviz.ModelAdapter, layer: str, size: int) -> featviz.ExamplesResult:
    return featviz.examples(adapter, layer, k=2, limit=EXAMPLES, batch=EXAMPLES, size=size, progress=False)


def microscope(adapter: featviz.ModelAdapter, layer: str, out: Path, size: int) -> Any:
    """A Microscope of the first two units of ``layer``."""
    from featviz.microscope import build

    small = {"units_per_layer": 2, "batch": 2, "steps": STEPS, "k": 2, "examples_limit": EXAMPLES}
    return build(adapter, out, layers=[layer], size=size, progress=False, **small)


def explain(adapter: featviz.ModelAdapter, size: int) -> featviz.Explanation:
    """The explanation of chelsea (at the model's ``input_size``) with the 3 top channels each
    way and their visualizations, ``size`` px; its random baselines cut down
    (:func:`fewer_draws`)."""
    with fewer_draws():
        return featviz.explain(adapter, PHOTO, top=3, size=size, steps=STEPS)


#: explain's baselines, cut down for the matrix: the same code on fewer random channel sets,
#: random deletion orders and deletion steps (about half of an explanation's forward passes).
SMALL_EXPLAIN = {"RANDOM_DRAWS": 8, "RANDOM_ORDERS": 1, "DELETION_STEPS": 4}


@contextmanager
def fewer_draws() -> Iterator[None]:
    """:data:`SMALL_EXPLAIN` set in ``featviz.explain.core`` for the block (those of its names
    that it still has), then restored."""
    core = sys.modules["featviz.explain.core"]  # ``featviz.explain`` the attribute is the function
    saved = {k: getattr(core, k) for k in SMALL_EXPLAIN if hasattr(core, k)}
    try:
        for k in saved:
            setattr(core, k, SMALL_EXPLAIN[k])
        yield
    finally:
        for k, v in saved.items():
            setattr(core, k, v)

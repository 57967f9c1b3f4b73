"""Model inspection: every layer with its output shape (what ``featviz layers`` prints)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from featviz.models.adapter import PSEUDO_LAYERS, ModelAdapter
from featviz.models.layout import NCHW, NHWC, TOKENS


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    shape: tuple[int, ...]  # output shape for one image, without the batch dimension
    channels: int | None
    layout: str = ""  # NCHW, NHWC, tokens, vector or other

    @property
    def depth(self) -> int:
        return self.name.count(".")


def stages(adapter: ModelAdapter) -> list[str]:
    """The model's stages, in order: the layers its library names (timm's ``feature_info``,
    which featviz's own Lite models carry too: ``blocks.0`` ... ``blocks.6``), else found by
    looking (:func:`stages_by_looking`).

    >>> import featviz
    >>> stages(featviz.load_model())[:2]
    ['blocks.0', 'blocks.1']
    """
    info = getattr(adapter.module, "feature_info", None)
    if isinstance(info, list):
        names = [str(f.get("module", "")) for f in info if isinstance(f, dict)]
        known = set(adapter.layers())
        found = [n for n in dict.fromkeys(names) if n in known]
        if found:
            return found
    return stages_by_looking(adapter)


_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Identity)


def stages_by_looking(adapter: ModelAdapter) -> list[str]:
    """Stages of a model its library does not describe: the model's top-level modules (a
    container holding most of the model, such as VGG's ``features`` or a ViT's ``encoder.layers``,
    opened), and of these the last to run at each resolution (ResNet: ``relu``, ``layer1`` ...
    ``layer4``; GoogLeNet: ``inception3b``, ``inception4e``, ``inception5b``); where all run at
    one resolution (a transformer's blocks), each block of the opened container."""
    modules = dict(adapter.module.named_modules())
    found = adapter.layouts()
    order = {name: i for i, name in enumerate(found)}
    sequence, opened = [n for n, _ in adapter.module.named_children()], ""
    while True:
        weight = {n: sum(1 for m in modules if m == n or m.startswith(n + ".")) for n in sequence}
        big = [n for n in sequence if weight[n] > 0.6 * sum(weight.values())]
        children = [f"{big[0]}.{c}" for c, _ in modules[big[0]].named_children()] if len(big) == 1 else []
        if not children:
            break
        at = sequence.index(big[0])
        sequence, opened = sequence[:at] + children + sequence[at + 1 :], big[0]
    runs = [n for n in sequence if n in order and not isinstance(modules[n], _POOLS) and _where(found[n]) is not None]
    runs.sort(key=order.__getitem__)
    inside = [n for n in runs if n.startswith(opened + ".")] if opened else []
    if len(inside) > 1 and len({_where(found[n]) for n in inside}) == 1:  # a transformer's blocks
        return inside
    groups: dict[Any, list[str]] = {}
    for name in runs:  # the resolutions in the order they come (each one once: a trunk narrows)
        groups.setdefault(_where(found[name]), []).append(name)
    # at each resolution the last module of the opened container (not a norm or permutation after it)
    return [([n for n in names if n in inside] or names)[-1] for names in groups.values()]


def _where(layout: Any) -> tuple[Any, ...] | None:
    """What a layer's resolution is (its grid, or its token count); ``None`` when it has none."""
    if layout.kind in (NCHW, NHWC):
        grid = tuple(layout.shape[:2]) if layout.kind == NHWC else tuple(layout.shape[1:])
        return grid if grid != (1, 1) else None
    if layout.kind == TOKENS:
        return ("tokens", layout.shape[0])
    return None


def layer_table(adapter: ModelAdapter, size: int | None = None) -> list[LayerInfo]:
    """Run one grey image through the model and record each module's output shape, layout
    (NCHW, NHWC, tokens, vector: :mod:`featviz.models.layout`) and channel count."""
    from featviz.models.layout import layouts

    size = size or adapter.input_size
    adapter.check_size(size, size)
    module = adapter.module
    found = layouts(module, adapter.normalize(torch.full((1, 3, size, size), 0.5, device=adapter.device)))
    return [
        LayerInfo(n, type(m).__name__, found[n].shape, found[n].channels, found[n].kind)
        for n, m in module.named_modules()
        if n in found
    ]


@torch.no_grad()
def output_shape(adapter: ModelAdapter, layer: str, size: int | None = None) -> tuple[int, ...]:
    """The output shape of one layer for one image of ``size`` pixels (batch left out) as
    featviz reads it: channels first (``[C, H, W]``; a channels-last map such as a Swin
    stage's ``[H, W, C]`` is given as ``[C, H, W]``), tokens as ``[T, C]``; ``logits`` is the
    model's output. A forward stopped right after that layer.

    >>> import featviz
    >>> output_shape(featviz.load_model(), "blocks.5", 224)
    (192, 7, 7)
    """
    from featviz.models.hooks import capture

    name = adapter.layer_name(layer)
    size = adapter.input_size if adapter.fixed_size or size is None else max(size, adapter.min_size)
    with capture(adapter, [name]) as cap:
        act = cap(torch.full((1, 3, size, size), 0.5, device=adapter.device))[name]
    shape = tuple(act.shape[1:])
    if len(shape) == 3 and name not in PSEUDO_LAYERS and adapter.layout(name).kind == NHWC:
        return (shape[2], shape[0], shape[1])
    return shape

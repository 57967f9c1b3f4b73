"""Why did the model say this about my photo? From a prediction back to the channels and the
small circuit that caused it, each channel with its feature visualization, and a check that
the attribution is faithful.

Attribution comes from captum: layer Grad-CAM and integrated gradients for *where* in the
photo, gradient x activation of a layer (summed over space) for *which channels*, and the
same, taken on an earlier layer for each top channel, for *what feeds them*. The
visualizations of both layers' channels are one batch of the render loop (or are taken
from a Microscope catalog). The faithfulness check ablates the top channels and compares
the logit's drop with that of random channels of the same layer, and deletes the photo's
regions in the map's order against a random order. Beside the channels, the neuron groups
of both layers (:mod:`featviz.analysis.groups`: NMF of the activation on the photo), each
group's share of the score, the grid of how the earlier groups feed the later ones, and the
removal of the top group against random group-sized directions; their visualizations join
the channels' batch. A model with random weights says so in
every output (``Explanation.weights``): its checks describe a random network, not a trained one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from featviz.analysis.attribution import (
    channel_inputs,
    class_score,
    default_layers,
    layer_gradients,
    maps,
    spatial,
)
from featviz.analysis.groups import (
    GroupGrid,
    LayerGroups,
    ablate_top,
    check_k,
    direction_objectives,
    group_grid,
    layer_groups,
)
from featviz.data.photos import load_image, natural_images, resize
from featviz.errors import FeatvizError
from featviz.models import ModelAdapter, load_model, place
from featviz.models.grids import from_grid, grid_shape, to_grid
from featviz.models.hooks import capture, eval_mode, intervene
from featviz.models.layers import stages
from featviz.optvis.objectives import Objective, as_grid

GROUPS = 4  # neuron groups per layer when not asked
RANDOM_DRAWS = 50  # random k-channel sets each ablation of the top k is compared with
#: How a channel is taken out of the layer (see :func:`_ablation`); the verdict reads "mean".
ABLATIONS = ("mean", "zero", "image_mean")
VERDICT = "mean"
DELETION_STEPS = 16
DELETION_GRID = 14  # the photo is deleted in DELETION_GRID x DELETION_GRID regions
RANDOM_ORDERS = 4
FEEDERS = 3  # channels of the earlier layer kept per circuit channel
CIRCUIT = 4  # top channels whose feeders are traced


@dataclass
class Channel:
    """A channel of a layer and what the explanation says of it."""

    layer: str
    channel: int
    contribution: float  # its share of the class logit (or of the logit difference)
    activation: torch.Tensor  # [h, w] on the photo
    image: torch.Tensor | None = None  # its feature visualization, [3, S, S]
    examples: Path | None = None  # its top dataset examples (a Microscope's strip)
    source: str = "rendered"  # or "microscope"

    @property
    def unit(self) -> str:
        return f"{self.layer}:{self.channel}"


@dataclass
class NeuronGroups:
    """The neuron groups of the explained layer and of the earlier one on the photo, the grid
    of how the earlier groups feed the later ones, and the removal of the later layer's top
    group (:func:`~featviz.analysis.groups.ablate_top`: the headline keys compare it with
    random permutations of its direction on its map)."""

    layer: LayerGroups
    earlier: LayerGroups
    grid: GroupGrid
    ablation: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The numbers (no images) for a JSON sidecar."""
        return {
            "layer": self.layer.to_dict(),
            "earlier": self.earlier.to_dict(),
            "grid": self.grid.to_dict(),
            "ablation": self.ablation,
        }


@dataclass
class Explanation:
    """Everything a report shows, as values (see :func:`explain`)."""

    model: str
    photo: torch.Tensor  # [3, H, W] as the model saw it
    source: str
    top: list[tuple[int, str, float]]  # top-5 (index, name, probability)
    target: tuple[int, str]
    versus: tuple[int, str] | None  # "why target rather than versus": the top class
    layer: str
    earlier: str
    gradcam: torch.Tensor  # [H, W], >= 0
    integrated: torch.Tensor  # [H, W], |IG| summed over colour
    positive: list[Channel]
    negative: list[Channel]
    feeders: list[Channel]
    circuit: list[tuple[int, int, float]]  # (earlier channel, layer channel, weight)
    ablation: dict[str, Any]
    deletion: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)  # {"trained": ..., "warning": ...} (weights_fields)
    groups: NeuronGroups | None = None  # None when explained with groups=0

    @property
    def warning(self) -> str | None:
        """The sentence every output shows when the model's weights are random, else ``None``."""
        return self.weights.get("warning")

    def __repr__(self) -> str:
        a = self.ablation
        return (
            f"Explanation({self.model}: {self.target[1]!r} ({self.target[0]}), {self.layer} top {len(self.positive)}: "
            f"{a['method']} ablation drops {a['top_drop']:.2f} vs random {a['random_mean']:.2f} "
            f"+- {a['random_std']:.2f})"
        )


def explain(
    model: str | ModelAdapter | Any,
    image: str | Path | torch.Tensor,
    *,
    target: int | str | None = None,
    layer: str | None = None,
    earlier: str | None = None,
    top: int = 8,
    groups: int | None = None,
    size: int = 128,
    steps: int | None = None,
    seed: int = 0,
    microscope: str | Path | None = None,
    render_images: bool = True,
    device: str | torch.device = "auto",
    progress: bool = False,
    source: str | None = None,
    reference: torch.Tensor | None = None,
) -> Explanation:
    """Explain the model's prediction on ``image`` (a file, ``skimage:NAME`` or a ``[3, H, W]``
    tensor in [0, 1]): the class ``target`` (default: the top class; another class is
    explained against the top one), the ``top`` channels of ``layer`` for and against it,
    their feeders in ``earlier``, and the faithfulness checks. Visualizations are ``size`` px
    renders of the microscope recipe (``steps`` overrides it), taken from the Microscope
    folder ``microscope`` where it has them; ``render_images=False`` skips them. ``source``
    names the image in the report when a tensor is passed. ``reference`` (``[N, 3, H, W]``
    in [0, 1]; default: the photos shipped with scikit-image and scikit-learn) gives each
    channel the mean value that replaces it in the ablation the verdict reads. ``groups``
    neuron groups of ``layer`` and of ``earlier`` (:class:`NeuronGroups`; 0: none, and none
    of their cost; ``None``: 4, fewer when a layer has fewer channels) are found on the
    photo, attributed, linked by their grid and rendered in the channels' batch."""
    from featviz.optvis.record import weights_fields

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    adapter = load_model(model)
    place(adapter, model, device)
    if adapter.labels is None:
        raise FeatvizError(f"{adapter.name} has no class names: explain needs a classifier with labels")
    if top < 1:
        raise FeatvizError(f"expected --top of at least 1, got {top}")
    layer = adapter.layer_name(layer or default_layers(adapter)[0])
    shape = spatial(adapter, layer, "layer")
    earlier = adapter.layer_name(earlier or _before(adapter, layer))
    shape_earlier = spatial(adapter, earlier, "earlier layer")
    if groups is None:  # the default: as many as both layers allow, up to GROUPS
        groups = min(GROUPS, *(c for c, _, _ in (shape, shape_earlier)), *(h * w for _, h, w in (shape, shape_earlier)))
    if groups < 0:
        raise FeatvizError(f"expected --groups of at least 0 (0: none), got {groups}")
    if groups:
        for name, (c, h, w) in ((layer, shape), (earlier, shape_earlier)):
            check_k(groups, c, h * w, name="--groups", layer=name)
    wanted = adapter.class_index(target) if target is not None else None
    photo = resize(image if isinstance(image, torch.Tensor) else load_image(image), adapter.input_size)
    x = photo[None].to(adapter.device)
    ranked = adapter.predict(x, k=5)[0]  # fewer when the model has fewer classes
    best = ranked[0][0]
    cls = best if wanted is None else wanted
    versus = None if cls == best else (best, ranked[0][1])
    score = class_score(adapter, cls, versus[0] if versus else None)
    times["predict"] = time.perf_counter() - t0

    t = time.perf_counter()
    grads, acts = layer_gradients(adapter, x, layer, score)
    gradcam, integrated = maps(x, grads, acts, score)
    times["maps"] = time.perf_counter() - t
    t = time.perf_counter()
    contrib, acts = (grads * acts)[0].sum((1, 2)).cpu(), acts[0].cpu()  # gradient x activation per channel
    k = min(top, contrib.numel())
    pos = contrib.topk(k).indices.tolist()
    neg = (-contrib).topk(k).indices.tolist()
    positive = [Channel(layer, c, float(contrib[c]), acts[c]) for c in pos]
    negative = [Channel(layer, c, float(contrib[c]), acts[c]) for c in neg]
    circuit, feeders = _circuit(adapter, x, layer, earlier, pos[: min(CIRCUIT, k)])
    times["channels"] = time.perf_counter() - t
    t = time.perf_counter()
    ablation = _ablation(adapter, x, layer, pos, score, seed, _reference_mean(adapter, layer, reference))
    deletion = _deletion(adapter, x, {"Grad-CAM": gradcam, "integrated gradients": integrated}, cls, seed)
    times["faithfulness"] = time.perf_counter() - t
    found = None
    if groups:
        t = time.perf_counter()
        found = _groups(adapter, x, layer, earlier, grads[0], acts, score, groups, seed)
        times["groups"] = time.perf_counter() - t
    t = time.perf_counter()
    if render_images:
        _visualize(adapter, [*positive, *negative, *feeders], microscope, size, steps, seed, progress, found)
    times["visualizations"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    return Explanation(
        model=adapter.name,
        photo=photo,
        source=source or (str(image) if not isinstance(image, torch.Tensor) else "tensor"),
        top=ranked,
        target=(cls, adapter.labels.name(cls)),
        versus=versus,
        layer=layer,
        earlier=earlier,
        gradcam=gradcam,
        integrated=integrated,
        positive=positive,
        negative=negative,
        feeders=feeders,
        circuit=circuit,
        ablation=ablation,
        deletion=deletion,
        settings={
            "top": top,
            "groups": groups,
            "size": size,
            "steps": steps,
            "seed": seed,
            "microscope": str(microscope or ""),
            "reference": "the photos shipped with scikit-image and scikit-learn" if reference is None else "given",
        },
        seconds=times,
        weights=weights_fields(adapter),
        groups=found,
    )


def _before(adapter: ModelAdapter, layer: str) -> str:
    """The stage before ``layer``; for a layer that is not a numbered stage, the default
    earlier layer."""
    found = stages(adapter)
    if layer in found and found.index(layer) > 0:
        return found[found.index(layer) - 1]
    return default_layers(adapter)[1]


def _circuit(
    adapter: ModelAdapter, x: torch.Tensor, layer: str, earlier: str, channels: list[int]
) -> tuple[list[tuple[int, int, float]], list[Channel]]:
    """For each channel of ``layer``, the channels of ``earlier`` that drive it most on this
    photo (:func:`~featviz.analysis.attribution.channel_inputs`)."""
    weights = channel_inputs(adapter, x, layer, earlier, channels)  # [len(channels), C_earlier]
    with torch.no_grad(), eval_mode(adapter), capture(adapter, [earlier]) as cap:
        acts = as_grid(cap(x), earlier)[0].detach().cpu()
    edges, chosen = [], []
    for row, c in zip(weights, channels, strict=True):
        for j in row.topk(min(FEEDERS, row.numel())).indices.tolist():
            edges.append((j, c, float(row[j])))
            if j not in chosen:
                chosen.append(j)
    total = weights.sum(0)
    return edges, [Channel(earlier, j, float(total[j]), acts[j]) for j in chosen]


def _groups(
    adapter: ModelAdapter,
    x: torch.Tensor,
    layer: str,
    earlier: str,
    grads: torch.Tensor,
    acts: torch.Tensor,
    score: Any,
    k: int,
    seed: int,
) -> NeuronGroups:
    """The ``k`` groups of ``layer`` (from its gradient and activation, ``[C, h, w]`` each)
    and of ``earlier`` on the photo, attributed to the explained score, the grid between them
    and the removal of the top group of ``layer``."""
    later = layer_groups(layer, grads, acts, k, seed)
    grads_earlier, acts_earlier = layer_gradients(adapter, x, earlier, score)
    before = layer_groups(earlier, grads_earlier[0], acts_earlier[0], k, seed)
    grid = group_grid(adapter, x, later, before)
    return NeuronGroups(later, before, grid, ablate_top(adapter, x, later, score, seed))


def _reference_mean(adapter: ModelAdapter, layer: str, reference: torch.Tensor | None) -> dict[str, Any]:
    """Each channel's mean activation of ``layer`` over the reference photos (all positions
    of all photos), ``[C, 1, 1]``, with how many photos it averages."""
    if reference is None:
        reference = torch.stack([resize(p, adapter.input_size) for p in natural_images().values()])
    elif reference.dim() != 4 or reference.shape[1] != 3 or len(reference) == 0:
        raise FeatvizError(f"expected reference images [N, 3, H, W] with N >= 1, got {tuple(reference.shape)}")
    else:
        reference = resize(reference, adapter.input_size)
    with torch.no_grad(), capture(adapter, [layer]) as cap:
        acts = torch.cat([as_grid(cap(b.to(adapter.device)), layer) for b in reference.split(16)])
    return {"mean": acts.mean((0, 2, 3))[:, None, None], "photos": len(reference)}


def _ablation(
    adapter: ModelAdapter,
    x: torch.Tensor,
    layer: str,
    channels: list[int],
    score: Any,
    seed: int,
    reference: dict[str, Any],
) -> dict[str, Any]:
    """The drop of the explained score when the top channels are taken out of ``layer``,
    beside the drops for the same ``RANDOM_DRAWS`` random channel sets of the same size, in
    three ways (one batched forward each, one ablation per row):

    - ``mean``: each channel set to its mean over the reference photos. This is the verdict's
      ablation: the value is one the channel typically takes (its activations stay on their
      distribution) and it carries nothing about this photo.
    - ``zero``: each channel set to 0, which is off the distribution wherever a channel's
      typical value is not near 0 (after a ReLU, or a BatchNorm with a shift).
    - ``image_mean``: each channel set to its own mean over this photo. On distribution too,
      but it keeps how strongly the channel fires on this photo and removes only *where*: a
      head that pools (global average, after 1x1 convolutions) still gets most of what the
      channel says, exactly all of it when no nonlinearity comes between. Its drop measures
      the spatial pattern, not the channel, so the verdict does not read it.

    The headline keys (``top_drop``, ``random_mean``, ``random_std``, ``random_drops``,
    ``ratio``) and ``holds`` are those of ``method`` ("mean"); each way has its own dict."""
    n = grid_shape(adapter, layer)[0]
    gen = torch.Generator().manual_seed(seed)
    sets = [channels] + [torch.randperm(n, generator=gen)[: len(channels)].tolist() for _ in range(RANDOM_DRAWS)]
    mask = torch.zeros(len(sets), n, 1, 1, dtype=torch.bool)
    for i, chosen in enumerate(sets):
        mask[i, chosen] = True
    mask = mask.to(adapter.device)
    ref = reference["mean"].to(adapter.device)
    fills: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "mean": lambda act: ref.expand_as(act),
        "zero": torch.zeros_like,
        "image_mean": lambda act: act.mean((2, 3), keepdim=True).expand_as(act),
    }
    with torch.no_grad(), eval_mode(adapter):
        whole = float(score(x)[0])
    out: dict[str, Any] = {"k": len(channels), "draws": RANDOM_DRAWS, "layer": layer, "score": whole}
    out.update(method=VERDICT, reference_photos=reference["photos"])
    for how in ABLATIONS:

        def change(act: torch.Tensor, fill: Callable[[torch.Tensor], torch.Tensor] = fills[how]) -> torch.Tensor:
            grid = to_grid(adapter, layer, act)  # the layer's own layout on the way back
            return from_grid(adapter, layer, act, torch.where(mask, fill(grid), grid))

        with torch.no_grad(), intervene(adapter, layer, change):
            drops = whole - score(x.repeat(len(sets), 1, 1, 1)).cpu()
        out[how] = _drops(drops)
    out.update(out[VERDICT])
    out["holds"] = out["top_drop"] >= 2 * out["random_mean"] and out["top_drop"] > 0
    return out


def _drops(drops: torch.Tensor) -> dict[str, Any]:
    """The top set's drop (row 0) against the random sets' (the other rows)."""
    top, rand = float(drops[0]), drops[1:]
    mean = float(rand.mean())
    return {
        "top_drop": top,
        "random_mean": mean,
        "random_std": float(rand.std()),
        "random_drops": [round(float(d), 4) for d in rand],
        "ratio": top / mean if mean > 1e-6 else None,  # None: random sets do not lower the score
    }


def _deletion(
    adapter: ModelAdapter, x: torch.Tensor, maps: dict[str, torch.Tensor], cls: int, seed: int
) -> dict[str, Any]:
    """Deletion curves: the photo's regions replaced by a heavily blurred copy, in the order of
    each map (most attributed first) against random orders, the class probability after each
    step; the area under a curve is its mean (lower: the map found what matters sooner).
    Blur, not black, because scattered black squares alone wreck a prediction (edges the
    model never saw), which would flatter the random order."""
    from torchvision.transforms.functional import gaussian_blur

    g = DELETION_GRID
    h, w = x.shape[-2:]
    blurred = gaussian_blur(x, [51, 51], [16.0, 16.0])
    gen = torch.Generator().manual_seed(seed)
    orders = {n: F.adaptive_avg_pool2d(m[None, None], g).flatten().argsort(descending=True) for n, m in maps.items()}
    randoms = [torch.randperm(g * g, generator=gen) for _ in range(RANDOM_ORDERS)]
    fractions = [i / DELETION_STEPS for i in range(DELETION_STEPS + 1)]
    curves: dict[str, list[float]] = {}
    for name, order in [*orders.items(), *((f"random {i}", o) for i, o in enumerate(randoms))]:
        batch = []
        for f in fractions:
            keep = torch.ones(g * g)
            keep[order[: round(f * g * g)]] = 0
            region = F.interpolate(keep.view(1, 1, g, g), size=(h, w), mode="nearest").to(x.device)
            batch.append(x[0] * region[0] + blurred[0] * (1 - region[0]))
        with torch.no_grad(), eval_mode(adapter):
            logits = adapter(torch.stack(batch))
        curves[name] = [round(float(p), 5) for p in logits.softmax(-1)[:, cls]]
    random_mean = torch.tensor([curves[f"random {i}"] for i in range(RANDOM_ORDERS)]).mean(0).tolist()
    result: dict[str, Any] = {"fractions": fractions, "fill": "blur", "random": random_mean}
    result["curves"] = {n: curves[n] for n in orders}
    result["auc"] = {n: sum(c) / len(c) for n, c in result["curves"].items()}
    result["random_auc"] = sum(random_mean) / len(random_mean)
    return result


def _visualize(
    adapter: ModelAdapter,
    channels: list[Channel],
    microscope: str | Path | None,
    size: int,
    steps: int | None,
    seed: int,
    progress: bool,
    found: NeuronGroups | None = None,
) -> None:
    """Give each channel its visualization: from the Microscope folder where it holds the
    unit (with its top dataset examples), the others rendered now, all in one batch with
    the directions of the neuron groups of ``found`` (never in a Microscope)."""
    from featviz.optvis.render import render

    if microscope is not None:
        _from_microscope(adapter, channels, Path(microscope))
    todo = list(dict.fromkeys(ch.unit for ch in channels if ch.image is None))
    sets = [found.layer, found.earlier] if found is not None else []
    objectives: list[Objective | str] = [*todo, *(o for g in sets for o in direction_objectives(g))]
    if not objectives:
        return
    result = render(adapter, objectives, recipe="microscope", size=size, steps=steps, seed=seed, progress=progress)
    if result.interrupted:
        raise KeyboardInterrupt
    rendered = result.images.detach().cpu()
    images = dict(zip(todo, rendered[: len(todo)], strict=True))
    for ch in channels:
        if ch.image is None:
            ch.image = images[ch.unit]
    start = len(todo)
    for g in sets:
        g.images = rendered[start : start + len(g.directions)]
        start += len(g.directions)


def _from_microscope(adapter: ModelAdapter, channels: list[Channel], folder: Path) -> None:
    from featviz.microscope.catalog import Catalog, require

    catalog = Catalog(require(folder), readonly=True)
    try:
        catalog.check_model(adapter.name)
        units = {(u["layer"], u["channel"]): u for u in catalog.units()}
    finally:
        catalog.close()
    for ch in channels:
        row = units.get((ch.layer, ch.channel))
        if row is not None:
            ch.image = load_image(folder / row["files"]["channel"])
            ch.examples = folder / row["files"]["examples_top"]
            ch.source = "microscope"

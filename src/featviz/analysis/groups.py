"""Neuron groups on a photo (Olah et al., "The Building Blocks of Interpretability", 2018):
not single channels but groups of channels that fire together at the same places.

The layer's activation on the photo, as a grid ``[C, H, W]``
(:func:`~featviz.models.grids.to_grid`), is read as ``H * W`` positions of ``C`` values each
and factorized with scikit-learn's non-negative matrix factorization into ``k`` groups:
``A+ ~= sum_g W_g (x) H_g``, each group a direction over channels ``W_g`` (unit length,
``[C]``) and a spatial map ``H_g`` (``[H, W]``, where and how strongly the group is there).
NMF needs non-negative data: a layer whose activation can be negative (one without a ReLU
after it, such as an EfficientNet block's linear projection) is clamped at 0 first, so the
groups describe where channels are *on*, not the negative part.

Each group then gets a feature visualization (the ``direction`` objective of its ``W_g``,
all groups in one batch of the render loop) and an attribution to the class: its share of
the layer's gradient x activation of the class logit (see :func:`attribute`), taken on the
clamped activation the groups describe, so that the shares add up to it; the gradient x
activation of the negative part, which no group describes, is reported beside them
(``GroupsResult.numbers["negative"]``). The faithfulness check takes the top group out of the
activation and compares the logit's drop with that for random directions of the same size
(see :func:`ablate_top`). :func:`group_grid` says how much each group of an earlier layer
feeds each group of a later one on the photo (the building blocks' grid).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from featviz.errors import FeatvizError
from featviz.models import ModelAdapter, load_model, place
from featviz.models.grids import from_grid, to_grid
from featviz.models.hooks import capture, eval_mode, intervene
from featviz.optvis.objectives import Objective, as_grid

RANDOM_DRAWS = 16  # random directions the top group's removal is compared with
COSSIM_POW = 1.0  # the visualizations' cosine weighting (Lucid's building blocks use 1)
NMF_ITERATIONS = 2000
#: One colour per group on the overview (cycled when k is larger).
PALETTE = torch.tensor(
    [
        [0.90, 0.10, 0.29],
        [0.00, 0.51, 0.78],
        [0.96, 0.51, 0.19],
        [0.24, 0.71, 0.29],
        [0.57, 0.12, 0.71],
        [0.94, 0.20, 0.90],
        [0.27, 0.94, 0.94],
        [1.00, 0.88, 0.10],
    ]
)


@dataclass
class GroupsResult:
    """The groups of a layer on a photo (see :func:`groups`), strongest presence first."""

    layer: str
    target: tuple[int, str]
    photo: torch.Tensor  # [3, H, W] as the model saw it
    maps: torch.Tensor  # [k, h, w] on the layer's grid, >= 0: the factor weight of each position
    maps_photo: torch.Tensor  # [k, H, W]: the maps upsampled to the photo
    directions: torch.Tensor  # [k, C], >= 0, unit length
    images: torch.Tensor  # [k, 3, size, size]: each direction's visualization
    attributions: torch.Tensor  # [k]: each group's share of the class's gradient x activation
    ablation: dict[str, Any]
    record: dict[str, Any]
    numbers: dict[str, Any] = field(default_factory=dict)  # total, unassigned, reconstruction error
    seconds: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        a = self.ablation
        return (
            f"GroupsResult({self.record['model']}: {self.target[1]!r} ({self.target[0]}), "
            f"{self.layer} k={len(self.maps)}: "
            f"removing group {a['group']} drops {a['top_drop']:.2f} vs random {a['random_mean']:.2f} "
            f"+- {a['random_std']:.2f})"
        )

    def overlay(self, side: int = 160) -> torch.Tensor:
        """The photo with every group's map in its colour, ``[3, side, side]``."""
        photo = F.interpolate(self.photo[None].float().cpu(), size=(side, side), mode="bilinear", antialias=True)[0]
        return _paint(photo, _resized(self.maps_photo, side), _colours(len(self.maps)), opacity=0.7)

    def grid(self, side: int = 160) -> torch.Tensor:
        """The overview, ``[3, H, W]`` ready for a PNG: the photo and all groups on it, then one
        column per group, its map over the photo in its colour above its visualization (framed
        in the same colour), labelled with its share of the attribution."""
        from featviz.io.grid import make_grid

        k = len(self.maps)
        photo = F.interpolate(self.photo[None].float().cpu(), size=(side, side), mode="bilinear", antialias=True)[0]
        colours, maps = _colours(k), _resized(self.maps_photo, side)
        total = float(self.attributions.sum())
        head = make_grid(
            [photo, self.overlay(side)],
            [f"{self.target[1]} ({self.target[0]})", f"{k} groups of {self.layer}"],
            columns=2,
        )
        tiles, labels = [], []
        for g in range(k):
            tiles.append(_paint(photo, maps[g : g + 1], colours[g : g + 1]))
            share = float(self.attributions[g]) / total if abs(total) > 1e-12 else 0.0
            labels.append(f"group {g + 1}: {100 * share:.0f}%")
        for g in range(k):
            image = F.interpolate(self.images[g : g + 1].float().cpu(), size=(side, side), mode="bilinear")[0]
            tiles.append(_frame(image, colours[g]))
            labels.append(f"{float(self.attributions[g]):+.2f} logit")
        body = make_grid(tiles, labels, columns=k)
        width = max(head.shape[-1], body.shape[-1])
        return torch.cat([F.pad(p, (0, width - p.shape[-1]), value=1.0) for p in (head, body)], dim=1)

    def to_dict(self) -> dict[str, Any]:
        """The numbers (no images) for a JSON sidecar."""
        return {
            "record": self.record,
            "layer": self.layer,
            "target": {"index": self.target[0], "name": self.target[1]},
            "attributions": [round(float(a), 6) for a in self.attributions],
            "presence": [round(float(m.sum()), 6) for m in self.maps],
            "ablation": self.ablation,
            "numbers": self.numbers,
            "directions": [[round(float(v), 6) for v in d] for d in self.directions],
            "maps": [[[round(float(v), 6) for v in row] for row in m] for m in self.maps],
            "seconds": self.seconds,
        }


@dataclass
class LayerGroups:
    """The ``k`` groups of one layer on a photo (see :func:`layer_groups`), strongest presence
    first: what :func:`groups` and explain share."""

    layer: str
    directions: torch.Tensor  # [k, C], >= 0, unit length (float64)
    maps: torch.Tensor  # [k, h, w], >= 0, on the layer's grid (float64)
    attributions: torch.Tensor  # [k]: each group's share of the score's gradient x activation
    numbers: dict[str, Any]  # total, unassigned, negative, reconstruction_error
    images: torch.Tensor | None = None  # [k, 3, S, S]: each direction's visualization, when rendered

    def to_dict(self) -> dict[str, Any]:
        """The numbers (no images) for a JSON sidecar."""
        return {
            "layer": self.layer,
            "attributions": [round(float(a), 6) for a in self.attributions],
            "presence": [round(float(m.sum()), 6) for m in self.maps],
            "numbers": self.numbers,
            "directions": [[round(float(v), 6) for v in d] for d in self.directions],
            "maps": [[[round(float(v), 6) for v in row] for row in m] for m in self.maps],
        }


@dataclass
class GroupGrid:
    """How much each group of ``earlier`` feeds each group of ``layer`` on a photo (see
    :func:`group_grid`): ``weights[g, f]`` from earlier group ``f`` to group ``g``, and per
    group ``g`` the totals its row splits, ``weights[g].sum() + unassigned[g] == total[g]``."""

    layer: str
    earlier: str
    weights: torch.Tensor  # [k_layer, k_earlier]
    total: torch.Tensor  # [k_layer]: gradient x activation of the group's score on earlier's positive part
    unassigned: torch.Tensor  # [k_layer]: the part of total where no earlier group is present
    negative: torch.Tensor  # [k_layer]: on earlier's negative part, which no group describes

    def to_dict(self) -> dict[str, Any]:
        def values(t: torch.Tensor) -> list[Any]:
            return [round(float(v), 6) for v in t] if t.dim() == 1 else [values(r) for r in t]

        return {
            "layer": self.layer,
            "earlier": self.earlier,
            "weights": values(self.weights),
            "total": values(self.total),
            "unassigned": values(self.unassigned),
            "negative": values(self.negative),
        }


def groups(
    model: str | ModelAdapter | Any,
    image: str | Path | torch.Tensor,
    layer: str | None = None,
    k: int = 6,
    *,
    target: int | str | None = None,
    size: int = 128,
    steps: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    source: str | None = None,
) -> GroupsResult:
    """The ``k`` groups of channels of ``layer`` (default: explain's layer, the last stage
    before pooling) that fire together on ``image`` (a file, ``skimage:NAME`` or a
    ``[3, H, W]`` tensor in [0, 1], resized to the model's input size), each with its map,
    its direction, its ``size`` px visualization (the microscope recipe, ``steps``
    overriding it), its attribution to ``target`` (default: the top class) and the check
    that removing the top group matters more than removing random directions.

    NMF runs on the activation clamped at 0 (a layer that can be negative keeps only what is
    on); ``seed`` fixes the factorization and the renders. Everything that can be refused
    (the layer, a layer without positions, ``k`` outside 1 to min(channels, positions), the
    class) is refused before the photo runs.
    """
    from featviz.analysis.attribution import class_score, default_layers, layer_gradients, spatial
    from featviz.data.photos import load_image, resize
    from featviz.optvis.record import weights_fields

    t0 = time.perf_counter()
    adapter = load_model(model)
    place(adapter, model, device)
    name = adapter.layer_name(layer or default_layers(adapter)[0])
    c, h, w = spatial(adapter, name, "layer")
    check_k(k, c, h * w)
    _check(size, steps)
    wanted = adapter.class_index(target) if target is not None else None
    photo = resize(image if isinstance(image, torch.Tensor) else load_image(image), adapter.input_size)
    x = photo[None].to(adapter.device)
    with torch.no_grad(), eval_mode(adapter):
        cls = int(adapter(x)[0].argmax()) if wanted is None else wanted
    score = class_score(adapter, cls, None)
    grads, acts = layer_gradients(adapter, x, name, score)  # [1, C, h, w] each
    times = {"activations": time.perf_counter() - t0}

    t = time.perf_counter()
    found = layer_groups(name, grads[0], acts[0], k, seed)
    times["groups"] = time.perf_counter() - t
    t = time.perf_counter()
    ablation = ablate_top(adapter, x, found, score, seed)
    times["ablation"] = time.perf_counter() - t
    t = time.perf_counter()
    images = _visualize(adapter, found, size, steps, seed, progress)
    times["visualizations"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    labels = adapter.labels
    record = {
        "model": adapter.name,
        "image": source or (str(image) if not isinstance(image, torch.Tensor) else "tensor"),
        "layer": name,
        "k": k,
        "size": size,
        "steps": steps,
        "seed": seed,
        "target": target,
        "cossim_pow": COSSIM_POW,
        "weights": weights_fields(adapter),
    }
    return GroupsResult(
        layer=name,
        target=(cls, labels.name(cls) if labels is not None else str(cls)),
        photo=photo,
        maps=found.maps.float(),
        maps_photo=on_photo(found.maps, tuple(photo.shape[-2:])),
        directions=found.directions.float(),
        images=images,
        attributions=found.attributions.float(),
        ablation=ablation,
        record=record,
        numbers=found.numbers,
        seconds=times,
    )


def check_k(k: int, channels: int, positions: int, *, name: str = "k", layer: str = "the layer") -> None:
    """Refuse ``k`` groups of a layer with ``channels`` channels at ``positions`` positions
    unless 1 <= k <= min(channels, positions), and groups without scikit-learn, in one line."""
    most = min(channels, positions)
    if not 1 <= k <= most:
        raise FeatvizError(
            f"expected {name} from 1 to {most} ({layer} has {channels} channels at {positions} positions), got {k}"
        )
    try:
        import sklearn.decomposition  # noqa: F401
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise FeatvizError("groups needs scikit-learn: pip install scikit-learn") from err


def _check(size: int, steps: int | None) -> None:
    """The render settings that can be refused before the work, in one line each."""
    if size < 1:
        raise FeatvizError(f"expected a visualization size of at least 1 px, got {size}")
    if steps is not None and steps < 1:
        raise FeatvizError(f"expected --steps of at least 1, got {steps}")


def layer_groups(layer: str, grads: torch.Tensor, acts: torch.Tensor, k: int, seed: int = 0) -> LayerGroups:
    """The ``k`` groups of ``layer`` from a score's gradient and the layer's activation on a
    photo (``[C, H, W]`` each, :func:`~featviz.analysis.attribution.layer_gradients`): NMF
    of the activation clamped at 0 (:func:`factorize`), each group's share of the gradient
    x activation on that clamped activation (:func:`attribute`), and beside them the gradient
    x activation of the negative part, which no group describes (``numbers["negative"]``)."""
    grads, acts = grads.detach().cpu().double(), acts.detach().cpu().double()
    directions, maps, error = factorize(acts, k, seed)
    attributions, numbers = attribute(grads * acts.clamp(min=0), directions, maps)
    numbers["negative"] = float((grads * acts.clamp(max=0)).sum())
    numbers["reconstruction_error"] = error
    return LayerGroups(layer, directions, maps, attributions, numbers)


def factorize(acts: torch.Tensor, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """NMF of a ``[C, H, W]`` activation clamped at 0 into ``k`` groups: directions ``[k, C]``
    (unit length) and maps ``[k, H, W]`` (carrying the magnitude), strongest presence (sum
    of the map) first, and the relative error ``|A+ - sum_g W_g (x) H_g| / |A+|``
    (Frobenius norms). Deterministic for a given ``seed``."""
    from sklearn.decomposition import NMF

    c, h, w = acts.shape
    data = acts.clamp(min=0).reshape(c, h * w).T.double().numpy()  # positions x channels
    nmf = NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=NMF_ITERATIONS, tol=1e-6)
    weights = nmf.fit_transform(data)  # [h*w, k]
    components = nmf.components_  # [k, C]
    norms = np.linalg.norm(components, axis=1)
    norms[norms == 0] = 1.0
    directions = torch.from_numpy(components / norms[:, None])
    maps = torch.from_numpy((weights * norms[None, :]).T.copy()).reshape(k, h, w)
    order = maps.sum((1, 2)).argsort(descending=True, stable=True)
    directions, maps = directions[order], maps[order]
    rebuilt = torch.einsum("kc,khw->chw", directions, maps)
    clamped = acts.clamp(min=0).double()
    error = float((clamped - rebuilt).norm() / clamped.norm().clamp(min=1e-12))
    return directions, maps, error


def attribute(
    attribution: torch.Tensor, directions: torch.Tensor, maps: torch.Tensor
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Each group's share of a ``[C, H, W]`` attribution: at every channel ``c`` and position
    ``p`` the attribution is split between the groups in proportion to what each contributes
    to the reconstruction there,

        attribution_g = sum_{c,p} attribution[c, p] * W_g[c] H_g[p] / sum_j W_j[c] H_j[p].

    Where no group is present (the reconstruction is 0) it goes to no group, so that
    ``sum_g attribution_g + unassigned == total`` (the whole attribution's sum) exactly, up
    to rounding. :func:`groups` passes the gradient x activation of the class logit, taken on
    the activation the groups factorize (clamped at 0; see :func:`groups`).

    >>> directions, maps = torch.ones(2, 1), torch.tensor([[[1.0, 0]], [[3.0, 0]]])
    >>> values, numbers = attribute(torch.ones(1, 1, 2), directions, maps)
    >>> values.tolist(), numbers
    ([0.25, 0.75], {'total': 2.0, 'unassigned': 1.0})
    """
    parts = torch.einsum("kc,khw->kchw", directions.double(), maps.double())
    whole = parts.sum(0)
    present = whole > 0
    shares = torch.where(present, parts / whole.clamp(min=1e-300), torch.zeros_like(parts))
    attribution = attribution.double()
    values = (attribution * shares).sum((1, 2, 3))
    numbers = {"total": float(attribution.sum()), "unassigned": float(attribution[~present].sum())}
    return values, numbers


def group_grid(adapter: ModelAdapter, x: torch.Tensor, later: LayerGroups, earlier: LayerGroups) -> GroupGrid:
    """How much each group ``f`` of ``earlier`` feeds each group ``g`` of ``later`` on the
    photo ``x`` (``[1, 3, H, W]``), the building blocks' grid.

    Group ``g``'s score is the projection of ``later``'s activation, clamped at 0 (what its
    groups describe), on its direction, summed over positions: ``s_g = sum_p <A+[:, p], W_g>``.
    Its attribution at ``earlier`` is gradient x activation there (the gradient from captum's
    ``LayerGradientXActivation``), taken on the positive part of ``earlier``'s activation,
    which its groups describe, and split between them as :func:`attribute` splits the
    class's: at every channel and position in proportion to each group's part of the
    reconstruction there. So each row adds up exactly:
    ``weights[g].sum() + unassigned[g] == total[g]``; ``negative[g]`` is the gradient x
    activation on ``earlier``'s negative part, which no group describes. All ``g`` are one
    batch of one forward and backward pass (the photo repeated)."""
    from captum.attr import LayerGradientXActivation

    k = len(later.directions)
    directions = later.directions.to(adapter.device, torch.float32)

    def scores(batch: torch.Tensor) -> torch.Tensor:  # [N, k]: every group's score on every image
        with capture(adapter, [later.layer]) as cap:
            grid = as_grid(cap(batch), later.layer).clamp(min=0)
            return torch.einsum("nchw,kc->nk", grid, directions.to(grid.dtype))

    for name in (later.layer, earlier.layer):
        adapter.layout(name)  # probed now if unknown: a probe inside the attribution would overwrite captum's capture
    gradient = LayerGradientXActivation(scores, adapter.get_module(earlier.layer), multiply_by_inputs=False)
    with eval_mode(adapter):
        grads = gradient.attribute(x.repeat(k, 1, 1, 1), target=list(range(k))).detach()
    with torch.no_grad(), capture(adapter, [earlier.layer]) as cap:
        acts = as_grid(cap(x), earlier.layer)[0].cpu().double()
    grads = to_grid(adapter, earlier.layer, grads).cpu().double()  # [k, C, h, w]
    rows = [attribute(g * acts.clamp(min=0), earlier.directions, earlier.maps) for g in grads]
    return GroupGrid(
        layer=later.layer,
        earlier=earlier.layer,
        weights=torch.stack([values for values, _ in rows]),
        total=torch.tensor([numbers["total"] for _, numbers in rows], dtype=torch.float64),
        unassigned=torch.tensor([numbers["unassigned"] for _, numbers in rows], dtype=torch.float64),
        negative=(grads * acts.clamp(max=0)).sum((1, 2, 3)),
    )


def on_photo(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``[k, h, w]`` maps upsampled (bilinear) to the photo's ``size``, ``[k, H, W]``, >= 0."""
    return F.interpolate(maps[None].float().cpu(), size=size, mode="bilinear")[0].clamp(min=0)


def ablate_top(adapter: ModelAdapter, x: torch.Tensor, found: LayerGroups, score: Any, seed: int) -> dict[str, Any]:
    """The drop of the score (the class logit) when the top-attributed group of ``found`` is
    taken out of its layer on the photo ``x``,
    beside the drops for random group-sized directions (one batched forward, one removal a row):

    - the verdict's: ``RANDOM_DRAWS`` random permutations of the group's own direction over
      the channels, on the group's map: non-negative, the same norm of reconstruction, the
      same places and the same profile (as many channels, as unevenly weighted), only not
      the group's channels;
    - ``dense``: ``RANDOM_DRAWS`` directions of ``|N(0, 1)|`` values (unit length) on the
      group's map. Such a direction spreads over every channel, close to turning the whole
      layer down where the group is, which lowers any class's logit at a late layer; a
      harder comparison, reported beside the verdict, not read by it;
    - each of the ``k`` groups (``group_drops``).

    Taking out ``R = W_g (x) H_g`` lowers the activation's positive part and floors it at 0:
    ``A' = min(A, 0) + max(A+ - R, 0)``, so no entry goes below 0 or below where it was
    (the groups describe the positive part only). ``holds``: the top group's drop is at
    least twice the random mean, and above 0."""
    layer, directions, maps = found.layer, found.directions, found.maps
    c = directions.shape[1]
    top = int(found.attributions.argmax())
    gen = torch.Generator().manual_seed(seed)
    shuffled = torch.stack([directions[top][torch.randperm(c, generator=gen)] for _ in range(RANDOM_DRAWS)])
    dense = torch.randn(RANDOM_DRAWS, c, generator=gen, dtype=torch.float64).abs()
    dense = dense / dense.norm(dim=1, keepdim=True)  # the same unit length as W_g
    rows = torch.cat([directions[top : top + 1], shuffled, dense, directions])  # [1 + 2 draws + k, C]
    row_maps = torch.cat([maps[top].expand(1 + 2 * RANDOM_DRAWS, -1, -1), maps])
    removed = torch.einsum("bc,bhw->bchw", rows, row_maps).to(adapter.device)

    def change(act: torch.Tensor) -> torch.Tensor:
        grid = to_grid(adapter, layer, act)
        kept = grid.clamp(max=0) + (grid.clamp(min=0) - removed.to(grid.dtype)).clamp(min=0)
        return from_grid(adapter, layer, act, kept)

    with torch.no_grad(), eval_mode(adapter):
        whole = float(score(x)[0])
        with intervene(adapter, layer, change):
            drops = (whole - score(x.repeat(len(removed), 1, 1, 1))).double().cpu()
    rand, spread = drops[1 : 1 + RANDOM_DRAWS], drops[1 + RANDOM_DRAWS : 1 + 2 * RANDOM_DRAWS]
    out: dict[str, Any] = {"group": top + 1, "draws": RANDOM_DRAWS, "score": whole, "top_drop": float(drops[0])}
    out.update(_spread(rand))
    out["dense"] = _spread(spread)
    out["group_drops"] = [round(float(d), 4) for d in drops[1 + 2 * RANDOM_DRAWS :]]
    out["ratio"] = out["top_drop"] / out["random_mean"] if out["random_mean"] > 1e-6 else None
    out["holds"] = bool(out["top_drop"] >= 2 * out["random_mean"] and out["top_drop"] > 0)
    return out


def _spread(drops: torch.Tensor) -> dict[str, Any]:
    return {
        "random_mean": float(drops.mean()),
        "random_std": float(drops.std()),
        "random_drops": [round(float(d), 4) for d in drops],
    }


def direction_objectives(found: LayerGroups) -> list[Objective]:
    """Each group's direction as the objective its visualization maximizes."""
    from featviz.optvis.objectives import direction

    return [direction(found.layer, d.float(), cossim_pow=COSSIM_POW) for d in found.directions]


def _visualize(
    adapter: ModelAdapter, found: LayerGroups, size: int, steps: int | None, seed: int, progress: bool
) -> torch.Tensor:
    """Every group's direction rendered in one batch of the render loop (the microscope recipe)."""
    from featviz.optvis.render import render

    objectives = direction_objectives(found)
    result = render(adapter, objectives, recipe="microscope", size=size, steps=steps, seed=seed, progress=progress)
    if result.interrupted:
        raise KeyboardInterrupt
    return result.images.detach().cpu()


def _colours(k: int) -> torch.Tensor:
    return PALETTE[torch.arange(k) % len(PALETTE)]


def _resized(maps: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(maps[None].float().cpu(), size=(side, side), mode="bilinear")[0].clamp(min=0)


def _paint(photo: torch.Tensor, maps: torch.Tensor, colours: torch.Tensor, opacity: float = 0.85) -> torch.Tensor:
    """``photo`` (``[3, S, S]``) dimmed, each map laid over it in its colour, up to ``opacity``
    where the map is at its own maximum (where two overlap, the stronger one's colour wins)."""
    scaled = maps / maps.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
    strength, which = scaled.max(0)
    colour = colours[which].permute(2, 0, 1)  # [3, S, S]
    alpha = (opacity * strength.clamp(0, 1) ** 0.8)[None]
    grey = photo.mean(0, keepdim=True).expand_as(photo)
    base = 0.55 * (0.4 * photo + 0.6 * grey) + 0.2
    return base * (1 - alpha) + colour * alpha


def _frame(image: torch.Tensor, colour: torch.Tensor, width: int = 0) -> torch.Tensor:
    """``image`` with a border of ``colour`` (``width`` px; default about 3% of its side)."""
    width = width or max(2, math.ceil(image.shape[-1] * 0.03))
    framed = image.clone()
    framed[:, :width], framed[:, -width:] = colour[:, None, None], colour[:, None, None]
    framed[:, :, :width], framed[:, :, -width:] = colour[:, None, None], colour[:, None, None]
    return framed

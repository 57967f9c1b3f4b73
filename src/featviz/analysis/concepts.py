"""Concepts of a layer over a dataset: ``k`` directions over the layer's channels, learned on
every position of every image (CRAFT, Fel et al. 2023; neuron groups,
:mod:`featviz.analysis.groups`, taken from one photo to the data), each a unit that renders
(``blocks.6/concepts:3``, see :mod:`featviz.optvis.units`).

Every spatial position of every image is one sample of ``C`` channel values, clamped at 0
(non-negative matrix factorization needs non-negative data; the concepts describe where
channels are *on*, as groups do). scikit-learn's ``MiniBatchNMF`` learns the dictionary with
``partial_fit`` on one batch of images' positions at a time, over ``passes`` passes in a seeded
random order, so the activations of the whole data are never in memory together. Its forget
factor is set so that one pass weighs the batches as ``fit`` on all the data at once would.

A last pass describes each concept (:class:`Concepts`):

- its *presence map* on an image: at every position, the non-negative least squares weights
  of the clamped activation on the ``k`` directions (:func:`presence`), in the layer's units;
- the mean and largest presence over all positions of all images;
- its *top examples*: the ``top`` images where its presence peaks highest, with their maps;
- the *classes it drives*: the derivative of every logit along its direction added at every
  position (forward mode), averaged over all images;
- its *importance for each class*: the gradient of the class logit dotted with the concept's
  part of the activation (presence x direction), summed over positions -- the first-order
  change of the logit when the concept is taken out -- averaged over the images of the class
  (labelled so by their folder, else predicted so by the model).

Then the *faithfulness check* (:func:`faithfulness`): on a concept's top examples, taking it
out of the activation lowers the ``classes`` logits it drives most there by at least twice
what taking out a random direction of the same norm on the same map does.

The passes themselves are in :mod:`featviz.analysis.dictionary`; :func:`save_concepts` and
:func:`load_concepts` keep a result in a safetensors file, and :func:`use` loads one for the
unit syntax.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from featviz.analysis.dictionary import MAX_ROWS, Tally, along, describe, expanded_logits, learn, presence
from featviz.data.sources import Item, items, read
from featviz.errors import FeatvizError
from featviz.io.files import atomic_write
from featviz.models import ModelAdapter, load_model, place
from featviz.models.grids import grid_shape
from featviz.models.speed import fast_inference
from featviz.optvis.units import CONCEPTS

RANDOM_DRAWS = 16  # random directions each concept's removal is compared with
CLASSES = 5  # classes driven per concept that the faithfulness check reads
#: Where a dictionary is kept by default (the command line's place): ROOT/MODEL/LAYER.safetensors.
ROOT = Path("concepts")


@dataclass
class Concepts:
    """The concepts of ``layer`` of ``model`` over the images ``items`` of ``source`` (read at
    ``size`` px; the layer's grid is ``grid``, ``(h, w)``), most present first; concept ``j``
    is the unit ``LAYER/concepts:j`` once :func:`use` loaded it. What a concept page needs:

    - ``directions`` ``[k, C]``: >= 0, unit length;
    - ``presence_mean``, ``presence_max`` ``[k]``: its presence (:func:`presence`: at each
      position the non-negative least squares weight of the clamped activation on it, in the
      layer's units) averaged over, and at most over, every position of every image;
    - ``top_index`` ``[k, n]``: indices into ``items`` of the ``n`` (``top``) images where its
      presence peaks highest, best first; ``top_value`` ``[k, n]`` those peaks;
      ``top_maps`` ``[k, n, h, w]`` its presence maps there, the region where it is
      (:meth:`region` upsamples one to the image, :meth:`overlay` paints it);
    - ``drives`` ``[k, K]``: each logit's derivative along its direction added at every
      position, averaged over all images (:meth:`raises`);
    - ``importance`` ``[k, K]``: the gradient of each class's logit dotted with the concept's
      part of the activation (presence x direction), summed over positions and averaged over
      the images of the class, its label or else the model's prediction (:meth:`important`;
      0 for a class without images); ``class_images`` ``[K]``: how many images each class had;
    - ``faithfulness[j]`` (:func:`faithfulness`): ``classes`` (those it drives most on its top
      examples, checked there), ``images``, ``drop`` (their logits' mean drop when the
      concept is taken out), ``random_drop`` and ``random_std`` (for random directions),
      ``ratio`` and ``passed``.

    ``class_names`` names the ``K`` logits; ``settings`` holds the arguments, ``numbers`` what
    the passes counted (images, positions, largest batch, samples seen, skipped items,
    reconstruction error), ``seconds`` how long each part took.
    """

    model: str
    layer: str
    source: str
    items: list[Item]
    size: int
    grid: tuple[int, int]
    directions: torch.Tensor
    presence_mean: torch.Tensor
    presence_max: torch.Tensor
    top_index: torch.Tensor
    top_value: torch.Tensor
    top_maps: torch.Tensor
    drives: torch.Tensor
    importance: torch.Tensor
    class_images: torch.Tensor
    class_names: list[str]
    faithfulness: list[dict[str, Any]]
    settings: dict[str, Any]
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Concepts({self.model} {self.layer}: {self.k} concepts over {self.numbers.get('images')} images, "
            f"error {self.numbers.get('reconstruction_error', float('nan')):.3f}, "
            f"faithful {sum(f['passed'] for f in self.faithfulness)}/{self.k})"
        )

    @property
    def k(self) -> int:
        return int(self.directions.shape[0])

    @property
    def pass_rate(self) -> float:
        """The share of concepts whose faithfulness check passed."""
        return sum(f["passed"] for f in self.faithfulness) / max(self.k, 1)

    def raises(self, j: int, n: int = CLASSES) -> list[tuple[int, str, float]]:
        """The ``n`` classes concept ``j`` drives up most: (index, name, derivative)."""
        return self._classes(self.drives[j], n)

    def important(self, j: int, n: int = CLASSES) -> list[tuple[int, str, float]]:
        """The ``n`` classes whose logit concept ``j`` carries most: (index, name, logit)."""
        return self._classes(self.importance[j], n)

    def _classes(self, values: torch.Tensor, n: int) -> list[tuple[int, str, float]]:
        top = values.topk(min(n, values.numel()))
        return [(int(i), self.class_names[int(i)], float(v)) for v, i in zip(top.values, top.indices, strict=True)]

    def region(self, j: int, rank: int = 0) -> torch.Tensor:
        """Concept ``j``'s presence on its ``rank``-th example, ``[size, size]`` (bilinear), >= 0."""
        m = self.top_maps[j, rank][None, None].float()
        return F.interpolate(m, size=(self.size, self.size), mode="bilinear")[0, 0].clamp(min=0)

    def example(self, j: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Concept ``j``'s ``rank``-th example, ``[3, size, size]``, and its :meth:`region`."""
        return read(self.items[int(self.top_index[j, rank])], self.size), self.region(j, rank)

    def overlay(self, j: int, rank: int = 0) -> torch.Tensor:
        """The example with the concept's region lit in orange and the rest dimmed, ``[3, S, S]``."""
        image, region = self.example(j, rank)
        heat = (region / region.max().clamp(min=1e-12))[None]
        colour = torch.tensor([0.96, 0.51, 0.19])[:, None, None]
        lit = image * (0.3 + 0.7 * heat)
        return (lit * (1 - 0.35 * heat) + colour * 0.35 * heat).clamp(0, 1)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the tensors, for a JSON header."""
        return {
            "model": self.model,
            "layer": self.layer,
            "source": self.source,
            "items": [dataclasses.asdict(item) for item in self.items],
            "size": self.size,
            "grid": list(self.grid),
            "class_names": self.class_names,
            "faithfulness": self.faithfulness,
            "settings": self.settings,
            "numbers": self.numbers,
            "seconds": self.seconds,
        }


_TENSORS = (
    "directions",
    "presence_mean",
    "presence_max",
    "top_index",
    "top_value",
    "top_maps",
    "drives",
    "importance",
    "class_images",
)


def concepts(
    model: str | nn.Module | ModelAdapter,
    layer: str,
    k: int = 16,
    data: str | Path | Sequence[Item] | None = None,
    *,
    size: int | None = None,
    batch: int = 32,
    passes: int = 2,
    top: int = 8,
    classes: int = CLASSES,
    draws: int = RANDOM_DRAWS,
    seed: int = 0,
    workers: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> Concepts:
    """The ``k`` concepts of ``layer`` over ``data`` (see the module's docstring).

    ``data`` is what :func:`~featviz.analysis.examples.examples` reads (default ``"shipped"``,
    the photos shipped with scikit-image and scikit-learn, as crops; a folder; a list file) or
    a list of its items; images are read at ``size`` px (the model's input size by default),
    ``batch`` at a time. ``passes`` passes learn the dictionary, one more describes it, and
    each concept's ``top`` examples serve the faithfulness check (``draws`` random directions,
    the ``classes`` logits it drives most). ``seed`` fixes the order of the images, the
    factorization and the random directions. Everything that can be refused (the layer, one
    without positions, ``k``, too few images, the settings) is refused before the first image.
    """
    start = time.perf_counter()
    adapter = load_model(model)
    name = adapter.layer_name(layer)
    size = adapter.input_size if size is None or adapter.fixed_size else size
    adapter.check_size(size, size)
    dev = place(adapter, model, device)
    c, h, w = _grid(adapter, name, size)
    listed = isinstance(data, Sequence) and not isinstance(data, str)
    source = [*data] if isinstance(data, Sequence) and listed else items(str(data or "shipped"), adapter.labels)
    _check(name, k, c, h * w, len(source), batch=batch, passes=passes, top=top, classes=classes, draws=draws)
    known = _known_classes(adapter, source)
    times: dict[str, float] = {}
    with fast_inference(adapter, keep=[name]):
        t = time.perf_counter()
        directions, learned = learn(adapter, name, source, size, k, batch, passes, seed, workers, progress)
        times["dictionary"] = time.perf_counter() - t
        t = time.perf_counter()
        tally = describe(adapter, name, source, known, size, directions, top, batch, workers, progress)
        found = _result(adapter, name, source, size, directions, tally)
        times["description"] = time.perf_counter() - t
        t = time.perf_counter()
        checks = [faithfulness(adapter, found, j, classes=classes, draws=draws, seed=seed) for j in range(found.k)]
        times["faithfulness"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    found.faithfulness = checks
    found.source = "items" if listed else str(data or "shipped")
    found.settings = {"k": k, "size": size, "batch": batch, "passes": passes, "top": top, "classes": classes}
    found.settings.update(draws=draws, seed=seed, device=str(dev), weights=_weights(adapter))
    found.numbers.update(learned)
    found.seconds = times
    return found


def _grid(adapter: ModelAdapter, name: str, size: int) -> tuple[int, int, int]:
    """The layer's grid at ``size``, or one line saying it has no positions."""
    from featviz.analysis.attribution import spatial

    spatial(adapter, name, "layer")
    return grid_shape(adapter, name, size)


def _check(layer: str, k: int, channels: int, positions: int, images: int, **settings: int) -> None:
    """Refuse, in one line each and before any image is read, what cannot work."""
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FeatvizError(f"expected {key} of at least 1, got {value!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= channels:
        raise FeatvizError(f"expected k from 1 to {channels} ({layer!r} has {channels} channels), got {k!r}")
    if images < max(settings["top"], 2):
        raise FeatvizError(
            f"expected at least {max(settings['top'], 2)} images in the data "
            f"(top={settings['top']} examples per concept), got {images}"
        )
    first = min(settings["batch"], images) * positions
    if k > first:
        raise FeatvizError(
            f"expected k at most the {first} positions of the first batch "
            f"({min(settings['batch'], images)} images x {positions}), got {k}: give a larger batch"
        )
    try:
        import sklearn.decomposition  # noqa: F401
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise FeatvizError("concepts need scikit-learn: pip install scikit-learn") from err


def _known_classes(adapter: ModelAdapter, source: list[Item]) -> torch.Tensor:
    """Each item's class from its folder's name, -1 where there is none (the model's prediction then)."""
    out = torch.full((len(source),), -1, dtype=torch.long)
    if adapter.labels is not None:
        for i, item in enumerate(source):
            if item.label is not None:
                out[i] = adapter.class_index(item.label)
    return out


def _weights(adapter: ModelAdapter) -> dict[str, Any]:
    from featviz.optvis.record import weights_fields

    return weights_fields(adapter)


def _result(
    adapter: ModelAdapter, name: str, source: list[Item], size: int, directions: torch.Tensor, tally: Tally
) -> Concepts:
    """The concepts a tally describes, most present first."""
    mean = tally.presence / tally.positions
    order = mean.argsort(descending=True, stable=True)
    classes = tally.counts.shape[0]
    return Concepts(
        model=adapter.name,
        layer=name,
        source="",
        items=source,
        size=size,
        grid=(int(tally.maps.shape[2]), int(tally.maps.shape[3])),
        directions=directions[order].float().cpu(),
        presence_mean=mean[order],
        presence_max=tally.max[order],
        top_index=tally.index[order],
        top_value=tally.value[order],
        top_maps=tally.maps[order],
        drives=(tally.drives / tally.images)[order],
        importance=(tally.importance / tally.counts.clamp(min=1))[order],
        class_images=tally.counts,
        class_names=[adapter.labels.name(i) if adapter.labels else str(i) for i in range(classes)],
        faithfulness=[],
        settings={},
        numbers={
            "images": tally.images,
            "positions": tally.positions,
            "reconstruction_error": math.sqrt(tally.error / max(tally.norm, 1e-30)),
        },
    )


def faithfulness(
    adapter: ModelAdapter,
    found: Concepts,
    j: int,
    *,
    classes: int = CLASSES,
    draws: int = RANDOM_DRAWS,
    seed: int = 0,
) -> dict[str, Any]:
    """Whether taking concept ``j`` out of its layer, on its top examples, lowers the
    ``classes`` logits it drives most there by at least twice what taking out a random
    direction does.

    The classes are those whose logits rise most along its direction on those images (as
    :attr:`Concepts.drives`, which averages over all images, where the concept is mostly
    absent). Taking out a part ``R = m (x) d`` (its presence map, :func:`presence`, times a
    direction) lowers the activation's positive part and floors it at 0,
    ``A' = min(A, 0) + max(A+ - R, 0)``, as neuron groups do. The random directions are
    ``draws`` permutations of ``d`` over the channels (seeded by ``seed`` and ``j``) on the
    same map: non-negative, the same norm and profile, only not the concept's channels.
    ``drop`` is the logits' mean drop (over the images and the classes), ``random_drop`` the
    mean over the draws; ``passed`` when ``drop > 0`` and ``drop >= 2 * random_drop``.
    """
    name, d = found.layer, found.directions[j].to(adapter.device)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + j)
    shuffled = [d[torch.randperm(len(d), generator=gen).to(d.device)] for _ in range(draws)]
    rows = torch.stack([torch.zeros_like(d), d, *shuffled])  # [2 + draws, C]: nothing, the concept, random
    chosen = [int(i) for i in found.top_index[j]]
    images = torch.stack([read(found.items[i], found.size) for i in chosen]).to(adapter.device)
    dirs = found.directions.to(adapter.device)
    step = max(1, MAX_ROWS // len(rows))
    local = torch.cat([along(adapter, name, images[s : s + step], d[None])[0] for s in range(0, len(chosen), step)])
    driven = local.mean(0).topk(min(classes, local.shape[-1])).indices

    def make(grid: torch.Tensor) -> torch.Tensor:
        m = presence(grid, dirs)[:, j].to(grid.dtype)  # [n, h, w]
        parts = torch.einsum("rc,nhw->rnchw", rows.to(grid.dtype), m)
        return (grid.clamp(max=0) + (grid.clamp(min=0) - parts).clamp(min=0)).flatten(0, 1)

    logits = []
    with torch.no_grad():
        for s in range(0, len(chosen), step):
            out = expanded_logits(adapter, name, images[s : s + step], make, len(rows))
            logits.append(out.view(len(rows), -1, out.shape[-1])[..., driven.to(out.device)].double().cpu())
    values = torch.cat(logits, 1)  # [2 + draws, n, classes]
    drops = (values[0] - values[1:]).mean((1, 2))
    drop, rand = float(drops[0]), drops[1:]
    random_drop = float(rand.mean())
    return {
        "classes": [int(c) for c in driven],
        "images": len(chosen),
        "drop": drop,
        "random_drop": random_drop,
        "random_std": float(rand.std()) if len(rand) > 1 else 0.0,
        "ratio": drop / random_drop if random_drop > 1e-6 else None,
        "passed": bool(drop > 0 and drop >= 2 * random_drop),
    }


def save_concepts(result: Concepts, path: str | Path) -> Path:
    """Write ``result`` whole to one safetensors file: its tensors, and the rest as a JSON
    header; nothing that runs code when read back with :func:`load_concepts`."""
    from safetensors.torch import save

    tensors = {key: getattr(result, key).contiguous() for key in _TENSORS}
    return atomic_write(path, save(tensors, metadata={"featviz.concepts": json.dumps(result.to_dict())}))


def load_concepts(path: str | Path) -> Concepts:
    """The concepts :func:`save_concepts` wrote; a file that is not one is refused in one line."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["featviz.concepts"])
            tensors = {key: f.get_tensor(key) for key in _TENSORS}
        found = [Item(**{**i, "box": tuple(i["box"]) if i.get("box") else None}) for i in meta.pop("items")]
        grid = tuple(meta.pop("grid"))
        return Concepts(**meta, items=found, grid=grid, **tensors)
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
        raise FeatvizError(f"{path} is not a concepts file of featviz ({type(err).__name__}: {err})") from None


def default_path(model: str, layer: str, root: str | Path = ROOT) -> Path:
    """Where the dictionary of ``layer`` of ``model`` is kept by default: ``root/MODEL/LAYER.safetensors``.

    >>> default_path("efficientnet_lite0", "blocks.6").as_posix()
    'concepts/efficientnet_lite0/blocks.6.safetensors'
    """
    return Path(root) / model / f"{layer}.safetensors"


def use(found: Concepts | str | Path) -> Concepts:
    """Load a dictionary for the unit syntax: ``found`` (a result, or a file
    :func:`save_concepts` wrote) is what ``LAYER/concepts:N`` then reads for its model and
    layer (replacing one loaded before). Returns the concepts.
    """
    result = found if isinstance(found, Concepts) else load_concepts(found)
    CONCEPTS[(result.model, result.layer)] = result.directions.detach().float().cpu().clone()
    return result

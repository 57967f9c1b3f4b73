"""Dataset examples: the real images that excite (and inhibit) each channel most.

One streaming pass over a source serves every channel of one or several layers at once: for
each channel it keeps the top-k and bottom-k images by the channel's spatial maximum (with
the position of that maximum) and the top-k by its spatial mean, as running top-k tensors,
so memory stays bounded whatever the source's size. Each image scores once per channel, so
it appears at most once in a channel's list. It also keeps what a Microscope page shows per
channel: a histogram of the spatial maximum over the data, its mean and largest value, and
the share of images where the channel fires (maximum above 0).

The *patch* of an example is the crop of the image that the unit at the maximum's position
sees: its receptive field, measured on the model itself from the input gradient of one
position (:func:`receptive_field`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featviz.data.sources import Item, SourceDataset, collate, items, read
from featviz.errors import FeatvizError, ImageError
from featviz.io.files import atomic_write
from featviz.models import LOGITS, ModelAdapter, load_model, place
from featviz.models.hooks import capture
from featviz.models.speed import fast_inference
from featviz.optvis.objectives import as_grid

BINS = 32
#: A token's receptive field: the patch tiles with at least this share of its strongest tile's gradient.
SPREAD = 0.25


@dataclass
class TopK:
    """Running top-k (or bottom-k) per channel: values, image indices and positions (y, x).
    Ties go to the lower image index, so the result does not depend on the order of batches."""

    values: torch.Tensor  # [C, n]
    index: torch.Tensor  # [C, n] long
    pos: torch.Tensor  # [C, n, 2] long
    k: int
    largest: bool = True

    @classmethod
    def empty(cls, channels: int, k: int, largest: bool = True) -> TopK:
        return cls(
            torch.zeros(channels, 0),
            torch.zeros(channels, 0, dtype=torch.long),
            torch.zeros(channels, 0, 2, dtype=torch.long),
            k,
            largest,
        )

    def update(self, values: torch.Tensor, index: torch.Tensor, pos: torch.Tensor) -> None:
        """Merge candidates: ``values`` and ``pos`` per channel ``[C, n]`` / ``[C, n, 2]``,
        ``index`` ``[C, n]``."""
        v = torch.cat([self.values, values.float()], 1)
        i = torch.cat([self.index, index], 1)
        p = torch.cat([self.pos, pos], 1)
        by_index = torch.sort(i, dim=1, stable=True).indices
        v, i, p = v.gather(1, by_index), i.gather(1, by_index), p.gather(1, by_index[..., None].expand(-1, -1, 2))
        order = torch.sort(v, dim=1, descending=self.largest, stable=True).indices[:, : self.k]
        self.values, self.index = v.gather(1, order), i.gather(1, order)
        self.pos = p.gather(1, order[..., None].expand(-1, -1, 2))


@dataclass
class LayerExamples:
    """The examples and statistics of one layer's channels (see the module's docstring)."""

    layer: str
    grid: tuple[int, int]
    field: tuple[int, int, int, int]  # receptive field of the centre unit: top, left, height, width
    top: TopK
    bottom: TopK
    top_mean: TopK
    total: torch.Tensor  # [C] sum over images of the spatial mean
    max: torch.Tensor  # [C] largest spatial maximum
    firing: torch.Tensor  # [C] images whose spatial maximum is above 0
    hist: torch.Tensor  # [C, BINS] counts of the spatial maximum
    edges: torch.Tensor  # [C, BINS + 1] bin edges per channel
    count: int = 0

    @property
    def channels(self) -> int:
        return int(self.total.shape[0])

    @property
    def mean(self) -> torch.Tensor:
        """Mean over images of each channel's spatial mean."""
        return self.total / max(self.count, 1)

    @property
    def fires(self) -> torch.Tensor:
        """Share of images where each channel fires (spatial maximum above 0)."""
        return self.firing / max(self.count, 1)

    def patch_box(self, y: int, x: int, size: int) -> tuple[int, int, int, int]:
        """The receptive field of the unit at grid position (y, x) in a ``size`` image, clipped
        to the image: top, left, height, width."""
        top, left, h, w = self.field
        sy, sx = size / self.grid[0], size / self.grid[1]
        cy, cx = self.grid[0] // 2, self.grid[1] // 2
        t, l = top + round((y - cy) * sy), left + round((x - cx) * sx)
        t0, l0 = max(0, t), max(0, l)
        return t0, l0, max(1, min(size, t + h) - t0), max(1, min(size, l + w) - l0)


@dataclass
class ExamplesResult:
    """Dataset examples of one or more layers over a source's ``items`` (images ``size`` px)."""

    model: str
    source: str
    items: list[Item]
    size: int
    k: int
    layers: dict[str, LayerExamples]
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        return f"ExamplesResult({self.model}, {len(self.items)} images, layers {list(self.layers)})"

    @property
    def images_per_second(self) -> float:
        return (len(self.items) - len(self.skipped)) / self.seconds if self.seconds else 0.0

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        """The data's images ``indices`` (positions in :attr:`items`), read at :attr:`size`, as one
        ``[N, 3, size, size]`` batch in ``[0, 1]``."""
        return torch.stack([read(self.items[int(i)], self.size) for i in indices])

    def patch(self, layer: str, channel: int, rank: int, which: str = "top") -> torch.Tensor:
        """The patch of a channel's ``rank``-th example (``top``, ``bottom`` or ``top_mean``)."""
        ex = self.layers[layer]
        lists = getattr(ex, which)
        index = int(lists.index[channel, rank])
        y, x = (int(v) for v in lists.pos[channel, rank])
        t, l, h, w = ex.patch_box(y, x, self.size)
        return read(self.items[index], self.size)[:, t : t + h, l : l + w]

    def strip(self, layer: str, channel: int, which: str = "top", side: int = 64) -> torch.Tensor:
        """A channel's examples' patches side by side, best first, each resized to ``side`` px."""
        from featviz.data.photos import resize

        n = getattr(self.layers[layer], which).index.shape[1]
        patches = [resize(self.patch(layer, channel, r, which), (side, side)).clamp(0, 1) for r in range(n)]
        return torch.cat(patches, dim=-1) if patches else torch.zeros(3, side, side)


def receptive_field(adapter: ModelAdapter, layer: str, size: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """The layer's grid at ``size`` and the receptive field of its centre unit (top, left,
    height, width), from the input gradient of that one position: where it is not zero, for a
    convolution's map. A token of a transformer sees the whole image after its first attention,
    so its field is measured by weight instead: the patch tiles whose gradient is at least
    ``SPREAD`` of the strongest tile's (the token's own tile and the tiles attention spreads it
    to), averaged over a few random images."""
    from featviz.models.layout import TOKENS

    tokens = layer not in (LOGITS, "input") and adapter.layout(layer).kind == TOKENS
    x = torch.rand(4 if tokens else 1, 3, size, size, device=adapter.device, requires_grad=True)
    with capture(adapter, [layer]) as cap:
        grid = as_grid(cap(x), layer)
        h, w = grid.shape[-2:]
        (grad,) = torch.autograd.grad(grid[:, :, h // 2, w // 2].sum(), x)
    weight = grad.abs().sum((0, 1))
    if tokens:
        tiles = torch.nn.functional.adaptive_avg_pool2d(weight[None, None], (h, w))[0, 0]
        keep = tiles >= SPREAD * tiles.max()
        keep[h // 2, w // 2] = True
        rows, cols = keep.any(1).nonzero(), keep.any(0).nonzero()
        ty, tx = size / h, size / w
        top, left = round(int(rows.min()) * ty), round(int(cols.min()) * tx)
        return (h, w), (top, left, round((int(rows.max()) + 1) * ty) - top, round((int(cols.max()) + 1) * tx) - left)
    seen = weight > 0
    rows, cols = seen.any(1).nonzero(), seen.any(0).nonzero()
    if not len(rows):
        return (h, w), (0, 0, size, size)
    top, left = int(rows.min()), int(cols.min())
    return (h, w), (top, left, int(rows.max()) - top + 1, int(cols.max()) - left + 1)


def examples(
    model: str | nn.Module | ModelAdapter,
    layers: str | Sequence[str],
    *,
    data: str | Path = "shipped",
    k: int = 9,
    size: int | None = None,
    batch: int = 32,
    workers: int = 0,
    limit: int | None = None,
    shard: tuple[int, int] = (0, 1),
    device: str | torch.device = "auto",
    progress: bool = True,
) -> ExamplesResult:
    """Top and bottom dataset examples of every channel of ``layers``, in one pass over ``data``.

    ``data`` is ``"shipped"`` (photos shipped with scikit-image and scikit-learn, as crops), a
    folder or a list file (see :mod:`featviz.data.sources`); ``limit`` keeps the first images
    only; ``shard=(rank, world)`` takes every ``world``-th batch from the ``rank``-th (the
    distributed build merges shards with :func:`merge`).

    >>> ex = examples("efficientnet_lite0", "blocks.6", k=2, limit=8, batch=4, size=96, progress=False)
    >>> ex.layers["blocks.6"].top.index.shape, len(ex.items)
    (torch.Size([320, 2]), 8)
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    adapter = load_model(model)
    names = [adapter.layer_name(layer) for layer in ([layers] if isinstance(layers, str) else layers)]
    if k < 1 or batch < 1:
        raise FeatvizError(f"expected k >= 1 and batch >= 1, got k={k}, batch={batch}")
    source = items(data, adapter.labels)[:limit] if limit else items(data, adapter.labels)
    size = adapter.input_size if size is None or adapter.fixed_size else size  # a ViT takes its own size only
    adapter.check_size(size, size)
    dev = place(adapter, model, device)
    state = {name: _empty(adapter, name, size, k) for name in names}
    rank, world = shard
    starts = list(range(0, len(source), batch))[rank::world]
    indices = [i for s in starts for i in range(s, min(s + batch, len(source)))]
    loader = torch.utils.data.DataLoader(
        SourceDataset(source, size, indices), batch_size=batch, num_workers=workers, collate_fn=collate
    )
    skipped: list[str] = []
    bar = tqdm(total=len(indices), disable=not progress, desc=f"examples {adapter.name}", unit="img")
    try:
        with torch.inference_mode(), fast_inference(adapter, keep=names), capture(adapter, names) as cap:
            if rank != 0:  # every shard bins its histograms as the first shard does, so that they add up
                first = list(range(min(batch, len(source))))
                for idx, images, _ in torch.utils.data.DataLoader(
                    SourceDataset(source, size, first), batch_size=batch, num_workers=0, collate_fn=collate
                ):
                    if idx:
                        acts = cap(images.to(dev))
                        for name in names:
                            _bins(state[name], as_grid(acts, name).float().cpu().flatten(2).amax(2))
            for idx, images, bad in loader:
                skipped += [source[i].id for i in bad]
                if idx:
                    acts = cap(images.to(dev))
                    for name in names:
                        _update(state[name], as_grid(acts, name).float().cpu(), torch.tensor(idx))
                bar.update(len(idx) + len(bad))
    finally:
        bar.close()
    if skipped:
        import warnings

        warnings.warn(f"skipped {len(skipped)} unreadable image(s), first {skipped[0]}", stacklevel=2)
    if not any(ex.count for ex in state.values()) and world == 1:
        raise ImageError(f"no readable image in {data}")
    return ExamplesResult(adapter.name, str(data), source, size, k, state, skipped, time.perf_counter() - start)


def _empty(adapter: ModelAdapter, layer: str, size: int, k: int) -> LayerExamples:
    grid, box = receptive_field(adapter, layer, size)
    with torch.no_grad(), capture(adapter, [layer]) as cap:
        channels = as_grid(cap(torch.zeros(1, 3, size, size, device=adapter.device)), layer).shape[1]
    zeros = torch.zeros(channels)
    return LayerExamples(
        layer,
        grid,
        box,
        TopK.empty(channels, k, True),
        TopK.empty(channels, k, False),
        TopK.empty(channels, k, True),
        zeros.clone(),
        torch.full((channels,), -float("inf")),
        zeros.clone(),
        torch.zeros(channels, BINS),
        torch.zeros(channels, BINS + 1),
    )


def _update(ex: LayerExamples, grid: torch.Tensor, idx: torch.Tensor) -> None:
    b, c, h, w = grid.shape
    flat = grid.flatten(2)
    peak, where = flat.max(2)  # [B, C]
    mean = flat.mean(2)
    pos = torch.stack([where // w, where % w], -1).transpose(0, 1)  # [C, B, 2]
    index = idx[None].expand(c, b)
    ex.top.update(peak.T, index, pos)
    ex.bottom.update(peak.T, index, pos)  # the images whose strongest response is weakest
    ex.top_mean.update(mean.T, index, pos)
    if not ex.edges.any():
        _bins(ex, peak)
    ex.total += mean.sum(0)
    ex.max = torch.maximum(ex.max, peak.max(0).values)
    ex.firing += (peak > 0).float().sum(0)
    lo, hi = ex.edges[:, 0], ex.edges[:, -1]
    bins = ((peak - lo) / (hi - lo) * BINS).long().clamp(0, BINS - 1)  # [B, C]
    ex.hist.scatter_add_(1, bins.T, torch.ones(c, b))
    ex.count += b


def _bins(ex: LayerExamples, peak: torch.Tensor) -> None:
    """The histograms' bins of every channel, from the spatial maxima ``[B, C]`` of the
    source's first batch (the same on every shard), with room above."""
    lo = torch.minimum(peak.min(0).values, torch.zeros(peak.shape[1]))
    hi = torch.maximum(peak.max(0).values * 2, lo + 1e-3)
    ex.edges = torch.stack([torch.linspace(float(a), float(z), BINS + 1) for a, z in zip(lo, hi, strict=True)])


def merge(parts: Sequence[ExamplesResult]) -> ExamplesResult:
    """One result from the shards of a distributed pass (each rank's top-k, then a global top-k)."""
    first = parts[0]
    layers = {}
    for name, ex in first.layers.items():
        out = _empty_like(ex)
        for part in parts:
            p = part.layers[name]
            for which in ("top", "bottom", "top_mean"):
                src = getattr(p, which)
                getattr(out, which).update(src.values, src.index, src.pos)
            out.total += p.total
            out.max = torch.maximum(out.max, p.max)
            out.firing += p.firing
            if p.count and not torch.equal(p.edges, out.edges):
                raise FeatvizError(f"the shards of {name}'s examples binned their histograms differently")
            out.hist += p.hist
            out.count += p.count
        layers[name] = out
    skipped = [s for p in parts for s in p.skipped]
    return ExamplesResult(
        first.model, first.source, first.items, first.size, first.k, layers, skipped, max(p.seconds for p in parts)
    )


def _empty_like(ex: LayerExamples) -> LayerExamples:
    c, k = ex.channels, ex.top.k
    return LayerExamples(
        ex.layer,
        ex.grid,
        ex.field,
        TopK.empty(c, k, True),
        TopK.empty(c, k, False),
        TopK.empty(c, k, True),
        torch.zeros(c),
        torch.full((c,), -float("inf")),
        torch.zeros(c),
        torch.zeros(c, BINS),
        ex.edges.clone(),
    )


#: The statistics of a layer kept as tensors, and the running lists with their tensors.
_STATS = ("total", "max", "firing", "hist", "edges")
_LISTS = ("top", "bottom", "top_mean")
_LIST_TENSORS = ("values", "index", "pos")


def save_examples(result: ExamplesResult, path: str | Path, **extra: Any) -> Path:
    """Write ``result`` whole (every list, statistic, item and ``extra`` JSON field) to one
    safetensors file: tensors and a JSON header, nothing that runs code when read back with
    :func:`load_examples`."""
    from safetensors.torch import save

    tensors, layers = {}, {}
    for name, ex in result.layers.items():
        for stat in _STATS:
            tensors[f"{name}/{stat}"] = getattr(ex, stat).contiguous()
        for which in _LISTS:
            top = getattr(ex, which)
            for part in _LIST_TENSORS:
                tensors[f"{name}/{which}/{part}"] = getattr(top, part).contiguous()
        lists = {which: [getattr(ex, which).k, getattr(ex, which).largest] for which in _LISTS}
        layers[name] = {"grid": list(ex.grid), "field": list(ex.field), "count": ex.count, "lists": lists}
    meta = {
        "model": result.model,
        "source": result.source,
        "items": [dataclasses.asdict(item) for item in result.items],
        "size": result.size,
        "k": result.k,
        "skipped": result.skipped,
        "seconds": result.seconds,
        "layers": layers,
        "extra": extra,
    }
    return atomic_write(path, save(tensors, metadata={"featviz": json.dumps(meta)}))


def load_examples(path: str | Path) -> tuple[ExamplesResult, dict[str, Any]]:
    """The examples :func:`save_examples` wrote, and its ``extra`` fields; a file that is not
    one is refused in one line."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["featviz"])
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is no dict)
        layers = {}
        for name, info in meta["layers"].items():
            lists = {
                which: TopK(*(tensors[f"{name}/{which}/{part}"] for part in _LIST_TENSORS), *info["lists"][which])
                for which in _LISTS
            }
            stats = {stat: tensors[f"{name}/{stat}"] for stat in _STATS}
            grid, box = tuple(info["grid"]), tuple(info["field"])
            layers[name] = LayerExamples(
                name, grid, box, lists["top"], lists["bottom"], lists["top_mean"], **stats, count=info["count"]
            )
        items = [Item(**{**i, "box": tuple(i["box"]) if i.get("box") else None}) for i in meta["items"]]
        result = ExamplesResult(
            meta["model"], meta["source"], items, meta["size"], meta["k"], layers, meta["skipped"], meta["seconds"]
        )
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
        raise FeatvizError(f"{path} is not a dataset-examples file of featviz ({type(err).__name__}: {err})") from None
    return result, meta["extra"]

"""Activation atlas of a layer (Carter et al. 2019): what the layer sees across a dataset,
laid out on a map where neighbours respond alike.

1. The data streams through the model ``batch`` images at a time; from each image up to
   ``per_image`` positions of the layer are drawn (seeded), and their channel vectors kept
   with the image's index, the position and the model's top class for the image. At most
   :data:`MAX_SAMPLES` are kept, so memory stays bounded whatever the data. With ``target``
   (a class) it is a *class atlas*: from each image the positions with the highest
   attribution to that class are drawn instead (captum's gradient x activation summed over
   channels), and of those the top :data:`CLASS_SHARE` over the whole data are kept.
2. UMAP (``umap-learn``, cosine metric, ``random_state=seed``) places the samples in 2-D;
   without it, the first two principal components do, and the record says so.
3. The map is cut into ``grid x grid`` cells (each axis from its 1st to its 99th percentile,
   the outliers clipped to the edge cells). A cell with at least ``min_count`` samples gets
   their mean activation, rendered as a direction visualization (``cossim_pow=1``). With
   ``fill=True`` the map is snapped onto the whole grid instead: k-means cuts it into
   ``grid**2`` groups of neighbours, and an optimal assignment (scipy's
   ``linear_sum_assignment``) gives each group the cell nearest its centre, so that every cell
   is used and neighbours stay near (cell density is then even, not the data's).

Cells are rendered ``batch`` at a time through :func:`featviz.render`. With ``out_dir`` every
finished cell is written at once to a :class:`~featviz.io.store.TileStore` keyed by the
settings and the data, so a run killed midway renders only the missing cells when run again.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featviz.data.sources import Item, items
from featviz.errors import FeatvizError, ImageError
from featviz.io.grid import make_grid
from featviz.io.store import TileStore
from featviz.models import LOGITS, ModelAdapter, load_model, place
from featviz.models.grids import to_grid
from featviz.models.hooks import capture
from featviz.models.speed import fast_inference
from featviz.optvis.objectives import direction
from featviz.optvis.recipes import Recipe, get_recipe
from featviz.optvis.record import BOOL, INTEGER, MAPPING, TEXT, make_record, weights_fields
from featviz.optvis.render import render
from featviz.optvis.spec import check_recipe
from featviz.tools.replays import register_replay

MAX_SAMPLES = 20_000  # activation vectors kept at most, whatever the data
CLASS_SHARE = 0.5  # of a class atlas's drawn positions, the share with the highest attribution kept
MIN_PER_CELL = 4  # the data must offer at least this many samples per cell of the grid
EXAMPLES = 5  # images listed per cell, those whose samples lie nearest the cell's mean
EMPTY = 0.9  # the grey of a cell without enough samples
TILES = "tiles"
UMAP_ARGS = {"n_components": 2, "n_neighbors": 20, "min_dist": 0.5, "metric": "cosine"}
LAYOUT = "layout.safetensors"  # the samples and their 2-D places, so that a resumed run skips both


@dataclass
class ActivationAtlas:
    """An activation atlas of ``layer``: ``image`` ``[3, grid * size, grid * size]`` in
    [0, 1] (empty cells light grey), ``cells`` (one dict per rendered cell: ``row``, ``col``,
    ``count``, ``top_class``, ``top_class_name``, ``share`` of its samples with that class,
    ``images``: indices into ``items``), their ``directions`` ``[n, C]`` and ``tiles``
    ``[n, 3, size, size]``; every sample's 2-D ``points`` ``[N, 2]``, ``image_index`` ``[N]``,
    ``position`` ``[N, 2]`` (row, column on the layer's grid) and ``classes`` ``[N]``; which
    cells (``row * grid + col``) this call rendered and which it loaded from ``out_dir``."""

    model: str
    layer: str
    items: list[Item]
    grid: int
    size: int
    image: torch.Tensor
    cells: list[dict[str, Any]]
    directions: torch.Tensor
    tiles: torch.Tensor
    points: torch.Tensor
    image_index: torch.Tensor
    position: torch.Tensor
    classes: torch.Tensor
    rendered: list[int] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"ActivationAtlas({self.model} {self.layer!r}: {len(self.cells)} of {self.grid}x{self.grid} cells "
            f"from {len(self.points)} samples, {len(self.rendered)} rendered)"
        )


def activation_atlas(
    model: str | nn.Module | ModelAdapter,
    layer: str,
    data: str | Path | Sequence[Item] | None = None,
    *,
    grid: int = 20,
    per_image: int = 32,
    min_count: int = 3,
    fill: bool = False,
    size: int = 48,
    recipe: str | Recipe = "microscope",
    steps: int | None = None,
    batch: int = 32,
    image_size: int | None = None,
    seed: int = 0,
    target: int | str | None = None,
    out_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> ActivationAtlas:
    """The activation atlas of ``layer`` over ``data`` (see the module's docstring).

    ``data`` is what :func:`featviz.data.sources.items` reads (default ``"shipped"``: the
    photos shipped with scikit-image and scikit-learn, as crops), or a list of its items,
    read at ``image_size`` px (the model's input size by default). Cells are ``size`` px and
    rendered with ``recipe`` (its steps unless ``steps``). Refused before any image is read:
    a layer without positions, ``grid < 2``, and data offering fewer than
    ``MIN_PER_CELL * grid**2`` samples (images x positions drawn per image). ``target``
    (a class index or name) makes the class atlas; a class atlas whose positive positions are
    too few for the grid is refused after the data pass, saying how many there were.
    """
    start = time.perf_counter()
    adapter = load_model(model)
    name = adapter.layer_name(layer)
    image_size = adapter.input_size if image_size is None or adapter.fixed_size else image_size
    adapter.check_size(image_size, image_size)
    listed = isinstance(data, Sequence) and not isinstance(data, str)
    source = [*data] if isinstance(data, Sequence) and listed else items(str(data or "shipped"), adapter.labels)
    c, h, w = _spatial(adapter, name, image_size)
    draw = _check(grid, per_image, min_count, size, batch, steps, len(source), h * w)
    rec = get_recipe(recipe).replace(size=size, **({"steps": steps} if steps is not None else {}))
    check_recipe(rec)
    cls = adapter.class_index(target) if target is not None else None
    dev = place(adapter, model, device)
    settings: dict[str, Any] = {"kind": "activation_atlas", "model": adapter.name, "layer": name, "target": cls}
    settings.update(
        seed=seed,
        umap=UMAP_ARGS,
        per_image=draw,
        image_size=image_size,
        data=_digest(source),
        **weights_fields(adapter),
    )
    times: dict[str, float] = {}
    t = time.perf_counter()
    saved = Path(out_dir) / LAYOUT if out_dir is not None else None
    found = _read_layout(saved, settings) if saved is not None else None
    if found is None:
        with fast_inference(adapter, keep=[name]):
            acts, index, pos, classes = _sample(adapter, name, source, image_size, draw, batch, seed, cls, progress)
        _enough(len(acts), grid, cls, adapter)
        times["activations"] = time.perf_counter() - t
        t = time.perf_counter()
        points, reducer = _layout(acts, seed)
        times["layout"] = time.perf_counter() - t
        if saved is not None:
            _write_layout(saved, settings, reducer, acts=acts, points=points, index=index, pos=pos, classes=classes)
    else:
        (acts, points, index, pos, classes), reducer = found
        times["layout_loaded"] = time.perf_counter() - t
    cells, directions = _cells(adapter, acts, points, index, pos, classes, grid, min_count, fill, seed)
    settings.update(reducer=reducer, recipe=rec.to_dict(), size=size, grid=grid, min_count=min_count, fill=fill)
    store = TileStore(Path(out_dir) / TILES, settings) if out_dir is not None else None
    t = time.perf_counter()
    tiles, rendered, loaded = _render(adapter, name, cells, directions, rec, seed, batch, grid, dev, store, progress)
    times["render"] = time.perf_counter() - t
    canvas = [torch.full((3, size, size), EMPTY) for _ in range(grid * grid)]
    for cell, tile in zip(cells, tiles, strict=True):
        canvas[cell["row"] * grid + cell["col"]] = tile
    image = make_grid(canvas, columns=grid, pad=0)
    times["total"] = time.perf_counter() - start
    fields = dict(settings, source="items" if listed else str(data or "shipped"), images=len(source), layer_grid=[h, w])
    fields["batch"] = batch
    if cls is not None:
        fields["target_name"] = adapter.labels.name(cls) if adapter.labels is not None else str(cls)
    fields.update(samples=len(acts), cells=len(cells), rendered=len(rendered), loaded=len(loaded), device=str(dev))
    fields.update(dropped=len(acts) - sum(cell["count"] for cell in cells), times=times)
    record = make_record("activation_atlas", fields, seconds=times["total"])
    return ActivationAtlas(
        adapter.name, name, source, grid, size, image, cells, directions, tiles, points, index, pos, classes,
        rendered, loaded, record,
    )  # fmt: skip


#: The fields :func:`replay_activation_atlas` reads, with the kinds of value each may hold.
_RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "model": (TEXT,),
    "layer": (TEXT,),
    "source": (TEXT,),
    "data": (TEXT,),
    "target": (INTEGER, "null"),
    "seed": (INTEGER,),
    "per_image": (INTEGER,),
    "image_size": (INTEGER,),
    "recipe": (MAPPING,),
    "size": (INTEGER,),
    "grid": (INTEGER,),
    "min_count": (INTEGER,),
    "fill": (BOOL,),
    "batch": (INTEGER,),
    "device": (TEXT,),
    "load": (MAPPING,),
}


def replay_activation_atlas(
    record: dict[str, Any],
    *,
    model: str | nn.Module | ModelAdapter | None = None,
    data: Sequence[Item] | None = None,
    out_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> ActivationAtlas:
    """Make again the activation atlas a record describes (see :func:`featviz.replay`): the
    same data pass, layout, cells and tiles; on the machine that made it, the same image
    (UMAP's layout is reproducible for a seed on one machine, not across machines). The data
    is read again from the source the record names (``shipped``, a folder); an atlas made
    from a list of items needs that list again (``data=``). Data whose item list differs from
    the record's (by its digest) is refused before any image is read."""
    from featviz.optvis.replaying import check_record, replay_device, replay_model

    check_record(record, "activation_atlas", _RECORD_FIELDS, optional=("load",))
    if data is None and record["source"] == "items":
        raise FeatvizError("the record's atlas was made from a list of data items: pass the same list again (data=...)")
    source = [*data] if data is not None else items(record["source"])
    if _digest(source) != record["data"]:
        where = "the data given" if data is not None else f"the data of {record['source']!r} here"
        raise FeatvizError(
            f"{where} ({len(source)} items) is not the record's (expected {record.get('images')} items "
            f"with digest {record['data']}): the atlas would be another one"
        )
    dev = replay_device(record, device)
    return activation_atlas(
        replay_model(record, model, dev),
        record["layer"],
        source,
        grid=record["grid"],
        per_image=record["per_image"],
        min_count=record["min_count"],
        fill=record["fill"],
        size=record["size"],
        recipe=Recipe.from_dict(record["recipe"]),
        batch=record["batch"],
        image_size=record["image_size"],
        seed=record["seed"],
        target=record["target"],
        out_dir=out_dir,
        device=dev,
        progress=progress,
    )


register_replay("activation_atlas", replay_activation_atlas)


def _spatial(adapter: ModelAdapter, name: str, size: int) -> tuple[int, int, int]:
    """The layer's ``(C, H, W)`` grid at ``size`` px, or one line saying it has no positions."""
    from featviz.analysis.attribution import spatial
    from featviz.models.grids import grid_shape

    spatial(adapter, name, "layer")
    return grid_shape(adapter, name, size)


def _check(
    grid: int, per_image: int, min_count: int, size: int, batch: int, steps: int | None, images: int, positions: int
) -> int:
    """Refuse, in one line each, what cannot make an atlas; return the positions drawn per
    image (fewer when the data would give more than :data:`MAX_SAMPLES`)."""
    values = {"per_image": per_image, "min_count": min_count, "size": size, "batch": batch, "steps": steps or 1}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FeatvizError(f"expected {key} of at least 1, got {value!r}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise FeatvizError(f"expected grid of at least 2 (cells per side), got {grid!r}")
    draw = min(per_image, positions, max(1, MAX_SAMPLES // max(images, 1)))
    if images * draw < MIN_PER_CELL * grid * grid:
        got = f"{images * draw} ({images} images x {draw} positions each)"
        raise _too_few(grid, got, "give more data, a larger per_image or a smaller grid")
    return draw


def _enough(samples: int, grid: int, cls: int | None, adapter: ModelAdapter) -> None:
    """Refuse a class atlas whose positive positions cannot fill the grid asked."""
    if samples < MIN_PER_CELL * grid * grid:
        name = adapter.labels.name(cls) if adapter.labels is not None and cls is not None else cls
        got = f"{samples} positions with a positive attribution to {name!r}"
        raise _too_few(grid, got, "give more data or a smaller grid")


def _too_few(grid: int, got: str, advice: str) -> FeatvizError:
    """The one wording of "too few samples for the grid", before the data pass and after it."""
    need = MIN_PER_CELL * grid * grid
    return FeatvizError(
        f"expected at least {need} samples for a {grid}x{grid} grid ({MIN_PER_CELL} per cell), got {got}: {advice}"
    )


def _sample(
    adapter: ModelAdapter,
    name: str,
    source: list[Item],
    size: int,
    draw: int,
    batch: int,
    seed: int,
    cls: int | None,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``draw`` seeded positions of every image (of a seeded subset when the images alone
    exceed :data:`MAX_SAMPLES`), or with ``cls`` its ``draw`` positions of highest positive
    attribution to that class: their activations ``[N, C]``, image indices, positions
    ``[N, 2]`` and the images' top classes."""
    from tqdm.auto import tqdm

    from featviz.analysis.attribution import class_gradients
    from featviz.analysis.dictionary import batches

    gen = torch.Generator().manual_seed(seed)
    order = list(range(len(source)))
    if len(source) > MAX_SAMPLES:
        order = sorted(torch.randperm(len(source), generator=gen)[:MAX_SAMPLES].tolist())
    acts, index, pos, classes, scores = [], [], [], [], []
    bar = tqdm(total=len(order), disable=not progress, desc=f"sampling {name}", unit="img")
    try:
        with capture(adapter, [name, LOGITS]) as cap:
            for idx, images, bad in batches(source, size, order, batch, 0):
                bar.update(len(idx) + len(bad))
                if not idx:
                    continue
                if cls is None:
                    with torch.inference_mode():
                        out = cap(images.to(adapter.device))
                    grid, logits = to_grid(adapter, name, out[name]), out[LOGITS]
                else:  # one forward and backward: the activation, its gradient and the logits
                    grads, grid, logits = class_gradients(adapter, images.to(adapter.device), name, cls)
                act = grid.float().cpu()  # [B, C, H, W]
                n, _, h, w = act.shape
                keep = torch.ones(n, draw, dtype=torch.bool)
                if cls is None:
                    picks = torch.stack([torch.randperm(h * w, generator=gen)[:draw] for _ in range(n)])  # [B, draw]
                else:
                    attr = (grads.float().cpu() * act).sum(1).flatten(1)  # [B, H*W]
                    best, picks = attr.topk(draw, dim=1)
                    keep = best > 0
                    scores.append(best[keep])
                rows = act.flatten(2).gather(2, picks[:, None, :].expand(-1, act.shape[1], -1))  # [B, C, draw]
                acts.append(rows.permute(0, 2, 1)[keep])
                index.append(torch.tensor(idx)[:, None].expand(-1, draw)[keep])
                pos.append(torch.stack([picks // w, picks % w], -1)[keep])
                classes.append(logits.float().argmax(-1).cpu()[:, None].expand(-1, draw)[keep])
    finally:
        bar.close()
    if not acts:
        raise ImageError(f"no readable image among the {len(source)} of the data")
    found = torch.cat(acts), torch.cat(index), torch.cat(pos), torch.cat(classes)
    if cls is None:
        return found
    attr = torch.cat(scores)
    top = attr >= attr.quantile(1 - CLASS_SHARE) if len(attr) else attr > 0
    return found[0][top], found[1][top], found[2][top], found[3][top]


def _layout(acts: torch.Tensor, seed: int) -> tuple[torch.Tensor, str]:
    """The samples in 2-D, ``[N, 2]``, and what placed them: UMAP when installed, else the
    first two principal components."""
    x = acts.double()
    try:
        import umap
    except ImportError:
        x = x - x.mean(0)
        _, _, v = torch.linalg.svd(x, full_matrices=False)
        return (x @ v[:2].T).float(), "pca (umap-learn is not installed)"
    reducer = umap.UMAP(**UMAP_ARGS, random_state=seed)
    with warnings.catch_warnings():  # a seed makes UMAP single-threaded, and it warns so
        warnings.filterwarnings("ignore", message=".*random_state.*", category=UserWarning)
        return torch.from_numpy(reducer.fit_transform(x.float().numpy())).float(), "umap"


def _cells(
    adapter: ModelAdapter,
    acts: torch.Tensor,
    points: torch.Tensor,
    index: torch.Tensor,
    pos: torch.Tensor,
    classes: torch.Tensor,
    grid: int,
    min_count: int,
    fill: bool,
    seed: int,
) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """The cells with at least ``min_count`` samples, row by row, and their mean activations;
    a cell's ``spots`` are ``[image, row, col]`` of its samples in the images it shows."""
    low, high = points.quantile(0.01, dim=0), points.quantile(0.99, dim=0)
    unit = ((points - low) / (high - low).clamp(min=1e-12)).clamp(0, 1)
    if fill:
        cell_of = _snap(unit, grid, seed)
    else:
        col = (unit[:, 0] * grid).long().clamp(max=grid - 1)
        row = grid - 1 - (unit[:, 1] * grid).long().clamp(max=grid - 1)  # up on the map is up in the image
        cell_of = row * grid + col
    cells, means = [], []
    for key in cell_of.unique().tolist():
        members = (cell_of == key).nonzero().flatten()
        if len(members) < min_count:
            continue
        mean = acts[members].mean(0)
        top = int(classes[members].mode().values)
        nearest = members[(acts[members] - mean).norm(dim=1).argsort()]
        shown = list(dict.fromkeys(int(i) for i in index[nearest]))[:EXAMPLES]
        name = adapter.labels.name(top) if adapter.labels is not None else str(top)
        share = float((classes[members] == top).float().mean())
        cells.append({"row": key // grid, "col": key % grid, "count": len(members), "top_class": top})
        spots = [[int(index[m]), int(pos[m, 0]), int(pos[m, 1])] for m in members.tolist() if int(index[m]) in shown]
        cells[-1].update(top_class_name=name, share=round(share, 4), images=shown, spots=spots)
        means.append(mean)
    return cells, torch.stack(means) if means else torch.zeros(0, acts.shape[1])


def _snap(unit: torch.Tensor, grid: int, seed: int) -> torch.Tensor:
    """Each point's cell when the map ``[N, 2]`` (in [0, 1]) is snapped onto all ``grid**2``
    cells: k-means groups, each placed on a distinct cell by least total squared distance."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    x = unit.double().numpy()
    km = KMeans(n_clusters=grid * grid, n_init=1, random_state=seed).fit(x)
    centres = torch.arange(grid, dtype=torch.float64).add(0.5).div(grid)
    ys, xs = torch.meshgrid(1 - centres, centres, indexing="ij")  # row 0 at the top
    spots = torch.stack([xs.flatten(), ys.flatten()], 1)  # [grid**2, 2], cell key order
    cost = torch.cdist(torch.from_numpy(km.cluster_centers_), spots).pow(2).numpy()
    groups, keys = linear_sum_assignment(cost)
    cell = torch.empty(grid * grid, dtype=torch.long)
    cell[torch.from_numpy(groups)] = torch.from_numpy(keys)
    return cell[torch.from_numpy(km.labels_).long()]


def _render(
    adapter: ModelAdapter,
    name: str,
    cells: list[dict[str, Any]],
    directions: torch.Tensor,
    rec: Recipe,
    seed: int,
    batch: int,
    grid: int,
    dev: torch.device,
    store: TileStore | None,
    progress: bool,
) -> tuple[torch.Tensor, list[int], list[int]]:
    """Every cell's direction visualization ``[n, 3, size, size]``, ``batch`` cells per
    render; with ``store``, finished cells of the same settings and direction are loaded and
    each new one is written as soon as its batch ends. Returns the tiles, rendered, loaded."""
    from tqdm.auto import tqdm

    keys = [c["row"] * grid + c["col"] for c in cells]
    side = rec.size if isinstance(rec.size, int) else rec.size[-1] if rec.size else 0
    hashes = [hashlib.sha1(d.numpy().tobytes()).hexdigest()[:16] for d in directions]
    tiles: dict[int, torch.Tensor] = {}
    loaded: list[int] = []
    for i, key in enumerate(keys):
        item = store.get(key) if store is not None else None
        if item is not None and item[1].get("direction") == hashes[i] and item[0].shape[-1] == side:
            tiles[i] = item[0]
            loaded.append(key)
    rendered: list[int] = []
    bar = tqdm(total=len(cells), initial=len(loaded), disable=not progress, desc=f"atlas of {name}", unit="cell")
    for k in range(0, len(cells), batch):
        todo = [i for i in range(k, min(k + batch, len(cells))) if i not in tiles]
        if not todo:
            continue
        objectives = [direction(name, directions[i], cossim_pow=1.0) for i in todo]
        result = render(adapter, objectives, recipe=rec, seed=seed, device=dev, progress=False)
        if result.interrupted:  # an interrupted batch is not a finished cell
            raise KeyboardInterrupt
        for j, i in enumerate(todo):
            tiles[i] = result.images[j]
            if store is not None:
                store.put(keys[i], tiles[i], {**cells[i], "direction": hashes[i], "score": float(result.final[j])})
        rendered += [keys[i] for i in todo]
        bar.update(len(todo))
    bar.close()
    stacked = torch.stack([tiles[i] for i in range(len(cells))]) if cells else torch.zeros(0, 3, side, side)
    return stacked, rendered, loaded


def _write_layout(path: Path, settings: dict[str, Any], reducer: str, **tensors: torch.Tensor) -> None:
    """Keep the samples and their layout with the settings that made them (atomically)."""
    import json

    from safetensors.torch import save

    from featviz.io.files import atomic_write

    meta = {"settings": json.dumps(settings, sort_keys=True), "reducer": reducer}
    atomic_write(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta))


def _read_layout(
    path: Path, settings: dict[str, Any]
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], str] | None:
    """The samples and layout :func:`_write_layout` kept for the same settings, else ``None``."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("settings") != json.dumps(settings, sort_keys=True):
                return None
            names = ("acts", "points", "index", "pos", "classes")
            a, p, i, q, c = (f.get_tensor(k) for k in names)
            return (a, p, i, q, c), str(meta["reducer"])
    except Exception:  # a missing, torn or foreign file: the layout is made again
        return None


def _digest(source: list[Item]) -> str:
    """A short fingerprint of the data's item list, so that tiles of other data are not reused."""
    text = "\n".join(f"{item.id}|{item.box}" for item in source)
    return hashlib.sha1(text.encode()).hexdigest()[:16]

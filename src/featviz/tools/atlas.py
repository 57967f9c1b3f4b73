"""Layer atlases: every channel of a layer rendered in batches, stitched into a labelled grid.

Channels are rendered ``batch`` at a time (one channel per image of the batch, one forward
pass per step for all of them). With ``out_dir``, each finished tile is written to
``out_dir/tiles/<channel>.png`` with a ``.json`` record right after its batch, each file
under a temporary name first and then renamed (:class:`featviz.io.store.TileStore`), so a run
that is interrupted -- Ctrl-C, ``kill``, a closed laptop -- leaves only whole tiles behind.
Running the same atlas again loads those tiles and renders only the missing ones.

Batches are fixed slices of the channel list, each rendered with the same seed, so a resumed
atlas is pixel for pixel the atlas that an uninterrupted run would have made.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featviz.errors import FeatvizError, UnitError, shorten
from featviz.io.grid import make_grid
from featviz.io.store import TileStore
from featviz.models import ModelAdapter, load_model, place
from featviz.models.layers import output_shape
from featviz.optvis.recipes import DEFAULT_RECIPE, Recipe, get_recipe
from featviz.optvis.record import INTEGER, LIST, MAPPING, TEXT, identity, make_record, weights_fields
from featviz.optvis.render import render
from featviz.optvis.replaying import check_record, replay_device, replay_model
from featviz.optvis.spec import check_recipe

ChannelsLike = str | range | Sequence[int] | None
TILES = "tiles"


@dataclass
class AtlasResult:
    """Tiles by channel (``[3, H, W]`` in [0, 1], CPU), each tile's final score, the labelled
    grid ``[3, H', W']``, which channels this call rendered and which it loaded from disk.
    Write the grid with :func:`featviz.save`."""

    layer: str
    channels: list[int]
    tiles: dict[int, torch.Tensor]
    scores: dict[int, float]
    grid: torch.Tensor
    rendered: list[int] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"AtlasResult({self.layer!r}, {len(self.channels)} channels, {len(self.rendered)} rendered)"


def parse_channels(spec: ChannelsLike, count: int) -> list[int]:
    """Channel indices from ``None`` (all), ``"0:64"``, ``"0:64:2"``, ``"3,7,9"``, ``"5"``,
    a ``range`` or a list, checked against the layer's ``count`` channels.

    >>> parse_channels("0:8:2", 80), parse_channels("3,7", 80), parse_channels(None, 3)
    ([0, 2, 4, 6], [3, 7], [0, 1, 2])
    """
    if spec is None:
        out = list(range(count))
    elif isinstance(spec, str):
        text = spec.strip()
        try:
            if ":" in text:
                parts = [int(p) if p.strip() else None for p in text.split(":")]
                if len(parts) > 3:
                    raise ValueError(text)
                begin, end, step = (parts + [None, None])[:3]
                out = list(range(begin or 0, count if end is None else end, step or 1))
            else:
                out = [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise UnitError(f"channels {spec!r}: expected START:STOP[:STEP] or a comma list such as 3,7,9") from None
    else:
        out = [int(c) for c in spec]
    bad = [c for c in out if not 0 <= c < count]
    if bad:
        raise UnitError(f"channels {bad[:5]} out of range: the layer has {count} channels (0..{count - 1})")
    if not out:
        raise UnitError(f"channels {spec!r} selects no channel of a layer with {count} channels")
    return list(dict.fromkeys(out))


def layer_channels(adapter: ModelAdapter, layer: str, size: int) -> int:
    """Number of channels of ``layer`` (see :func:`featviz.models.layers.output_shape`)."""
    shape = output_shape(adapter, layer, size)
    return shape[-1] if len(shape) == 2 else shape[0]


def atlas(
    model: str | nn.Module | ModelAdapter,
    layer: str,
    channels: ChannelsLike = None,
    *,
    batch: int = 16,
    recipe: str | Recipe = DEFAULT_RECIPE,
    steps: int | None = None,
    lr: float | None = None,
    size: int = 128,
    seed: int = 0,
    crop: int = 0,
    columns: int | None = None,
    out_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> AtlasResult:
    """Render ``channels`` of ``layer`` (all when left out), ``batch`` channels per render.

    With ``out_dir`` every finished tile is saved at once, and tiles already there from an
    earlier run with the same settings are loaded instead of rendered again. ``crop`` and
    ``columns`` shape the grid (see :func:`featviz.io.grid.make_grid`).

    >>> result = atlas("efficientnet_lite0", "blocks.1", "0:2", steps=2, size=64, progress=False)
    >>> sorted(result.tiles), result.rendered, tuple(result.tiles[0].shape)
    ([0, 1], [0, 1], (3, 64, 64))
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    if batch < 1:
        raise FeatvizError(f"batch must be at least 1, got {batch}")
    adapter = load_model(model)
    layer = adapter.layer_name(layer)
    rec = get_recipe(recipe).replace(
        size=size, **{k: v for k, v in {"steps": steps, "lr": lr}.items() if v is not None}
    )
    check_recipe(rec)
    chans = parse_channels(channels, layer_channels(adapter, layer, size))
    dev = place(adapter, adapter, device)  # where each batch's render runs: it is handed the adapter
    # What a saved tile must match to be reused.
    ran = {"model": adapter.name, "layer": layer, "recipe": rec.to_dict(), "seed": seed, "size": size}
    key = {k: v for k, v in identity("atlas", {**ran, **weights_fields(adapter)}).items() if k != "kind"}
    store = TileStore(Path(out_dir) / TILES, key) if out_dir is not None else None
    tiles: dict[int, torch.Tensor] = {}
    scores: dict[int, float] = {}
    loaded = _load_tiles(store, chans, tiles, scores) if store else []
    rendered: list[int] = []
    bar = tqdm(total=len(chans), initial=len(loaded), disable=not progress, desc=f"{adapter.name} {layer}")
    for k in range(0, len(chans), batch):
        todo = [c for c in chans[k : k + batch] if c not in tiles]
        if not todo:
            continue
        result = render(adapter, [f"{layer}:{c}" for c in todo], recipe=rec, seed=seed, device=device, progress=False)
        if result.interrupted:  # an interrupted batch is not a finished tile
            raise KeyboardInterrupt
        for i, c in enumerate(todo):
            tiles[c], scores[c] = result.images[i], float(result.final[i])
            if store is not None:
                record = dict(result.record, unit=f"{layer}:{c}", batch_units=result.record["unit"])
                store.put(c, tiles[c], dict(record, channel=c, index=i, image_score=scores[c]))
        rendered += todo
        bar.update(len(todo))
    bar.close()
    grid = make_grid([tiles[c] for c in chans], [str(c) for c in chans], columns=columns, crop=crop)
    fields = dict(key, channels=chans, batch=batch, crop=crop, scores=[scores[c] for c in chans])
    fields.update(rendered=len(rendered), loaded=len(loaded), **weights_fields(adapter))
    fields.update(columns=columns, device=str(dev))  # for a replay
    record = make_record("atlas", fields, seconds=time.perf_counter() - start)
    if out_dir is not None:
        from featviz.io.records import write_record

        write_record(Path(out_dir) / "atlas.json", record)
    return AtlasResult(layer, chans, tiles, scores, grid, rendered, loaded, record)


def _load_tiles(
    store: TileStore, chans: list[int], tiles: dict[int, torch.Tensor], scores: dict[int, float]
) -> list[int]:
    """Fill ``tiles`` and ``scores`` with the finished tiles rendered with the same settings."""
    loaded = []
    for c in chans:
        item = store.get(c)
        if item is None or item[0].shape[-2:] != (store.settings["size"], store.settings["size"]):
            continue
        tiles[c], scores[c] = item[0], float(item[1]["image_score"])
        loaded.append(c)
    return loaded


_RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "model": (TEXT,),
    "layer": (TEXT,),
    "channels": (LIST,),
    "recipe": (MAPPING,),
    "seed": (INTEGER,),
    "size": (INTEGER,),
    "batch": (INTEGER,),
    "crop": (INTEGER,),
    "columns": (INTEGER, "null"),
    "device": (TEXT,),
    "load": (MAPPING,),
}


def replay_atlas(
    record: dict[str, Any],
    *,
    model: str | nn.Module | ModelAdapter | None = None,
    out_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> AtlasResult:
    """Render again the atlas a record describes (see :func:`featviz.replay`): the same tiles
    and grid on the machine that made them. Every tile is rendered again, unless ``out_dir``
    (where the tiles are written, as by :func:`atlas`) already holds some of this atlas."""
    check_record(record, "atlas", _RECORD_FIELDS, optional=("load",))
    chans = record["channels"]
    if not chans or not all(type(c) is int for c in chans):
        raise FeatvizError(f"the record's atlas.channels is {shorten(chans)}: expected a list of channel indices")
    dev = replay_device(record, device)
    return atlas(
        replay_model(record, model, dev),
        record["layer"],
        chans,
        batch=record["batch"],
        recipe=Recipe.from_dict(record["recipe"]),
        size=record["size"],
        seed=record["seed"],
        crop=record["crop"],
        columns=record["columns"],
        out_dir=out_dir,
        device=dev,
        progress=progress,
    )

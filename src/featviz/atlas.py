"""Layer atlases: every channel of a layer rendered in batches, stitched into a labelled grid.

Channels are rendered ``batch`` at a time (one channel per image of the batch, one forward
pass per step for all of them). With ``out_dir``, each finished tile is written to
``out_dir/tiles/<channel>.png`` with a ``.json`` record right after its batch, each file
under a temporary name first and then renamed (``os.replace`` is atomic), so a run that is
interrupted -- Ctrl-C, ``kill``, a closed laptop -- leaves only whole tiles behind. Running
the same atlas again loads those tiles and renders only the missing ones.

Batches are fixed slices of the channel list, each rendered with the same seed, so a resumed
atlas is pixel for pixel the atlas that an uninterrupted run would have made.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featviz.errors import FeatvizError, ImageError, UnitError
from featviz.hooks import capture
from featviz.io.grid import make_grid
from featviz.io.images import load_image, save_image, to_uint8
from featviz.models import ModelAdapter, load_model
from featviz.objectives import as_grid
from featviz.recipes import DEFAULT_RECIPE, Recipe, get_recipe

ChannelsLike = str | range | Sequence[int] | None
TILES = "tiles"


@dataclass
class AtlasResult:
    """Tiles by channel (``[3, H, W]`` in [0, 1], CPU), each tile's final score, the labelled
    grid ``[3, H', W']``, which channels this call rendered and which it loaded from disk."""

    layer: str
    channels: list[int]
    tiles: dict[int, torch.Tensor]
    scores: dict[int, float]
    grid: torch.Tensor
    rendered: list[int] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write the grid as PNG with the atlas record as a JSON sidecar."""
        target = save_image(self.grid, Path(path).with_suffix(Path(path).suffix or ".png"))
        _atomic_write(target.with_suffix(".json"), (json.dumps(self.record, indent=2) + "\n").encode())
        return target


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
    """Number of channels of ``layer`` (one forward of a grey image of ``size`` pixels)."""
    size = adapter.input_size if adapter.fixed_size else max(size, adapter.min_size)
    with capture(adapter, [layer], fold=False) as cap, torch.no_grad():
        probe = torch.full((1, 3, size, size), 0.5, device=adapter.device)
        return int(as_grid(cap(probe), layer).shape[1])


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

    from featviz.render import render

    start = time.perf_counter()
    if batch < 1:
        raise FeatvizError(f"batch must be at least 1, got {batch}")
    adapter = load_model(model)
    layer = adapter.layer_name(layer)
    rec = get_recipe(recipe).replace(
        size=size, **{k: v for k, v in {"steps": steps, "lr": lr}.items() if v is not None}
    )
    chans = parse_channels(channels, layer_channels(adapter, layer, size))
    # What a saved tile must match to be reused; through JSON so that tuples compare as lists.
    key = json.loads(
        json.dumps({"model": adapter.name, "layer": layer, "recipe": rec.to_dict(), "seed": seed, "size": size})
    )
    tiles_dir = Path(out_dir) / TILES if out_dir is not None else None
    tiles: dict[int, torch.Tensor] = {}
    scores: dict[int, float] = {}
    loaded = _load_tiles(tiles_dir, chans, key, tiles, scores) if tiles_dir else []
    for stale in tiles_dir.glob(".*.tmp") if tiles_dir else []:  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    rendered: list[int] = []
    bar = tqdm(total=len(chans), initial=len(loaded), disable=not progress, desc=f"{adapter.name} {layer}")
    for k in range(0, len(chans), batch):
        todo = [c for c in chans[k : k + batch] if c not in tiles]
        if not todo:
            continue
        result = render(adapter, [f"{layer}:{c}" for c in todo], recipe=rec, seed=seed, device=device, progress=False)
        for i, c in enumerate(todo):
            tiles[c], scores[c] = result.images[i], float(result.final[i])
            if tiles_dir is not None:
                record = dict(result.record, unit=f"{layer}:{c}", batch_units=result.record["unit"])
                _write_tile(tiles_dir, c, tiles[c], dict(record, **key, channel=c, index=i, image_score=scores[c]))
        rendered += todo
        bar.update(len(todo))
    bar.close()
    grid = make_grid([tiles[c] for c in chans], [str(c) for c in chans], columns=columns, crop=crop)
    summary = dict(key, channels=chans, batch=batch, crop=crop, scores=[scores[c] for c in chans])
    summary.update(rendered=len(rendered), loaded=len(loaded), seconds=round(time.perf_counter() - start, 3))
    if out_dir is not None:
        _atomic_write(Path(out_dir) / "atlas.json", (json.dumps(summary, indent=2) + "\n").encode())
    return AtlasResult(layer, chans, tiles, scores, grid, rendered, loaded, summary)


def tile_path(tiles_dir: str | Path, channel: int) -> Path:
    return Path(tiles_dir) / f"{channel}.png"


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_tile(tiles_dir: Path, channel: int, image: torch.Tensor, record: dict[str, Any]) -> None:
    """PNG first, then its record: the record is what marks a tile as finished."""
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(png, format="PNG")
    path = tile_path(tiles_dir, channel)
    _atomic_write(path, png.getvalue())
    _atomic_write(path.with_suffix(".json"), (json.dumps(record, indent=2) + "\n").encode())


def _load_tiles(
    tiles_dir: Path, chans: list[int], key: dict[str, Any], tiles: dict[int, torch.Tensor], scores: dict[int, float]
) -> list[int]:
    """Fill ``tiles`` and ``scores`` with the finished tiles rendered with the same settings."""
    loaded = []
    for c in chans:
        path = tile_path(tiles_dir, c)
        try:
            record = json.loads(path.with_suffix(".json").read_text())
            if any(record.get(k) != v for k, v in key.items()) or record.get("channel") != c:
                continue  # other settings: render it again
            image = load_image(path)
        except (OSError, ValueError, ImageError):
            continue
        if image.shape[-2:] != (key["size"], key["size"]):
            continue
        tiles[c], scores[c] = image, float(record["image_score"])
        loaded.append(c)
    return loaded

"""Writing results: images, grids or animations with the one JSON sidecar writer.

Results are plain values (:class:`~featviz.optvis.render.RenderResult`, and the tools'
dream, zoom and atlas results); :func:`save` writes any of them, choosing by the kind its
record names. Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from featviz.errors import FeatvizError
from featviz.io.files import atomic_write, json_bytes
from featviz.io.images import save_image


def write_record(path: str | Path, record: dict[str, Any]) -> Path:
    """Write a run record as JSON (atomically); the one sidecar writer."""
    return atomic_write(path, json_bytes(record))


def sidecar(path: str | Path) -> Path:
    """Where the record of the output ``path`` goes: the same name with ``.json``."""
    return Path(path).with_suffix(".json")


def load_record(path: str | Path) -> dict[str, Any]:
    """Read the JSON sidecar of an output (give the output or the JSON path)."""
    target = sidecar(path)
    try:
        data = json.loads(target.read_text())
    except FileNotFoundError:
        raise FeatvizError(f"no run record at {target}") from None
    except (OSError, ValueError) as err:
        raise FeatvizError(f"{target} is not a readable run record: {err}") from None
    if not isinstance(data, dict):
        raise FeatvizError(f"{target} is not a run record: expected a JSON object")
    return data


def _png(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix else path.with_suffix(".png")


def save(result: Any, path: str | Path, **options: Any) -> list[Path]:
    """Write ``result`` to ``path`` with its record beside it; returns the files written.

    A render writes ``path`` (one image), or for a batch a labelled grid at ``path`` and each
    image as ``stem_0.png``, ``stem_1.png``... (``grid=False``: no grid), each with a
    ``.json`` sidecar holding the run record and the image's own final score. A dream writes its image; a zoom an
    animation (``.mp4`` / ``.gif``, ``fps=``); an atlas, or a unit across checkpoints, its grid.
    """
    kind = getattr(result, "record", {}).get("kind")
    if kind == "render":
        return _save_render(result, _png(path), **options)
    if kind == "dream":
        target = save_image(result.image, _png(path))
        return [target, write_record(sidecar(target), result.record)]
    if kind in ("atlas", "checkpoints"):
        target = save_image(result.grid, _png(path))
        return [target, write_record(sidecar(target), result.record)]
    if kind == "zoom":
        from featviz.io.video import write_animation

        fps = float(options.get("fps", 24.0))
        target = write_animation(result.frames, path, fps=fps)
        return [target, write_record(sidecar(target), dict(result.record, fps=fps))]
    raise FeatvizError(f"cannot save {type(result).__name__}: expected a featviz result with a run record")


def _save_render(result: Any, path: Path, grid: bool = True, labels: list[str] | None = None) -> list[Path]:
    n = result.images.shape[0]
    written = []
    for i in range(n):
        target = path if n == 1 else path.with_name(f"{path.stem}_{i}{path.suffix}")
        save_image(result.images[i], target)
        index = i if n > 1 else result.record.get("index", 0)  # one image picked from a batch keeps its index
        record = dict(result.record, index=index, image_score=result.final[i].item())
        written.append(target)
        write_record(sidecar(target), record)
    if grid and n > 1:
        from featviz.io.grid import make_grid

        units = result.record.get("unit")
        names = labels or (units if isinstance(units, list) and len(units) == n else [str(i) for i in range(n)])
        save_image(make_grid(result.images, [str(u) for u in names], columns=min(n, 8)), path)
        write_record(sidecar(path), result.record)
        written.insert(0, path)
    return written

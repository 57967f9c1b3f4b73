"""Writing dataset examples: a JSON summary and, per channel, strips of the top and bottom
examples' patches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from featviz.io.files import atomic_write, json_bytes
from featviz.io.images import png_bytes


def write_examples(result: Any, folder: str | Path, side: int = 64) -> list[Path]:
    """``folder/examples.json`` and ``folder/LAYER/CHANNEL_top.png`` / ``_bottom.png``
    (each example's patch resized to ``side`` px, best first); returns the files written."""
    folder = Path(folder)
    written = [atomic_write(folder / "examples.json", json_bytes(summary(result)))]
    for name, ex in result.layers.items():
        for c in range(ex.channels):
            for which in ("top", "bottom"):
                strip = result.strip(name, c, which, side)
                written.append(atomic_write(folder / name / f"{c}_{which}.png", png_bytes(strip)))
    return written


def summary(result: Any) -> dict[str, Any]:
    """The result as JSON-ready data: per layer and channel, the examples' ids, values and
    positions, and the statistics; a run record of kind ``examples``
    (:func:`~featviz.optvis.record.make_record`: status, seconds, creation time, versions)."""
    from featviz.optvis.record import make_record

    out: dict[str, Any] = {"model": result.model, "source": result.source, "size": result.size, "k": result.k}
    out["images"] = len(result.items)
    out["skipped"] = result.skipped
    out["layers"] = {}
    for name, ex in result.layers.items():
        out["layers"][name] = {
            "grid": list(ex.grid),
            "receptive_field": list(ex.field),
            "channels": [channel_summary(result, name, c) for c in range(ex.channels)],
        }
    return make_record("examples", out, seconds=result.seconds)


def channel_summary(result: Any, layer: str, c: int) -> dict[str, Any]:
    """One channel's examples (image id, value, position, patch box) and statistics."""
    ex = result.layers[layer]
    return {
        "top": _entries(result, ex, ex.top, c),
        "bottom": _entries(result, ex, ex.bottom, c),
        "top_mean": _entries(result, ex, ex.top_mean, c),
        "mean": float(ex.mean[c]),
        "max": float(ex.max[c]),
        "fires": float(ex.fires[c]),
        "hist": ex.hist[c].long().tolist(),
        "edges": [round(float(e), 6) for e in ex.edges[c]],
    }


def _entries(result: Any, ex: Any, top: Any, c: int) -> list[dict[str, Any]]:
    out = []
    for r in range(top.index.shape[1]):
        y, x = (int(v) for v in top.pos[c, r])
        out.append(
            {
                "image": result.items[int(top.index[c, r])].id,
                "value": float(top.values[c, r]),
                "y": y,
                "x": x,
                "patch": list(ex.patch_box(y, x, result.size)),
            }
        )
    return out

"""Run records: everything it takes to reproduce an image, as JSON-ready data."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from typing import Any

import torch

from featviz.models import ModelAdapter
from featviz.objectives import Objective
from featviz.recipes import Recipe


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("featviz", "torch", "torchvision", "timm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def make_record(
    adapter: ModelAdapter,
    requested: Any,
    objective: Objective,
    recipe: Recipe,
    *,
    seed: int,
    batch: int,
    size: int,
    device: torch.device,
    curve: torch.Tensor,
    final: torch.Tensor,
    seconds: float,
) -> dict[str, Any]:
    """A JSON-serializable record of one render."""
    unit = (
        requested
        if isinstance(requested, str)
        else (
            [u if isinstance(u, str) else repr(u) for u in requested]
            if isinstance(requested, (list, tuple))
            else repr(requested)
        )
    )
    return {
        "model": adapter.name,
        "unit": unit,
        "objective": repr(objective),
        "recipe": recipe.to_dict(),
        "seed": seed,
        "steps": recipe.steps,
        "size": size,
        "batch": batch,
        "device": str(device),
        "final_score": final.tolist(),
        "curve": curve.mean(1).tolist(),
        "seconds": round(seconds, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
    }

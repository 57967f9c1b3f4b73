"""A unit across training: the same unit, seed and recipe rendered on several checkpoints of
one architecture, side by side and as an animation (how a feature forms as the network learns).

Each checkpoint is a state-dict file of the architecture (read as tensors only, see
:mod:`featviz.models.weights`); the record names each file with the digest of its bytes, so
a strip can be checked against the files it was made from.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from featviz.errors import FeatvizError, shorten
from featviz.io.grid import make_grid
from featviz.models import load_model
from featviz.optvis.recipes import DEFAULT_RECIPE, Recipe
from featviz.optvis.record import INTEGER, LIST, MAPPING, TEXT, make_record
from featviz.optvis.render import RenderResult, render
from featviz.optvis.replaying import check_record, replay_device


@dataclass
class CheckpointsResult:
    """One image per checkpoint (``[N, 3, H, W]``, CPU, [0, 1]), each render's own result,
    the labelled strip and the record. Write it with :func:`featviz.save` (the strip; an
    animation of the images with ``featviz.io.video.write_animation``)."""

    images: torch.Tensor
    renders: list[RenderResult]
    grid: torch.Tensor
    record: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"CheckpointsResult({len(self.renders)} checkpoints, unit {self.record.get('unit')!r})"


def digest_file(path: str | Path) -> str:
    """The first 16 hex digits of a file's SHA-256."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def across_checkpoints(
    model: str,
    unit: str,
    checkpoints: Sequence[str | Path],
    *,
    recipe: str | Recipe = DEFAULT_RECIPE,
    steps: int | None = None,
    size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> CheckpointsResult:
    """Render ``unit`` of the architecture ``model`` (``torchvision:NAME`` or ``timm:NAME``)
    with each checkpoint's weights, the same seed and recipe for all."""
    if not checkpoints:
        raise FeatvizError("expected at least one checkpoint file")
    missing = [str(p) for p in checkpoints if not Path(p).is_file()]
    if missing:
        raise FeatvizError(f"checkpoint files not found: {', '.join(missing)}")
    start = time.perf_counter()
    renders = []
    for path in checkpoints:
        adapter = load_model(model, weights=str(path))
        renders.append(
            render(adapter, unit, recipe=recipe, steps=steps, size=size, seed=seed, device=device, progress=progress)
        )
    images = torch.cat([r.images for r in renders])
    labels = [Path(p).stem for p in checkpoints]
    first = renders[0].record
    fields = {
        "model": first["model"],
        "unit": unit,
        "checkpoints": [{"path": str(p), "sha256": digest_file(p)} for p in checkpoints],
        "recipe": first["recipe"],
        "seed": seed,
        "size": first["size"],
        "scores": [float(r.final[0]) for r in renders],
        "renders": [{k: v for k, v in r.record.items() if k != "curve"} for r in renders],
        "device": first["device"],  # for a replay
    }
    record = make_record("checkpoints", fields, seconds=time.perf_counter() - start)
    grid = make_grid(images, labels, columns=len(labels))
    return CheckpointsResult(images, renders, grid, record)


_RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "model": (TEXT,),
    "unit": (TEXT,),
    "checkpoints": (LIST,),
    "recipe": (MAPPING,),
    "seed": (INTEGER,),
    "device": (TEXT,),
}


def replay_checkpoints(
    record: dict[str, Any], *, device: str | torch.device | None = None, progress: bool = True
) -> CheckpointsResult:
    """Render again the strip a record describes (see :func:`featviz.replay`), from the same
    checkpoint files: a file changed since (its SHA-256 differs) or gone is refused. The
    record's recipe is the first render's, as it ran (steps and size folded in)."""
    check_record(record, "checkpoints", _RECORD_FIELDS)
    files = record["checkpoints"]
    if not files or not all(isinstance(f, dict) and {"path", "sha256"} <= set(f) for f in files):
        raise FeatvizError(f"the record's checkpoints is {shorten(files)}: expected a list of {{path, sha256}}")
    for f in files:
        if not Path(f["path"]).is_file():
            raise FeatvizError(f"the checkpoint {f['path']} that the record names is gone: the strip cannot replay")
        if digest_file(f["path"]) != f["sha256"]:
            raise FeatvizError(
                f"{f['path']} changed since the record was made (sha256 {f['sha256']}... expected): "
                "the record's run used other weights"
            )
    return across_checkpoints(
        record["model"],
        record["unit"],
        [f["path"] for f in files],
        recipe=Recipe.from_dict(record["recipe"]),
        seed=record["seed"],
        device=replay_device(record, device),
        progress=progress,
    )

"""Eternal zoom: render a unit, then over and over magnify the centre a little and let the
optimization fill in new detail for a few steps. The frames make a video that seems to fall
into the visualization forever."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from featviz.errors import FeatvizError
from featviz.models import ModelAdapter, load_model
from featviz.optvis.objectives import Objective
from featviz.optvis.recipes import DEFAULT_RECIPE, Recipe, get_recipe
from featviz.optvis.record import INTEGER, LIST, MAPPING, NUMBER, TEXT, make_record, weights_fields
from featviz.optvis.render import render
from featviz.optvis.replaying import check_record, replay_device, replay_model, replay_objective


@dataclass
class ZoomResult:
    """The frames ``[3, H, W]`` (CPU, [0, 1]), the objective on each and the run record.
    Write it with :func:`featviz.save` (MP4 or GIF by suffix)."""

    frames: list[torch.Tensor]
    scores: list[float]
    record: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        h, w = self.frames[0].shape[-2:] if self.frames else (0, 0)
        return f"ZoomResult({len(self.frames)} frames {w}x{h})"


def zoom_in(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Magnify the centre of ``[3, H, W]`` (or a batch) in [0, 1] by ``factor``, keeping the
    size: the central ``1 / factor`` of the image resampled to the full size.

    >>> image = torch.zeros(3, 8, 8)
    >>> image[:, 3:5, 3:5] = 1.0
    >>> (zoom_in(image, 2.0)[0] > 0.5).long()
    tensor([[0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0]])
    """
    if factor < 1:
        raise FeatvizError(f"zoom factor must be at least 1, got {factor}")
    batch = image if image.dim() == 4 else image[None]
    theta = torch.tensor([[1 / factor, 0.0, 0.0], [0.0, 1 / factor, 0.0]], dtype=batch.dtype, device=batch.device)
    grid = F.affine_grid(theta.expand(batch.shape[0], 2, 3), list(batch.shape), align_corners=False)
    # Bicubic, not bilinear: every frame resamples the last one, and bilinear's slight blur
    # compounds over the frames (the steady state is about half as sharp).
    out = F.grid_sample(batch, grid, mode="bicubic", padding_mode="border", align_corners=False).clamp(0, 1)
    return out if image.dim() == 4 else out[0]


def zoom(
    model: str | nn.Module | ModelAdapter,
    objective: str | Objective | Sequence[str | Objective],
    *,
    frames: int = 120,
    factor: float = 1.04,
    steps_per_frame: int = 8,
    fade: float = 0.03,
    first_steps: int | None = None,
    size: int = 128,
    recipe: str | Recipe = DEFAULT_RECIPE,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> ZoomResult:
    """Render ``objective`` (``first_steps``, the recipe's steps when left out), then make
    ``frames - 1`` more frames: each is the previous one zoomed in by ``factor`` and then
    optimized for ``steps_per_frame`` steps starting from it (the ``init`` of the render).

    ``fade`` pulls every zoomed frame that much towards its mean colour first. Without it
    each frame starts from the last one's contrast and adds more, so over a hundred frames
    contrast and saturation ratchet up until the colours clip; 0.03 keeps them steady.

    >>> result = zoom("efficientnet_lite0", "blocks.2:5", frames=3, first_steps=4, steps_per_frame=1,
    ...               size=64, progress=False)
    >>> len(result.frames), tuple(result.frames[-1].shape)
    (3, (3, 64, 64))
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    if frames < 1 or steps_per_frame < 1 or not 0 <= fade < 1:
        raise FeatvizError(
            f"expected frames >= 1, steps_per_frame >= 1 and 0 <= fade < 1, got {frames}, {steps_per_frame}, {fade}"
        )
    adapter = load_model(model)
    rec = get_recipe(recipe).replace(size=size, **({"lr": lr} if lr is not None else {}))
    first = render(adapter, objective, recipe=rec, steps=first_steps, seed=seed, device=device, progress=False)
    if first.interrupted:
        raise KeyboardInterrupt
    out, scores = [first.images[0]], [float(first.final[0])]
    for i in tqdm(range(1, frames), disable=not progress, desc="zoom", leave=False):
        grown = zoom_in(out[-1], factor)
        mean = grown.mean(dim=(-2, -1), keepdim=True)
        grown = mean + (grown - mean) * (1 - fade)
        step = render(
            adapter,
            objective,
            recipe=rec,
            steps=steps_per_frame,
            init=grown,
            seed=seed + i,
            device=device,
            progress=False,
        )
        if step.interrupted:
            raise KeyboardInterrupt
        out.append(step.images[0])
        scores.append(float(step.final[0]))
    fields = {
        "model": adapter.name,
        "unit": first.record["unit"],
        "objective": first.record["objective"],
        "recipe": first.record["recipe"],
        "frames": frames,
        "factor": factor,
        "first_steps": first.record["steps"],
        "steps_per_frame": steps_per_frame,
        "fade": fade,
        "size": size,
        "seed": seed,
        "scores": scores,
        "unit_form": first.record["unit_form"],  # how a replay reads "unit" back
        "device": first.record["device"],
        **weights_fields(adapter),
    }
    record = make_record("zoom", fields, seconds=time.perf_counter() - start)
    return ZoomResult(out, scores, record)


_RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "model": (TEXT,),
    "unit": (TEXT, LIST),
    "unit_form": (TEXT,),
    "recipe": (MAPPING,),
    "frames": (INTEGER,),
    "factor": (NUMBER,),
    "first_steps": (INTEGER,),
    "steps_per_frame": (INTEGER,),
    "fade": (NUMBER,),
    "size": (INTEGER,),
    "seed": (INTEGER,),
    "device": (TEXT,),
    "load": (MAPPING,),
}


def replay_zoom(
    record: dict[str, Any],
    *,
    model: str | nn.Module | ModelAdapter | None = None,
    objective: Any = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> ZoomResult:
    """Zoom again as a zoom's record describes (see :func:`featviz.replay`): the same frames
    on the machine that made them. The record's recipe is the first frame's, as it ran (its
    steps, learning rate and size folded in)."""
    check_record(record, "zoom", _RECORD_FIELDS, optional=("load",))
    recipe = Recipe.from_dict(record["recipe"])
    dev = replay_device(record, device)
    return zoom(
        replay_model(record, model, dev),
        replay_objective(record, objective),
        frames=record["frames"],
        factor=record["factor"],
        steps_per_frame=record["steps_per_frame"],
        fade=record["fade"],
        first_steps=record["first_steps"],
        size=record["size"],
        recipe=recipe,
        seed=record["seed"],
        device=dev,
        progress=progress,
    )

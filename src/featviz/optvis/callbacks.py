"""Step callbacks: called after every optimizer step with the render state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from featviz.errors import RenderError
from featviz.optvis.param import Parameterization, PixelImage
from featviz.optvis.transforms import gaussian_blur


@dataclass
class StepState:
    """What a callback sees: the step just taken (0-based), the parameterization and the
    per-image scores of that step (a device tensor; reading it forces a sync)."""

    step: int
    steps: int
    param: Parameterization
    scores: torch.Tensor


class Callback(Protocol):
    def __call__(self, state: StepState) -> None: ...


@dataclass
class BlurEvery:
    """Blur the pixels every ``every`` steps (the classic tutorial's "improvement 4"):
    it removes the high frequencies that the model would otherwise amplify into noise."""

    every: int = 10
    sigma: float = 0.5

    def __call__(self, state: StepState) -> None:
        if (state.step + 1) % self.every:
            return
        if not isinstance(state.param, PixelImage):
            raise RenderError(f"BlurEvery needs a pixel parameterization, got {type(state.param).__name__}")
        with torch.no_grad():
            state.param.pixels.copy_(gaussian_blur(state.param.pixels, self.sigma))


@dataclass
class RecordFrames:
    """Keep a copy of the images every ``every`` steps (on the CPU), for animations."""

    every: int = 8
    frames: list[torch.Tensor] = field(default_factory=list)

    def __call__(self, state: StepState) -> None:
        if state.step % self.every == 0 or state.step == state.steps - 1:
            with torch.no_grad():
                self.frames.append(state.param().detach().float().cpu())

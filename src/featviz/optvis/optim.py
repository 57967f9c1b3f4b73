"""The render loop's optimizers, stepped through ``torch.optim``'s functional updates.

Building a ``torch.optim.Optimizer`` imports ``torch._dynamo`` (about 1.2 s on a CPU, a
quarter of a ``featviz render`` command's start-up); the functional forms
(``torch.optim.adam.adam`` and its siblings) do the same arithmetic -- the same kernels, so
the same bits -- without it. These classes keep just what the loop uses: ``step``,
``zero_grad`` and ``param_groups[0]["lr"]`` for the learning-rate schedule. A callable
passed as ``optimizer=`` may still return any ``torch.optim.Optimizer``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from featviz.errors import FeatvizError


class Optimizer:
    """One parameter group; ``defaults`` are the options a recipe may set
    (``optimizer_kwargs``), with the values torch.optim uses."""

    defaults: dict[str, Any] = {}

    def __init__(self, params: Sequence[torch.Tensor], lr: float, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise FeatvizError(
                f"optimizer {self.name!r} does not take the options {unknown}: expected some of {sorted(self.defaults)}"
            )
        self.params = [p for p in params if p.requires_grad]
        self.options = {**self.defaults, **options}
        self.param_groups = [{"params": self.params, "lr": float(lr), **self.options}]
        self.state: dict[str, list[Any]] = {}

    name = ""

    @property
    def lr(self) -> float:
        return float(self.param_groups[0]["lr"])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        live = [p for p in self.params if p.grad is not None]
        if live:
            self._update(live, [p.grad for p in live])  # type: ignore[misc]

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _moments(self, params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Adam's state: first and second moments and the step count, per parameter."""
        return [
            self._buffers("exp_avg", params),
            self._buffers("exp_avg_sq", params),
            self._buffers("step", params, True),
        ]

    def _buffers(self, key: str, like: list[torch.Tensor], scalar: bool = False) -> list[torch.Tensor]:
        if key not in self.state:
            self.state[key] = [
                torch.zeros((), dtype=torch.float32, device=p.device) if scalar else torch.zeros_like(p) for p in like
            ]
        return self.state[key]


class Adam(Optimizer):
    """``torch.optim.Adam`` (``AdamW`` with ``decoupled_weight_decay``), fused into one kernel
    where the device has it (~3x cheaper per step on a CPU than the unfused update)."""

    name = "adam"
    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "maximize": False}
    decoupled = False
    fused: bool | None = None

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        o = self.options
        exp_avg, exp_avg_sq, steps = self._moments(params)
        max_exp_avg_sq = self._buffers("max_exp_avg_sq", params) if o["amsgrad"] else []
        args = (params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, steps)
        kwargs = {
            "amsgrad": o["amsgrad"],
            "beta1": o["betas"][0],
            "beta2": o["betas"][1],
            "lr": self.lr,
            "weight_decay": o["weight_decay"],
            "eps": o["eps"],
            "maximize": o["maximize"],
            "decoupled_weight_decay": self.decoupled,
        }
        from torch.optim.adam import adam

        if self.fused is None:
            self.fused = all(p.dtype in (torch.float32, torch.float64) for p in params)
        if self.fused:
            try:
                adam(*args, foreach=False, fused=True, **kwargs)
                return
            except RuntimeError:  # a device without the fused kernel: the plain update from now on
                self.fused = False
        adam(*args, foreach=False, fused=False, **kwargs)


class AdamW(Adam):
    name = "adamw"
    defaults = {**Adam.defaults, "weight_decay": 1e-2}
    decoupled = True


class NAdam(Optimizer):
    """``torch.optim.NAdam`` (Nesterov momentum in Adam)."""

    name = "nadam"
    defaults = {
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum_decay": 4e-3,
        "decoupled_weight_decay": False,
    }

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        from torch.optim.nadam import nadam

        o = self.options
        if "mu_product" not in self.state:
            self.state["mu_product"] = [torch.ones((), dtype=torch.float32, device=p.device) for p in params]
        exp_avg, exp_avg_sq, steps = self._moments(params)
        nadam(
            params,
            grads,
            exp_avg,
            exp_avg_sq,
            self.state["mu_product"],
            steps,
            decoupled_weight_decay=o["decoupled_weight_decay"],
            foreach=False,
            beta1=o["betas"][0],
            beta2=o["betas"][1],
            lr=self.lr,
            weight_decay=o["weight_decay"],
            momentum_decay=o["momentum_decay"],
            eps=o["eps"],
        )


class SGD(Optimizer):
    """``torch.optim.SGD``, with momentum and Nesterov when asked."""

    name = "sgd"
    defaults = {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0, "maximize": False}

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        from torch.optim.sgd import sgd

        o = self.options
        buffers = self.state.setdefault("momentum_buffer", [None] * len(params))
        sgd(params, grads, buffers, foreach=False, lr=self.lr, **{k: o[k] for k in self.defaults})


class NormalizedSGD(Optimizer):
    """Gradient steps divided by the gradient's mean magnitude: every step moves a pixel by
    ``lr`` on average, whatever the objective's scale (DeepDream's step)."""

    name = "normalized"
    defaults = {"eps": 1e-8}

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        for p, g in zip(params, grads, strict=True):
            p.add_(g / (g.abs().mean() + self.options["eps"]), alpha=-self.lr)


OPTIMIZERS: dict[str, type[Optimizer]] = {c.name: c for c in (Adam, SGD, NAdam, AdamW, NormalizedSGD)}


class Cosine:
    """The learning rate annealed from ``lr`` to ``lr * final`` over ``steps`` steps, half a
    cosine (``torch.optim.lr_scheduler.CosineAnnealingLR``'s curve, computed in closed form)."""

    def __init__(self, opt: Any, steps: int, final: float) -> None:
        self.opt, self.steps, self.t = opt, max(int(steps), 1), 0
        self.start = float(opt.param_groups[0]["lr"])
        self.end = self.start * float(final)

    def step(self) -> None:
        self.t = min(self.t + 1, self.steps)
        lr = self.end + (self.start - self.end) * (1 + math.cos(math.pi * self.t / self.steps)) / 2
        for group in self.opt.param_groups:
            group["lr"] = lr

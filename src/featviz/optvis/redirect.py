"""ReLU gradient redirection (Lucid's trick against dead units).

A unit whose input puts every ReLU on its path below zero gets no gradient at all: the
optimization never starts and the image stays grey. During the first steps of a render,
:func:`redirect_relus` lets the gradient of a clipped ReLU (``ReLU``, ``ReLU6``,
``Hardtanh``) through where it would move the input back into the active range, for the
images that the ordinary gradient does not reach at all; images that already get a gradient
keep the ordinary one. Once the units are alive the ordinary gradient takes over.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _RedirectedClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, low: float, high: float | None) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        low, high = ctx.low, ctx.high
        inside = x > low if high is None else (x > low) & (x < high)
        plain = grad * inside
        # Gradient descent moves x by -grad: below the range pass what raises x, above it
        # what lowers it.
        back = inside | ((x <= low) & (grad < 0))
        if high is not None:
            back |= (x >= high) & (grad > 0)
        dead = plain.flatten(1).abs().amax(1) == 0
        view = (-1,) + (1,) * (x.dim() - 1)
        return torch.where(dead.view(view), grad * back, plain), None, None


def _limits(module: nn.Module) -> tuple[float, float | None] | None:
    if isinstance(module, nn.ReLU):
        return 0.0, None
    if isinstance(module, nn.Hardtanh):  # ReLU6 included
        return float(module.min_val), float(module.max_val)
    return None


class RedirectedReLUs:
    """Handle of an active redirection; :meth:`remove` restores the model (idempotent)."""

    def __init__(self, module: nn.Module) -> None:
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._inplace: list[tuple[nn.Module, bool]] = []
        for m in module.modules():
            limits = _limits(m)
            if limits is None:
                continue
            # The hook needs the input as it was before the activation.
            self._inplace.append((m, bool(getattr(m, "inplace", False))))
            m.inplace = False  # type: ignore[assignment]
            self._handles.append(m.register_forward_hook(_hook(*limits)))

    @property
    def count(self) -> int:
        """How many activation modules are redirected."""
        return len(self._handles)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        for m, inplace in self._inplace:
            m.inplace = inplace  # type: ignore[assignment]
        self._handles, self._inplace = [], []

    def __enter__(self) -> RedirectedReLUs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _hook(low: float, high: float | None) -> Any:
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
        x = inputs[0]
        if not x.requires_grad:
            return None
        return _RedirectedClamp.apply(x, low, high)

    return hook


def redirect_relus(module: nn.Module) -> RedirectedReLUs:
    """Redirect the gradients of every ReLU-like module under ``module`` until ``remove()``
    (or the end of a ``with`` block).

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> with redirect_relus(net) as r:
    ...     r.count
    1
    """
    return RedirectedReLUs(module)

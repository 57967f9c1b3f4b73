"""The render loop's optimizers: ``torch.optim``'s own classes, named for recipes.

``adam``, ``adamw``, ``nadam`` and ``sgd`` are ``torch.optim.Adam``, ``AdamW``, ``NAdam`` and
``SGD`` (subclasses that are ``isinstance`` of them, with their ``state_dict``, parameter
groups and learning-rate schedulers); ``normalized`` is DeepDream's step as a
``torch.optim.Optimizer``. One thing differs: ``torch.optim`` wraps ``step``,
``zero_grad`` and ``add_param_group`` in hooks for ``torch.compile``, whose first call
imports ``torch._dynamo`` (about 3 s on a 2-core CPU, more than the rest of a
``featviz render`` command's start-up). The render loop never compiles its optimizer, so these
classes call the unwrapped methods -- the same code, the same kernels, the same bits.
Any other ``torch.optim.Optimizer`` class or instance passed as ``optimizer=`` is used as given.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
import torch.optim
from torch.optim.lr_scheduler import CosineAnnealingLR

from featviz.errors import FeatvizError


def _without_compile_hooks(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``cls`` with ``torch.optim``'s own methods, minus the ``torch.compile`` wrappers."""
    base = next(b for b in cls.__mro__[1:] if b.__module__.startswith("torch.optim"))
    cls.add_param_group = torch.optim.Optimizer.add_param_group.__wrapped__  # type: ignore[attr-defined,method-assign]
    cls.zero_grad = torch.optim.Optimizer.zero_grad.__wrapped__  # type: ignore[attr-defined,method-assign]
    if "step" not in cls.__dict__:
        cls.step = torch.no_grad()(base.step.__wrapped__)  # type: ignore[attr-defined,method-assign]
    return cls


class _Named:
    """The recipe's name and the options it may set (``optimizer_kwargs``), checked on the way in."""

    name = ""

    def __init__(self, params: Any, lr: float, **options: Any) -> None:
        allowed = _options(type(self))
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise FeatvizError(
                f"optimizer {self.name!r} does not take the options {unknown}: expected some of {sorted(allowed)}"
            )
        super().__init__(params, lr=lr, **self._extra(options))  # type: ignore[call-arg]

    def _extra(self, options: dict[str, Any]) -> dict[str, Any]:
        return options


def _options(cls: type) -> dict[str, Any]:
    """The keyword options of an optimizer class's constructor, with their defaults."""
    base = next(b for b in cls.__mro__ if b.__module__.startswith("torch.optim") and b is not torch.optim.Optimizer)
    skip = {"self", "params", "lr", "foreach", "fused", "capturable", "differentiable"}
    return {k: p.default for k, p in inspect.signature(base).parameters.items() if k not in skip}


@_without_compile_hooks
class Adam(_Named, torch.optim.Adam):
    """``torch.optim.Adam``, fused into one kernel where the device has it (~3x cheaper per
    step on a CPU than the unfused update)."""

    name = "adam"

    def _extra(self, options: dict[str, Any]) -> dict[str, Any]:
        return {**options, "fused": True}


@_without_compile_hooks
class AdamW(_Named, torch.optim.AdamW):
    """``torch.optim.AdamW`` (decoupled weight decay), fused as :class:`Adam` is."""

    name = "adamw"

    def _extra(self, options: dict[str, Any]) -> dict[str, Any]:
        return {**options, "fused": True}


@_without_compile_hooks
class NAdam(_Named, torch.optim.NAdam):
    """``torch.optim.NAdam`` (Nesterov momentum in Adam)."""

    name = "nadam"


@_without_compile_hooks
class SGD(_Named, torch.optim.SGD):
    """``torch.optim.SGD``, with momentum and Nesterov when asked."""

    name = "sgd"


@_without_compile_hooks
class NormalizedSGD(torch.optim.Optimizer):
    """Gradient steps divided by the gradient's mean magnitude: every step moves a pixel by
    ``lr`` on average, whatever the objective's scale (DeepDream's step)."""

    name = "normalized"

    def __init__(self, params: Any, lr: float, eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad / (p.grad.abs().mean() + group["eps"]), alpha=-group["lr"])


_fused_ok: dict[str, bool] = {}


def build(cls: Any, params: Sequence[torch.Tensor], lr: float, options: dict[str, Any]) -> Any:
    """``cls(params, lr=lr, **options)``; a fused class on a device without its fused
    kernel (or for half-precision tensors) falls back to the plain update."""
    if cls in (Adam, AdamW):
        device = params[0].device.type if params else "cpu"
        if _fused_ok.get(device, True) and all(p.dtype in (torch.float32, torch.float64) for p in params):
            try:
                return cls(params, lr=lr, **options)
            except RuntimeError:
                _fused_ok[device] = False
        plain: Any = _without_compile_hooks(type(cls.__name__, (cls.__mro__[2],), {"name": cls.name}))
        return plain(params, lr=lr, **options)
    return cls(params, lr=lr, **options)


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    c.name: c  # type: ignore[attr-defined]
    for c in (Adam, SGD, NAdam, AdamW, NormalizedSGD)
}


def cosine(opt: torch.optim.Optimizer, steps: int, final: float) -> CosineAnnealingLR:
    """The learning rate annealed from ``lr`` to ``lr * final`` over ``steps`` steps, half a
    cosine (``torch.optim.lr_scheduler.CosineAnnealingLR``)."""
    lr = float(opt.param_groups[0]["lr"])
    return CosineAnnealingLR(opt, T_max=max(int(steps), 1), eta_min=lr * float(final))

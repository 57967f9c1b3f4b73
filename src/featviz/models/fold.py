"""Fold eval-mode batch norms into the convolutions before them, for the length of a render.

With frozen weights in eval mode, ``bn(conv(x))`` is one convolution with rescaled weights
and a bias. Folding skips the batch-norm pass and its backward, which on CPUs costs as much
as the convolution itself at high resolution. The caller's model is changed only inside
the context: weights, biases and forwards are restored on exit, and a numerical check
against the unfolded model undoes the fold when the pairing guess was wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_BN = (nn.BatchNorm2d,)


def _pairs(module: nn.Module, keep: set[str]) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(conv, bn) siblings registered one after the other, with matching channel counts;
    modules named in ``keep`` (hooked layers whose raw output is wanted) are left alone."""
    pairs = []
    for parent_name, parent in module.named_modules():
        children = list(parent.named_children())
        for (cname, conv), (bname, bn) in zip(children, children[1:], strict=False):
            full = [f"{parent_name}.{n}" if parent_name else n for n in (cname, bname)]
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(bn, _BN)
                and bn.track_running_stats
                and "forward" not in bn.__dict__  # already folded by an enclosing render
                and bn.running_var is not None
                and conv.out_channels == bn.num_features
                and not keep.intersection(full)
            ):
                pairs.append((conv, bn))
    return pairs


def _affine_of(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``scale, shift`` with ``bn(x) == x * scale + shift`` in eval mode."""
    assert bn.running_var is not None and bn.running_mean is not None  # checked in _pairs
    scale = 1 / torch.sqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    return scale, shift + bn.bias if bn.affine else shift


def _bn_free_forward(bn: nn.Module) -> Any:
    """The module's forward without its normalization (timm's BatchNormAct2d keeps drop + act)."""
    rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]

    def forward(x: torch.Tensor) -> torch.Tensor:
        for m in rest:
            x = m(x)
        return x

    return forward


@contextmanager
def fold_batchnorm(module: nn.Module, keep: Iterable[str] = (), check: torch.Tensor | None = None) -> Iterator[int]:
    """Fold conv + batch-norm pairs of an eval-mode ``module``; yields how many were folded.

    ``check``: an input on which the folded model must match the original, else no fold.
    """
    pairs = _pairs(module, set(keep))
    saved: list[tuple[nn.Conv2d, nn.Module, torch.Tensor, Any]] = []
    try:
        with torch.no_grad():
            reference = module(check) if check is not None and pairs else None
            for conv, bn in pairs:
                scale, shift = _affine_of(bn)
                bias = conv.bias
                saved.append((conv, bn, conv.weight.data, bias))
                conv.weight.data = conv.weight.data * scale.view(-1, 1, 1, 1)
                new_bias = shift + (bias.data * scale if bias is not None else 0)
                conv.bias = nn.Parameter(new_bias, requires_grad=False)
                bn.forward = _bn_free_forward(bn)  # type: ignore[method-assign]
            if reference is not None:
                folded = module(check)
                if not torch.allclose(folded, reference, rtol=1e-3, atol=1e-3):
                    _restore(saved)
                    saved = []
        yield len(saved)
    finally:
        _restore(saved)


def _restore(saved: list[tuple[nn.Conv2d, nn.Module, torch.Tensor, Any]]) -> None:
    for conv, bn, weight, bias in reversed(saved):
        conv.weight.data = weight
        conv.bias = bias
        del bn.forward
    saved.clear()

"""Where a layer keeps its channels, found by looking at how the model computes it, never
from the rank of its output.

One forward pass of a grey image records, for every module, its output shape and the last
module run up to its end that fixes a channel axis: a convolution, a 2-D norm or pool puts
channels on axis 1; a linear layer on the last axis; a LayerNorm on the axis its size
matches (the last, or axis 1 for timm's ``LayerNorm2d``). Elementwise modules
(activations, dropout) keep what they were given, and a permutation (torchvision's Swin
starts with one) is followed by finding the channel count's axis in the permuted shape.
So a Swin stage's ``[B, H, W, C]`` is read as channels last, a ConvNeXt block's output as
channels first, and a ViT block's ``[B, T, C]`` as tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

NCHW, NHWC, TOKENS, VECTOR, OTHER = "NCHW", "NHWC", "tokens", "vector", "other"

#: Modules whose output has channels on axis 1.
_CHANNELS_FIRST = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.GroupNorm,
    nn.InstanceNorm2d,
    nn.LocalResponseNorm,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)


@dataclass(frozen=True)
class Layout:
    """How one layer's output (for one image, batch left out) holds its channels.

    ``kind``: ``NCHW`` (``[C, H, W]``), ``NHWC`` (``[H, W, C]``), ``tokens`` (``[T, C]``),
    ``vector`` (``[C]``) or ``other``; ``shape`` the output's shape, ``channels`` its count.
    """

    kind: str
    shape: tuple[int, ...]
    channels: int | None


def _axis_of(module: nn.Module, out: torch.Tensor) -> int | None:
    """The channel axis that ``module`` fixes in its output ``out``, or ``None``."""
    if isinstance(module, _CHANNELS_FIRST):
        return 1
    if isinstance(module, nn.LayerNorm):  # over the last axis, or over axis 1 (timm's LayerNorm2d)
        count = module.normalized_shape[-1]
        return -1 if out.shape[-1] == count else 1 if out.shape[1] == count else None
    if isinstance(module, nn.Linear):
        return -1
    return None


def classify(shape: tuple[int, ...], evidence: tuple[int, tuple[int, ...]] | None) -> Layout:
    """The layout of an output of ``shape`` (with the batch axis) given ``evidence``: the
    channel axis and output shape of the last module that fixed one, or ``None``.

    >>> classify((1, 7, 7, 96), (1, (1, 96, 7, 7))).kind  # a permutation after a convolution
    'NHWC'
    >>> classify((1, 197, 192), (-1, (1, 197, 192))).kind
    'tokens'
    """
    one = tuple(shape[1:])
    if len(shape) == 2:
        return Layout(VECTOR, one, shape[1])
    axis = None
    if evidence is not None:
        ev_axis, ev_shape = evidence
        count = ev_shape[ev_axis]
        if tuple(ev_shape) == tuple(shape):
            axis = ev_axis % len(shape)
        else:  # reshaped or permuted since: the axis that holds the same count, if only one does
            hits = [i for i in range(1, len(shape)) if shape[i] == count]
            axis = hits[0] if len(hits) == 1 else None
    if len(shape) == 4:
        if axis == 3:
            return Layout(NHWC, one, shape[3])
        return Layout(NCHW, one, shape[1])  # a convolution's own layout, and PyTorch's default
    if len(shape) == 3 and axis in (None, 2):
        return Layout(TOKENS, one, shape[2])
    return Layout(OTHER, one, None)


@torch.no_grad()
def layouts(module: nn.Module, images: torch.Tensor) -> dict[str, Layout]:
    """The layout of every named module's output for ``images`` (one forward pass)."""
    events: list[tuple[int, tuple[int, ...]]] = []  # (channel axis, output shape), in the order run
    found: dict[str, Layout] = {}
    handles = []

    def hook_for(name: str) -> Any:
        def hook(mod: nn.Module, inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, torch.Tensor):
                return
            axis = _axis_of(mod, out) if out.dim() >= 2 else None
            if axis is not None:
                events.append((axis, tuple(out.shape)))
            if name and name not in found:
                found[name] = classify(tuple(out.shape), events[-1] if events else None)

        return hook

    was_training = module.training
    try:
        module.eval()
        for name, mod in module.named_modules():
            handles.append(mod.register_forward_hook(hook_for(name)))
        module(images)
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return found

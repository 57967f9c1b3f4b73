"""A layer's output as a grid of channels, ``[B, C, H, W]``, whatever its layout, and back.

Every analysis that reads channels at positions (examples, the Microscope's figures, explain's
maps, ablations) goes through :func:`to_grid`; one that changes a layer's output in place
(an ablation, a forward-mode tangent) writes its grid back with :func:`from_grid`, which keeps
what the grid leaves out (a ViT's class, distillation and register tokens) as it was.

- ``NCHW`` (convolutions): as it is.
- ``NHWC`` (a Swin stage, ConvNeXt internals): permuted.
- ``tokens`` ``[B, T, C]`` (ViT, DeiT, DINOv2, CLIP): the patch tokens on their square grid,
  the leading tokens dropped (``ModelAdapter.prefix_tokens``, else inferred from the count).
- ``vector`` ``[B, C]``: a 1 x 1 grid.
"""

from __future__ import annotations

import math

import torch

from featviz.errors import UnitError
from featviz.models.adapter import PSEUDO_LAYERS, ModelAdapter
from featviz.models.layout import NHWC


def prefix_tokens(adapter: ModelAdapter | None, tokens: int) -> int:
    """How many leading tokens of a ``tokens``-long sequence are not patches: the model's own
    count (timm's ``num_prefix_tokens``), else the fewest that leave a square grid."""
    if adapter is not None and adapter.prefix_tokens is not None:
        return int(adapter.prefix_tokens)
    return next((k for k in range(9) if math.isqrt(tokens - k) ** 2 == tokens - k), 0)


def _kind(adapter: ModelAdapter | None, layer: str) -> str:
    return "" if adapter is None or layer in PSEUDO_LAYERS else str(adapter.layout(layer).kind)


def to_grid(adapter: ModelAdapter | None, layer: str, act: torch.Tensor) -> torch.Tensor:
    """``layer``'s output ``act`` (or anything of its shape: a gradient, an attribution) as
    ``[B, C, H, W]`` (without an adapter, a 4-D output is taken as channels first)."""
    if act.dim() == 4:
        return act.permute(0, 3, 1, 2) if _kind(adapter, layer) == NHWC else act
    if act.dim() == 2:
        return act[:, :, None, None]
    if act.dim() == 3:
        tokens = act.shape[1]
        prefix = prefix_tokens(adapter, tokens)
        side = math.isqrt(max(tokens - prefix, 0))
        if side * side != tokens - prefix or side == 0:
            raise UnitError(f"layer {layer!r}: {tokens} tokens ({prefix} prefix) do not form a square grid")
        return act[:, prefix:, :].transpose(1, 2).reshape(act.shape[0], act.shape[2], side, side)
    raise UnitError(f"layer {layer!r} has a {act.dim()}-D output {tuple(act.shape)}; expected 2-D, 3-D or 4-D")


def from_grid(adapter: ModelAdapter, layer: str, act: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_grid`: ``grid`` (``[B', C, H, W]``) in ``layer``'s own layout,
    with ``act``'s tokens that are not patches kept (repeated when ``B'`` is a multiple of
    ``act``'s batch)."""
    if act.dim() == 4:
        return grid.permute(0, 2, 3, 1) if _kind(adapter, layer) == NHWC else grid
    if act.dim() == 2:
        return grid[:, :, 0, 0]
    prefix = act.shape[1] - grid.shape[2] * grid.shape[3]
    head = act[:, :prefix, :]
    if grid.shape[0] != head.shape[0]:
        head = head.repeat(grid.shape[0] // head.shape[0], 1, 1)
    return torch.cat([head.to(grid.dtype), grid.flatten(2).transpose(1, 2)], dim=1)


@torch.no_grad()
def grid_shape(adapter: ModelAdapter, layer: str, size: int | None = None) -> tuple[int, int, int]:
    """``(C, H, W)`` of ``layer``'s grid for one image of ``size`` px (the model's input size
    for a model that takes no other)."""
    from featviz.models.hooks import capture

    name = adapter.layer_name(layer)
    size = adapter.input_size if adapter.fixed_size or size is None else max(size, adapter.min_size)
    with capture(adapter, [name]) as cap:
        act = cap(torch.full((1, 3, size, size), 0.5, device=adapter.device))[name]
    c, h, w = to_grid(adapter, name, act).shape[1:]
    return int(c), int(h), int(w)

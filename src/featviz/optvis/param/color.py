"""Decorrelated colour: optimize in a space whose axes are uncorrelated in natural images."""

from __future__ import annotations

import torch

# Square root of the RGB covariance of ImageNet images (via SVD), as published with Lucid.
# Columns are the decorrelated axes: luminance, then two colour-opponent axes.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_MATRIX = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


def to_rgb(decorrelated: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` in the decorrelated space -> RGB (before the squashing sigmoid)."""
    m = COLOR_MATRIX.to(decorrelated.device, decorrelated.dtype)
    return torch.einsum("ij,bjhw->bihw", m, decorrelated)


def from_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_rgb`."""
    m = torch.linalg.inv(COLOR_MATRIX.double()).to(rgb.device, rgb.dtype)
    return torch.einsum("ij,bjhw->bihw", m, rgb)


def logit(image: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Inverse sigmoid of an image in [0, 1], clamped away from 0 and 1."""
    x = image.clamp(eps, 1 - eps)
    return torch.log(x / (1 - x))

"""Differentiable robustness transforms.

Each transform is an ``nn.Module`` called as ``t(images, generator)``; random parameters
are drawn per image from the given ``torch.Generator`` (on the CPU, so a seed gives the same
draws on every device) and then moved to the images' device. Geometric transforms are one
``grid_sample`` each, so gradients flow to every pixel.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _uniform(n: int, low: float, high: float, gen: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


class Transform(nn.Module):
    """Base class. ``copies`` > 1 means the transform expects the batch tiled that many times."""

    copies = 1

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover


class Compose(Transform):
    """Apply transforms in order."""

    def __init__(self, transforms: Iterable[Transform] = ()) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    @property
    def copies(self) -> int:  # type: ignore[override]
        return math.prod(t.copies for t in self.transforms)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            images = t(images, generator)
        return images

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Pad(Transform):
    """Pad every side by ``pixels`` with a constant (grey by default) or by reflection."""

    def __init__(self, pixels: int, mode: str = "constant", value: float = 0.5) -> None:
        super().__init__()
        self.pixels, self.mode, self.value = pixels, mode, value

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        p = self.pixels
        if self.mode == "constant":
            return F.pad(images, (p, p, p, p), mode="constant", value=self.value)
        return F.pad(images, (p, p, p, p), mode=self.mode)

    def extra_repr(self) -> str:
        return f"pixels={self.pixels}, mode={self.mode!r}"


def _affine(images: torch.Tensor, theta: torch.Tensor, size: Sequence[int] | None = None,
            padding: str = "reflection") -> torch.Tensor:
    b, c, h, w = images.shape
    out = (b, c, *(size or (h, w)))
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(out), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)


class RandomAffine(Transform):
    """Random shift (pixels, both directions), scale (range) and rotation (degrees, +/-),
    drawn independently for every image and applied in one resampling."""

    def __init__(self, translate: float = 0.0, scale: tuple[float, float] = (1.0, 1.0),
                 degrees: float = 0.0, padding: str = "reflection") -> None:
        super().__init__()
        self.translate, self.scale, self.degrees, self.padding = translate, tuple(scale), degrees, padding

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = images.shape
        s = _uniform(b, *self.scale, generator)
        a = _uniform(b, -self.degrees, self.degrees, generator) * math.pi / 180
        tx = _uniform(b, -self.translate, self.translate, generator) * 2 / w
        ty = _uniform(b, -self.translate, self.translate, generator) * 2 / h
        # theta maps output coordinates to input ones: zoom in by s = sample a 1/s window.
        cos, sin = torch.cos(a) / s, torch.sin(a) / s
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        return _affine(images, theta, padding=self.padding)

    def extra_repr(self) -> str:
        return f"translate={self.translate}, scale={self.scale}, degrees={self.degrees}"


def jitter(pixels: float) -> RandomAffine:
    """Random shift by up to ``pixels`` in both directions."""
    return RandomAffine(translate=pixels)


def random_scale(low: float, high: float) -> RandomAffine:
    return RandomAffine(scale=(low, high))


def random_rotate(degrees: float) -> RandomAffine:
    return RandomAffine(degrees=degrees)


class RandomCrops(Transform):
    """``k`` random crops of every image per step, rendered as one batch.

    Each crop covers a random share ``area`` of the image (as a square window) at a random
    place and is resampled to ``size`` (the input size when ``None``). The render loop tiles
    the batch ``k`` times before the transforms run and averages the objective over crops.
    """

    def __init__(self, k: int = 4, area: tuple[float, float] = (0.25, 1.0),
                 size: int | None = None) -> None:
        super().__init__()
        self.k, self.area, self.size = int(k), tuple(area), size

    @property
    def copies(self) -> int:  # type: ignore[override]
        return self.k

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = images.shape
        side = _uniform(b, *self.area, generator).sqrt()
        cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - side)
        cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - side)
        zero = torch.zeros(b)
        theta = torch.stack([torch.stack([side, zero, cx], 1), torch.stack([zero, side, cy], 1)], 1)
        out = (self.size, self.size) if self.size else (h, w)
        return _affine(images, theta, size=out, padding="reflection")

    def extra_repr(self) -> str:
        return f"k={self.k}, area={self.area}, size={self.size}"


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue per image; differentiable.

    Hue turns the chroma plane of YIQ by up to ``hue`` turns (0.5 = any hue), a linear map,
    so it works on images that require grad.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0) -> None:
        super().__init__()
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        rgb2yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        self.register_buffer("rgb2yiq", rgb2yiq, persistent=False)
        self.register_buffer("yiq2rgb", torch.linalg.inv(rgb2yiq), persistent=False)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = images.shape[0]
        dev = images.device
        view = (b, 1, 1, 1)
        if self.brightness:
            images = images * _uniform(b, 1 - self.brightness, 1 + self.brightness, generator).to(dev).view(view)
        if self.contrast:
            mean = images.mean(dim=(1, 2, 3), keepdim=True)
            f = _uniform(b, 1 - self.contrast, 1 + self.contrast, generator).to(dev).view(view)
            images = (images - mean) * f + mean
        if self.saturation or self.hue:
            images = self._chroma(images, generator)
        return images

    def _chroma(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b = images.shape[0]
        sat = _uniform(b, 1 - self.saturation, 1 + self.saturation, generator)
        ang = _uniform(b, -self.hue, self.hue, generator) * 2 * math.pi
        one, zero = torch.ones(b), torch.zeros(b)
        # Rotate and scale the (I, Q) chroma plane; keep luma Y.
        m = torch.stack([
            torch.stack([one, zero, zero], 1),
            torch.stack([zero, sat * torch.cos(ang), -sat * torch.sin(ang)], 1),
            torch.stack([zero, sat * torch.sin(ang), sat * torch.cos(ang)], 1),
        ], 1).to(images.device, images.dtype)
        full = self.yiq2rgb.to(images.dtype) @ m @ self.rgb2yiq.to(images.dtype)
        return torch.einsum("bij,bjhw->bihw", full, images)

    def extra_repr(self) -> str:
        return f"brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, hue={self.hue}"


class GaussianNoise(Transform):
    """Add Gaussian noise of standard deviation ``std``."""

    def __init__(self, std: float = 0.02) -> None:
        super().__init__()
        self.std = std

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(images.shape, generator=generator).to(images.device, images.dtype)
        return images + self.std * noise

    def extra_repr(self) -> str:
        return f"std={self.std}"


class Resize(Transform):
    """Resample to a fixed ``size`` (the model's input size, say)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.shape[-2:] == (self.size, self.size):
            return images
        return F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False,
                             antialias=images.shape[-1] > self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflection padding (used by the blur callback)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-(x * x) / (2 * sigma * sigma))
    k = k / k.sum()
    c = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

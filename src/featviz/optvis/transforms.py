"""Differentiable robustness transforms.

Each transform is an ``nn.Module`` called as ``t(images, generator)``; random parameters
are drawn per image from the given ``torch.Generator`` (on the CPU, so a seed gives the same
draws on every device) and then moved to the images' device. Geometric transforms are one
``grid_sample`` each, so gradients flow to every pixel.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from featviz.errors import FeatvizError, suggestion

#: A transform as the recipes and run records write it: a registry name and its arguments.
TransformSpec = tuple[str, dict[str, Any]]


def _uniform(n: int, low: float, high: float, gen: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


class Transform(nn.Module):
    """Base class. ``copies`` > 1 means the transform expects the batch tiled that many times."""

    copies = 1
    name = ""  # the registry name that builds it again (see TRANSFORMS)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """The size of what this transform makes of an ``h`` x ``w`` image."""
        return h, w

    def settings(self) -> dict[str, Any]:
        """The arguments that build this transform again (``TRANSFORMS[name](**settings)``)."""
        raise NotImplementedError  # pragma: no cover

    def specs(self) -> list[TransformSpec]:
        """This transform as run records write it; :func:`build_transforms` reads it back."""
        if not self.name or TRANSFORMS.get(self.name) is not type(self):
            raise FeatvizError(f"{type(self).__name__} is not a registered transform: a record cannot rebuild it")
        return [(self.name, self.settings())]


class Compose(Transform):
    """Apply transforms in order."""

    def __init__(self, transforms: Iterable[Transform] = ()) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    @property
    def copies(self) -> int:  # type: ignore[override]
        return math.prod(int(getattr(t, "copies", 1)) for t in self.transforms)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        run: list[Geometric] = []
        for t in self.transforms:
            if isinstance(t, Geometric):
                run.append(t)
                continue
            images = fuse_geometric(run, images, generator) if run else images
            run = []
            images = t(images, generator)
        return fuse_geometric(run, images, generator) if run else images

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"

    def specs(self) -> list[TransformSpec]:
        return [spec for t in self.transforms for spec in t.specs()]  # type: ignore[operator]

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        for t in self.transforms:
            h, w = t.output_size(h, w)  # type: ignore[operator]
        return h, w


class FunctionTransform(Transform):
    """Any function or ``nn.Module`` of an image batch as a transform (its record names it
    only: a replay asks for it again; register a :class:`Transform` class to replay by name)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = self.fn(images)
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[:2] != images.shape[:2]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise FeatvizError(f"the transform {self.fn!r} turned a batch {tuple(images.shape)} into {got}")
        return out

    def __repr__(self) -> str:
        return f"FunctionTransform({getattr(self.fn, '__qualname__', type(self.fn).__name__)})"


class Geometric(Transform):
    """A transform that is a (random) affine resampling. Consecutive ones inside a
    :class:`Compose` are fused into a single ``grid_sample``: one interpolation instead of
    several, which is both sharper and much cheaper in the backward pass.

    ``draw`` returns, per image, the 3x3 matrix that maps output coordinates to input
    coordinates (normalized to [-1, 1], ``align_corners=False``) and the output size.
    """

    padding = "reflection"  # what is seen outside the input: reflection, border or constant

    def draw(self, b: int, h: int, w: int, gen: torch.Generator | None) -> tuple[torch.Tensor, tuple[int, int]]:
        raise NotImplementedError  # pragma: no cover

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return fuse_geometric([self], images, generator)


def fuse_geometric(chain: Sequence[Geometric], images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Apply a chain of geometric transforms as one resampling of ``images``."""
    b, _, h, w = images.shape
    theta = torch.eye(3).expand(b, 3, 3)
    size = (h, w)
    for t in chain:
        m, size = t.draw(b, size[0], size[1], generator)
        theta = theta @ m  # out -> ... -> in: earlier transforms act last on coordinates
    padding = next((t.padding for t in chain if isinstance(t, Pad)), chain[0].padding)
    if padding == "constant":
        value = next(t.value for t in chain if isinstance(t, Pad))
        return _affine(images - value, theta[:, :2], size, "zeros") + value
    return _affine(images, theta[:, :2], size, padding)


def _matrix(
    a: torch.Tensor, b: torch.Tensor, tx: torch.Tensor, c: torch.Tensor, d: torch.Tensor, ty: torch.Tensor
) -> torch.Tensor:
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1), torch.stack([zero, zero, one], 1)], 1)


class Pad(Geometric):
    """Pad every side by ``pixels`` with a constant (grey by default) or by reflection."""

    def __init__(self, pixels: int, mode: str = "constant", value: float = 0.5) -> None:
        super().__init__()
        self.pixels, self.mode, self.value = pixels, mode, value
        self.padding = {"constant": "constant", "reflect": "reflection", "replicate": "border"}[mode]

    name = "pad"

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        return h + 2 * self.pixels, w + 2 * self.pixels

    def settings(self) -> dict[str, Any]:
        return {"pixels": self.pixels, "mode": self.mode, "value": self.value}

    def draw(self, b: int, h: int, w: int, gen: torch.Generator | None) -> tuple[torch.Tensor, tuple[int, int]]:
        oh, ow = h + 2 * self.pixels, w + 2 * self.pixels
        one = torch.ones(b)
        zero = torch.zeros(b)
        return _matrix(one * ow / w, zero, zero, zero, one * oh / h, zero), (oh, ow)

    def extra_repr(self) -> str:
        return f"pixels={self.pixels}, mode={self.mode!r}"


def _affine(
    images: torch.Tensor, theta: torch.Tensor, size: Sequence[int] | None = None, padding: str = "reflection"
) -> torch.Tensor:
    """Resample ``images`` through per-image 2x3 matrices ``theta`` (output -> input)."""
    b, c, h, w = images.shape
    oh, ow = size or (h, w)
    # F.affine_grid, with the base grid kept: building it costs more than the product.
    base = _base_grid(oh, ow, images.device, images.dtype)
    grid = torch.matmul(base, theta.to(images.device, images.dtype).transpose(1, 2)).view(b, oh, ow, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)


@functools.lru_cache(maxsize=16)
def _base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Pixel centres of an ``h`` x ``w`` output as homogeneous [-1, 1] coordinates (x, y, 1),
    ``align_corners=False``: ``[1, h * w, 3]``."""
    ys = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y, torch.ones_like(x)], -1).view(1, h * w, 3).to(device, dtype)


class RandomAffine(Geometric):
    """Random shift (pixels, both directions), scale (range) and rotation (degrees, +/-),
    drawn independently for every image and applied in one resampling."""

    def __init__(
        self,
        translate: float = 0.0,
        scale: tuple[float, float] = (1.0, 1.0),
        degrees: float = 0.0,
        padding: str = "reflection",
    ) -> None:
        super().__init__()
        self.translate, self.scale, self.degrees, self.padding = translate, tuple(scale), degrees, padding

    name = "affine"

    def settings(self) -> dict[str, Any]:
        return {
            "translate": self.translate,
            "scale": list(self.scale),
            "degrees": self.degrees,
            "padding": self.padding,
        }

    def draw(self, b: int, h: int, w: int, gen: torch.Generator | None) -> tuple[torch.Tensor, tuple[int, int]]:
        s = _uniform(b, self.scale[0], self.scale[1], gen)
        a = _uniform(b, -self.degrees, self.degrees, gen) * math.pi / 180
        tx = _uniform(b, -self.translate, self.translate, gen) * 2 / w
        ty = _uniform(b, -self.translate, self.translate, gen) * 2 / h
        # Output -> input coordinates: zooming in by s samples a window 1/s as large.
        cos, sin = torch.cos(a) / s, torch.sin(a) / s
        return _matrix(cos, -sin * h / w, tx, sin * w / h, cos, ty), (h, w)

    def extra_repr(self) -> str:
        return f"translate={self.translate}, scale={self.scale}, degrees={self.degrees}"


def jitter(pixels: float) -> RandomAffine:
    """Random shift by up to ``pixels`` in both directions."""
    return RandomAffine(translate=pixels)


def random_scale(low: float, high: float) -> RandomAffine:
    return RandomAffine(scale=(low, high))


def random_rotate(degrees: float) -> RandomAffine:
    return RandomAffine(degrees=degrees)


class RandomCrops(Geometric):
    """``k`` random crops of every image per step, rendered as one batch.

    Each crop covers a random share ``area`` of the image (as a square window) at a random
    place and is resampled to ``size`` pixels (the image's size when ``None``), but never
    to more than ``max_zoom`` times the image's own side -- or, with ``window=True``, times
    the average crop window's side, so that a small image is not enlarged beyond what its
    windows hold and costs less per step. A ``size`` near the model's
    input size shows the model every image at the scale it was trained on: a large image
    costs less per step, a small one is enlarged as the model expects, and the crops show
    it at several scales. The render loop tiles the batch ``k`` times before the transforms
    run and averages the objective over crops. ``shallow_k`` is the number of crops for a
    unit of a layer that keeps at least a quarter of the input's resolution (its receptive
    field is small, and each crop already averages it over thousands of positions):
    :func:`featviz.optvis.spec.resolve` puts it in ``k`` for such a unit, and the record
    says so.
    """

    def __init__(
        self,
        k: int = 4,
        area: tuple[float, float] = (0.25, 1.0),
        size: int | None = None,
        max_zoom: float = 1.0,
        window: bool = False,
        shallow_k: int | None = None,
    ) -> None:
        super().__init__()
        self.k, self.area, self.size = int(k), (float(area[0]), float(area[1])), size
        self.max_zoom, self.window, self.shallow_k = float(max_zoom), bool(window), shallow_k

    name = "crops"

    def settings(self) -> dict[str, Any]:
        out = {"k": self.k, "area": list(self.area), "size": self.size, "max_zoom": self.max_zoom}
        # keys added later appear only when set, so records made before them replay as they were
        out.update({"window": True} if self.window else {})
        return {**out, "shallow_k": self.shallow_k} if self.shallow_k else out

    @property
    def copies(self) -> int:  # type: ignore[override]
        return self.k

    def draw(self, b: int, h: int, w: int, gen: torch.Generator | None) -> tuple[torch.Tensor, tuple[int, int]]:
        side = _uniform(b, self.area[0], self.area[1], gen).sqrt()
        cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - side)
        cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - side)
        zero = torch.zeros(b)
        return _matrix(side, zero, cx, zero, side, cy), self.output_size(h, w)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """The size of the crops of an ``h`` x ``w`` image: what the model sees."""
        if not self.size:
            return h, w
        zoom = self.max_zoom * (self.mean_side() if self.window else 1.0)
        return min(self.size, round(zoom * h)), min(self.size, round(zoom * w))

    def mean_side(self) -> float:
        """The average side of a crop window as a share of the image's side (the square root
        of an area drawn uniformly from ``area``).

        >>> round(RandomCrops(area=(0.25, 1.0)).mean_side(), 3)
        0.778
        """
        a, b = self.area
        return 2 / 3 * (b**1.5 - a**1.5) / (b - a) if b > a else a**0.5

    def extra_repr(self) -> str:
        extra = ", window=True" if self.window else ""
        return f"k={self.k}, area={self.area}, size={self.size}, max_zoom={self.max_zoom}{extra}"


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue per image; differentiable.

    Hue turns the chroma plane of YIQ by up to ``hue`` turns (0.5 = any hue), a linear map,
    so it works on images that require grad.
    """

    rgb2yiq: torch.Tensor
    yiq2rgb: torch.Tensor

    def __init__(
        self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0
    ) -> None:
        super().__init__()
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        rgb2yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        self.register_buffer("rgb2yiq", rgb2yiq, persistent=False)
        self.register_buffer("yiq2rgb", torch.linalg.inv(rgb2yiq), persistent=False)

    name = "color"

    def settings(self) -> dict[str, Any]:
        return {
            "brightness": self.brightness,
            "contrast": self.contrast,
            "saturation": self.saturation,
            "hue": self.hue,
        }

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = images.shape[0]
        dev = images.device
        view = (b, 1, 1, 1)
        if self.brightness or self.contrast:
            # brightness s then contrast c around the mean m: (s x - s m) c + s m, one pass as
            # x (s c) + s m (1 - c)
            one = torch.ones(b)
            s = _uniform(b, 1 - self.brightness, 1 + self.brightness, generator) if self.brightness else one
            c = _uniform(b, 1 - self.contrast, 1 + self.contrast, generator) if self.contrast else one
            s, c = s.to(dev, images.dtype).view(view), c.to(dev, images.dtype).view(view)
            if self.contrast:
                # The pivot is a constant of the draw, like s and c: no gradient through
                # the mean (it would cost three passes over the batch in the backward).
                mean = images.detach().mean(dim=(1, 2, 3), keepdim=True)
                images = torch.addcmul(mean * (s * (1 - c)), images, s * c)
            else:
                images = images * s
        if self.saturation or self.hue:
            images = self._chroma(images, generator)
        return images

    def _chroma(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b = images.shape[0]
        sat = _uniform(b, 1 - self.saturation, 1 + self.saturation, generator)
        ang = _uniform(b, -self.hue, self.hue, generator) * 2 * math.pi
        one, zero = torch.ones(b), torch.zeros(b)
        # Rotate and scale the (I, Q) chroma plane; keep luma Y.
        m = torch.stack(
            [
                torch.stack([one, zero, zero], 1),
                torch.stack([zero, sat * torch.cos(ang), -sat * torch.sin(ang)], 1),
                torch.stack([zero, sat * torch.sin(ang), sat * torch.cos(ang)], 1),
            ],
            1,
        ).to(images.device, images.dtype)
        full = self.yiq2rgb.to(images.dtype) @ m @ self.rgb2yiq.to(images.dtype)
        return torch.einsum("bij,bjhw->bihw", full, images)

    def extra_repr(self) -> str:
        return f"brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, hue={self.hue}"


_NEVER = object()


class GaussianNoise(Transform):
    """Add Gaussian noise of standard deviation ``std``.

    Drawing fresh normal numbers for every pixel of every step costs as much as a few
    layers of a small model on a CPU, so the noise is drawn once per generator and batch
    shape into a field ``margin`` pixels larger on each side, and every call adds a window
    of it at a random offset: per pixel it is still N(0, std^2), and it moves against the
    image from step to step (the crops move the image too). A new generator (every render
    makes one from its seed) draws a new field, so a seed gives the same noise whatever the
    transform did before. ``margin=0`` draws fresh noise on every call.
    """

    field: torch.Tensor

    def __init__(self, std: float = 0.02, margin: int = 16) -> None:
        super().__init__()
        self.std, self.margin = std, int(margin)
        self.register_buffer("field", torch.empty(0), persistent=False)
        self._drawn_by: object = _NEVER  # the generator that drew the field

    name = "noise"

    def settings(self) -> dict[str, Any]:
        return {"std": self.std, "margin": self.margin}

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, c, h, w = images.shape
        m = self.margin
        if not m:
            noise = torch.randn(images.shape, generator=generator).to(images.device, images.dtype)
            return torch.add(images, noise, alpha=self.std)
        shape = (b, c, h + 2 * m, w + 2 * m)
        same = self.field.shape == shape and self.field.dtype == images.dtype and self.field.device == images.device
        if not same or self._drawn_by is not generator:
            # Drawn on the generator's device (the CPU) so that a seed gives the same noise everywhere.
            self._drawn_by = generator
            self.field = torch.randn(shape, generator=generator).to(images.device, images.dtype)
        dy, dx = torch.randint(0, 2 * m + 1, (2,), generator=generator).tolist()
        return torch.add(images, self.field[:, :, dy : dy + h, dx : dx + w], alpha=self.std)

    def extra_repr(self) -> str:
        return f"std={self.std}, margin={self.margin}"


class Resize(Transform):
    """Resample to a fixed ``size`` (the model's input size, say); with ``up_only``, only
    images smaller than ``size`` on a side, as Lucent's ``render_vis`` enlarges its 128 px
    images to 224 px before the model and leaves larger ones alone."""

    name = "resize"

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        if self.up_only and min(h, w) >= self.size:
            return h, w
        return self.size, self.size

    def __init__(self, size: int, up_only: bool = False) -> None:
        super().__init__()
        self.size, self.up_only = size, bool(up_only)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        from featviz.data.photos import resize

        return resize(images, self.output_size(*images.shape[-2:]))  # the same size: left as it is

    def settings(self) -> dict[str, Any]:
        # keys added later appear only when set, so records made before them replay as they were
        return {"size": self.size, **({"up_only": True} if self.up_only else {})}

    def extra_repr(self) -> str:
        return f"size={self.size}" + (", up_only=True" if self.up_only else "")


class RandomRoll(Transform):
    """Roll every image by a random shift of up to ``pixels`` in both directions (DeepDream's
    jitter). Rolling permutes pixels, so the gradient reaches every pixel unchanged; one
    shift is drawn per call for the whole batch, as the classic DeepDream loop does."""

    name = "roll"

    def __init__(self, pixels: int = 16) -> None:
        super().__init__()
        self.pixels = int(pixels)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.pixels:
            return images
        dy, dx = torch.randint(-self.pixels, self.pixels + 1, (2,), generator=generator).tolist()
        return torch.roll(images, (int(dy), int(dx)), (2, 3))

    def settings(self) -> dict[str, Any]:
        return {"pixels": self.pixels}

    def extra_repr(self) -> str:
        return f"pixels={self.pixels}"


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


#: Transforms by the names recipes and run records use.
TRANSFORMS: dict[str, Callable[..., Transform]] = {
    "pad": Pad,
    "jitter": jitter,
    "scale": random_scale,
    "rotate": random_rotate,
    "affine": RandomAffine,
    "color": ColorJitter,
    "noise": GaussianNoise,
    "crops": RandomCrops,
    "resize": Resize,
    "roll": RandomRoll,
}


def build_transforms(specs: Iterable[Sequence[Any]]) -> Compose:
    """A :class:`Compose` from ``(name, kwargs)`` pairs, as recipes and records write them.

    >>> build_transforms([("pad", {"pixels": 4}), ("noise", {"std": 0.01})]).specs()
    [('pad', {'pixels': 4, 'mode': 'constant', 'value': 0.5}), ('noise', {'std': 0.01, 'margin': 16})]
    """
    out = []
    for name, kwargs in specs:
        if name not in TRANSFORMS:
            raise FeatvizError(
                f"unknown transform {name!r}: expected one of {', '.join(TRANSFORMS)}.{suggestion(name, TRANSFORMS)}"
            )
        try:
            out.append(TRANSFORMS[name](**kwargs))
        except TypeError as err:
            raise FeatvizError(f"transform {name!r} does not take {kwargs}: {err}") from None
    return Compose(out)

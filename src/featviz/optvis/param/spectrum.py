"""The average amplitude spectrum of natural photos, for MACO: pure tensor arithmetic on photos
the caller has read (the render reads the ones that ship with scikit-image and scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from featviz.data.photos import resize
from featviz.errors import ImageError
from featviz.optvis.param import color

_REFERENCE = 256


def spectrum_of(images: Sequence[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """Mean |rfft2| of ``images`` (``[3, H, W]`` in [0, 1]) in decorrelated colour space,
    each image centre-cropped and resized to ``height`` x ``width``: ``[3, H, W//2+1]``."""
    if not images:
        raise ImageError("a spectrum needs at least one photo")
    total = torch.zeros(3, height, width // 2 + 1)
    # A Hann window removes the cross of spurious vertical and horizontal frequencies that
    # the photo's borders would otherwise add (they show up as grid lines in MACO images).
    window = torch.outer(torch.hann_window(height, periodic=False), torch.hann_window(width, periodic=False))
    for image in images:
        x = resize(image, max(height, width))[..., :height, :width]
        spatial = color.from_rgb(((x - x.mean((1, 2), keepdim=True)) * window)[None])
        total += torch.fft.rfft2(spatial, norm="ortho").abs()[0]
    return total / len(images)


def natural_spectrum(height: int, width: int, photos: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Amplitude spectrum for an image of ``height`` x ``width``: the mean spectrum of
    ``photos`` (``[3, H, W]`` each) at 256 px, or a reference spectrum computed so already
    (``[3, 256, 129]``), resampled; the DC term is 0 since images are standardized afterwards.

    >>> natural_spectrum(32, 32, [torch.rand(3, 64, 64)]).shape
    torch.Size([3, 32, 17])
    """
    ref = photos if isinstance(photos, torch.Tensor) else spectrum_of(photos, _REFERENCE, _REFERENCE)
    # Resample in centred (fftshift-ed) frequency order so that low frequencies stay together.
    shifted = torch.fft.fftshift(ref, dim=-2)[None]
    out = torch.nn.functional.interpolate(shifted, size=(height, width // 2 + 1), mode="bilinear", align_corners=False)[
        0
    ]
    out = torch.fft.ifftshift(out, dim=-2) * (height * width) ** 0.5 / _REFERENCE
    out[:, 0, 0] = 0.0
    return out

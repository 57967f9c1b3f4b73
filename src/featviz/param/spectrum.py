"""The average amplitude spectrum of natural photos, for MACO, computed without a download."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from featviz.io.images import image_files, load_image, natural_images, resize
from featviz.param import color

_REFERENCE = 256


def spectrum_of(images: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """Mean |rfft2| of ``images`` (``[3, H, W]`` in [0, 1]) in decorrelated colour space,
    each image centre-cropped and resized to ``height`` x ``width``: ``[3, H, W//2+1]``."""
    total = torch.zeros(3, height, width // 2 + 1)
    # A Hann window removes the cross of spurious vertical and horizontal frequencies that
    # the photo's borders would otherwise add (they show up as grid lines in MACO images).
    window = torch.outer(torch.hann_window(height, periodic=False), torch.hann_window(width, periodic=False))
    for image in images:
        x = resize(image, max(height, width))[..., :height, :width]
        spatial = color.from_rgb(((x - x.mean((1, 2), keepdim=True)) * window)[None])
        total += torch.fft.rfft2(spatial, norm="ortho").abs()[0]
    return total / len(images)


@lru_cache(maxsize=4)
def _natural(folder: str | None) -> torch.Tensor:
    if folder is None:
        images = list(natural_images().values())
    else:
        images = [load_image(p) for p in image_files(folder)]
    return spectrum_of(images, _REFERENCE, _REFERENCE)


def natural_spectrum(height: int, width: int, folder: str | Path | None = None) -> torch.Tensor:
    """Amplitude spectrum for an image of ``height`` x ``width``: computed once at 256 px from
    the photos shipped with scikit-image / scikit-learn (or from the images in ``folder``)
    and resampled; the DC term is set to 0 since images are standardized afterwards."""
    ref = _natural(None if folder is None else str(folder))
    # Resample in centred (fftshift-ed) frequency order so that low frequencies stay together.
    shifted = torch.fft.fftshift(ref, dim=-2)[None]
    out = torch.nn.functional.interpolate(shifted, size=(height, width // 2 + 1), mode="bilinear", align_corners=False)[
        0
    ]
    out = torch.fft.ifftshift(out, dim=-2) * (height * width) ** 0.5 / _REFERENCE
    out[:, 0, 0] = 0.0
    return out

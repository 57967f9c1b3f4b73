"""Image parameterizations: modules whose ``forward()`` returns ``[B, 3, H, W]`` in [0, 1].

Learnable values are parameters, constants are buffers, so ``.to(device)`` moves everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from featviz.errors import ImageError
from featviz.io.images import load_image, resize
from featviz.param import color
from featviz.param.spectrum import natural_spectrum

Photo = torch.Tensor | str | Path


class Parameterization(nn.Module):
    """Base class: a batch of images drawn from learnable parameters."""

    def __init__(self, size: int | Sequence[int], batch: int) -> None:
        super().__init__()
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        self.height, self.width, self.batch = int(h), int(w), int(batch)

    def forward(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def constrain_(self) -> None:
        """Called after every optimizer step: project parameters back into range."""

    def _photo(self, photo: Photo) -> torch.Tensor:
        image = load_image(photo) if isinstance(photo, (str, Path)) else photo
        image = image if image.dim() == 4 else image[None]
        if image.shape[1] != 3:
            raise ImageError(f"expected an RGB photo [B, 3, H, W], got shape {tuple(image.shape)}")
        image = resize(image.float(), (self.height, self.width))
        return image.expand(self.batch, -1, -1, -1) if image.shape[0] == 1 else image


class PixelImage(Parameterization):
    """Raw pixels in [0, 1], clamped after each step.

    ``init``: ``"uniform"`` noise, ``"gray"`` (0.5 +/- 0.005 noise), or a photo
    (tensor or path). Noise comes from ``generator`` so a seed gives the same start.
    """

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        batch: int = 1,
        init: str | Photo = "gray",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(size, batch)
        shape = (self.batch, 3, self.height, self.width)
        if isinstance(init, str) and init == "uniform":
            start = torch.rand(shape, generator=generator)
        elif isinstance(init, str) and init == "gray":
            start = 0.5 + 0.01 * (torch.rand(shape, generator=generator) - 0.5)
        elif isinstance(init, (torch.Tensor, Path)) or isinstance(init, str):
            start = self._photo(init).clone()
        else:
            raise ImageError(f"init must be 'uniform', 'gray' or a photo, got {init!r}")
        self.pixels = nn.Parameter(start.contiguous())

    def forward(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def constrain_(self) -> None:
        self.pixels.clamp_(0, 1)


def _frequencies(h: int, w: int) -> torch.Tensor:
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return (fx * fx + fy * fy).sqrt()


class FourierImage(Parameterization):
    scale: torch.Tensor
    _quarter_scale: torch.Tensor

    """Lucid's parameterization: a spectrum scaled by 1/f^decay, inverse FFT, decorrelated
    colour, sigmoid. Gradient steps then act on all frequencies alike, as natural images'
    spectra would have them, instead of favouring high-frequency noise."""

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        batch: int = 1,
        *,
        decay: float = 1.0,
        decorrelate: bool = True,
        sd: float = 0.01,
        init: Photo | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(size, batch)
        self.decorrelate = decorrelate
        freqs = _frequencies(self.height, self.width)
        scale = 1.0 / freqs.clamp(min=1.0 / max(self.height, self.width)) ** decay
        self.register_buffer("scale", scale)
        # The inverse FFT is linear: scaling the spectrum by 1/4 spares a pass over the image.
        self.register_buffer("_quarter_scale", scale / 4.0, persistent=False)
        shape = (self.batch, 3, *freqs.shape, 2)
        if init is None:
            coeffs = sd * torch.randn(shape, generator=generator)
        else:
            rgb = color.logit(self._photo(init))
            spatial = color.from_rgb(rgb) if decorrelate else rgb
            spectrum = torch.fft.rfft2(spatial * 4.0, norm="ortho") / scale
            coeffs = torch.view_as_real(spectrum)
        self.coeffs = nn.Parameter(coeffs.contiguous())

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.coeffs) * self._quarter_scale
        image = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        if self.decorrelate:
            image = color.to_rgb(image)
        return torch.sigmoid(image)


class MacoImage(Parameterization):
    magnitude: torch.Tensor

    """Magnitude-constrained phase optimization (MACO, Fel et al. 2023).

    The amplitude spectrum is fixed to that of natural images; only the phase is learned,
    so the result keeps natural image statistics. The spectrum is computed from photos that
    ship with installed packages (:func:`~featviz.param.spectrum.natural_spectrum`) or from
    a folder given as ``spectrum``; nothing is downloaded.
    """

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        batch: int = 1,
        *,
        spectrum: torch.Tensor | str | Path | None = None,
        contrast: float = 1.5,
        init: Photo | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(size, batch)
        if spectrum is None or isinstance(spectrum, (str, Path)):
            spectrum = natural_spectrum(self.height, self.width, folder=spectrum)
        self.register_buffer("magnitude", spectrum.float())
        self.contrast = contrast
        fh, fw = spectrum.shape[-2:]
        if init is None:
            phase = (torch.rand((self.batch, 3, fh, fw), generator=generator) * 2 - 1) * torch.pi
        else:
            spatial = color.from_rgb(color.logit(self._photo(init)))
            phase = torch.fft.rfft2(spatial, norm="ortho").angle()
        self.phase = nn.Parameter(phase.contiguous())

    def forward(self) -> torch.Tensor:
        spectrum = torch.polar(self.magnitude.expand_as(self.phase), self.phase)
        image = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        flat = image.flatten(1)
        image = (image - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-8)
        return torch.sigmoid(color.to_rgb(image * self.contrast))

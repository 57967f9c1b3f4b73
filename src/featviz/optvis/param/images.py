"""Image parameterizations: modules whose ``forward()`` returns ``[B, 3, H, W]`` in [0, 1].

Learnable values are parameters, constants are buffers, so ``.to(device)`` moves everything.
They take tensors only (a photo to start from, a spectrum); reading files is the caller's
job (:mod:`featviz.data`). Each one says how it was made in :attr:`Parameterization.settings`,
which the run record keeps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from featviz.errors import ImageError
from featviz.optvis.param import color


def digest(tensor: torch.Tensor) -> str:
    """A short content hash of a tensor, for records that cannot hold the tensor itself."""
    data = tensor.detach().float().cpu().contiguous().numpy().tobytes()
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def generator_seed(generator: torch.Generator | None) -> int | None:
    """The seed that reproduces ``generator``'s next draws, or ``None`` when it has drawn
    since it was seeded (its state then depends on what came before). No generator means
    a fresh one seeded with 0, so a parameterization built twice starts the same."""
    if generator is None:
        return 0
    seed = generator.initial_seed()
    fresh = torch.Generator().manual_seed(seed)
    return seed if torch.equal(fresh.get_state(), generator.get_state()) else None


class Parameterization(nn.Module):
    """Base class: a batch of images drawn from learnable parameters.

    ``settings`` holds the constructor's values (JSON-ready; a tensor appears as its shape
    and digest) and ``seed`` the seed of the random start (``None``: not reproducible from
    the record alone), so that a record can say what ran and a replay can build it again.
    """

    def __init__(self, size: int | Sequence[int], batch: int) -> None:
        super().__init__()
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        if int(h) < 1 or int(w) < 1 or int(batch) < 1:
            raise ImageError(f"expected a positive size and batch, got size {size!r} and batch {batch!r}")
        self.height, self.width, self.batch = int(h), int(w), int(batch)
        self.settings: dict[str, Any] = {}
        self.seed: int | None = 0

    def forward(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def constrain_(self) -> None:
        """Called after every optimizer step: project parameters back into range."""

    def describe(self) -> dict[str, Any]:
        """What the run record keeps of this parameterization."""
        return {"class": type(self).__name__, "size": [self.height, self.width], "batch": self.batch, **self.settings}

    def _photo(self, photo: torch.Tensor) -> torch.Tensor:
        if not isinstance(photo, torch.Tensor):
            raise ImageError(
                f"expected a photo as a tensor [3, H, W] in [0, 1], got {type(photo).__name__}; "
                "read files with featviz.load_image"
            )
        image = photo if photo.dim() == 4 else photo[None]
        if image.dim() != 4 or image.shape[1] != 3:
            raise ImageError(f"expected an RGB photo [B, 3, H, W], got shape {tuple(photo.shape)}")
        from featviz.data.photos import resize

        image = resize(image.detach().float().cpu(), (self.height, self.width)).clamp(0, 1)
        return image.expand(self.batch, -1, -1, -1) if image.shape[0] == 1 else image


def _init_setting(init: Any) -> Any:
    return init if init is None or isinstance(init, str) else {"photo": list(init.shape), "digest": digest(init)}


class PixelImage(Parameterization):
    """Raw pixels in [0, 1], clamped after each step.

    ``init``: ``"uniform"`` noise, ``"gray"`` (0.5 +/- 0.005 noise), or a photo
    (a ``[3, H, W]`` tensor). Noise comes from ``generator`` (a fresh one seeded with 0 when
    left out) so a seed gives the same start.

    >>> PixelImage(8, init="gray").describe()
    {'class': 'PixelImage', 'size': [8, 8], 'batch': 1, 'init': 'gray'}
    """

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        batch: int = 1,
        init: str | torch.Tensor = "gray",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(size, batch)
        self.seed = generator_seed(generator)
        generator = generator or torch.Generator().manual_seed(0)
        self.settings = {"init": _init_setting(init)}
        shape = (self.batch, 3, self.height, self.width)
        if isinstance(init, str) and init == "uniform":
            start = torch.rand(shape, generator=generator)
        elif isinstance(init, str) and init == "gray":
            start = 0.5 + 0.01 * (torch.rand(shape, generator=generator) - 0.5)
        elif isinstance(init, torch.Tensor):
            start = self._photo(init).clone()
        else:
            raise ImageError(f"init must be 'uniform', 'gray' or a photo tensor, got {init!r}")
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
    """Lucid's parameterization: a spectrum scaled by 1/f^decay, inverse FFT, decorrelated
    colour, sigmoid. Gradient steps then act on all frequencies alike, as natural images'
    spectra would have them, instead of favouring high-frequency noise.

    >>> FourierImage(16, 2)().shape
    torch.Size([2, 3, 16, 16])
    """

    scale: torch.Tensor
    _quarter_scale: torch.Tensor

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        batch: int = 1,
        *,
        decay: float = 1.0,
        decorrelate: bool = True,
        sd: float = 0.01,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(size, batch)
        self.seed = generator_seed(generator)
        generator = generator or torch.Generator().manual_seed(0)
        self.settings = {"decay": decay, "decorrelate": decorrelate, "sd": sd, "init": _init_setting(init)}
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
    """Magnitude-constrained phase optimization (MACO, Fel et al. 2023).

    The amplitude spectrum ``spectrum`` (``[3, H, W // 2 + 1]``, decorrelated colour) is
    fixed, that of natural images; only the phase is learned, so the result keeps natural
    image statistics. :func:`featviz.optvis.param.spectrum.natural_spectrum` makes one from
    photos; a render with the ``maco`` recipe uses the photos that ship with scikit-image and
    scikit-learn, so nothing is downloaded.

    >>> MacoImage(16, spectrum=torch.ones(3, 16, 9))().shape
    torch.Size([1, 3, 16, 16])
    """

    magnitude: torch.Tensor

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        batch: int = 1,
        *,
        spectrum: torch.Tensor,
        contrast: float = 1.5,
        init: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(size, batch)
        expected = (3, self.height, self.width // 2 + 1)
        if not isinstance(spectrum, torch.Tensor) or tuple(spectrum.shape) != expected:
            got = tuple(spectrum.shape) if isinstance(spectrum, torch.Tensor) else type(spectrum).__name__
            raise ImageError(f"MacoImage needs a spectrum tensor of shape {expected}, got {got}")
        self.seed = generator_seed(generator)
        generator = generator or torch.Generator().manual_seed(0)
        self.settings = {"contrast": contrast, "spectrum": digest(spectrum), "init": _init_setting(init)}
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

"""Peer feature-visualization loops, run as their users run them (benchmark only).

Each peer takes the generating adapter, a list of class indices and a seed, and returns
images in [0, 1] as ``[N, 3, H, W]``. Peers are installed by the ``bench`` extra; none of
their code is part of featviz.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from featviz.models import ModelAdapter


def _kornia_shim() -> None:
    """torch-lucent 0.1.8 pins kornia<=0.4.1, which no longer runs on current torch; the
    two functions it calls by their old top-level names moved to kornia.geometry."""
    import kornia
    from kornia.geometry import transform as kt

    for name in ("get_rotation_matrix2d", "warp_affine"):
        if not hasattr(kornia, name):
            setattr(kornia, name, getattr(kt, name))


def lucent(
    adapter: ModelAdapter, classes: list[int], seed: int, size: int = 128, steps: int = 512, freeze: bool = False
) -> torch.Tensor:
    """Lucent's ``render_vis`` with its defaults: Fourier + decorrelated 128 px image,
    standard transforms, Adam 0.05, 512 steps, upsampled to 224; weights not frozen."""
    _kornia_shim()
    from lucent.optvis import param, render, transform

    model = adapter.module.eval()
    flags = [p.requires_grad for p in model.parameters()]
    if freeze:
        model.requires_grad_(False)
    norm = adapter.normalize  # the model's own preprocessing, as Lucent's preprocess=False asks
    out = []
    try:
        for cls in classes:
            torch.manual_seed(seed)
            np.random.seed(seed)
            images = render.render_vis(
                model,
                f"classifier:{cls}",
                param_f=lambda: param.image(size),
                transforms=[*transform.standard_transforms, norm],
                thresholds=(steps,),
                preprocess=False,
                progress=False,
                show_image=False,
            )
            out.append(torch.from_numpy(images[-1]).permute(0, 3, 1, 2))
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return torch.cat(out).float()


def classic(adapter: ModelAdapter, classes: list[int], seed: int, size: int = 224, steps: int = 256) -> torch.Tensor:
    """The classic tutorial's loop: SGD on raw pixels from grey, torchvision ColorJitter (no
    hue: it fails on images that require grad) + RandomAffine, L2 decay, blur every 10 steps."""
    from torchvision import transforms as T
    from torchvision.transforms.functional import gaussian_blur

    model = adapter.module.eval().requires_grad_(False)
    aug = T.Compose([T.ColorJitter(0.1, 0.1, 0.1), T.RandomAffine(10, translate=(0.04, 0.04), scale=(0.9, 1.1))])
    out = []
    for cls in classes:
        torch.manual_seed(seed)
        x = (0.5 + 0.01 * (torch.rand(1, 3, size, size) - 0.5)).requires_grad_(True)
        opt = torch.optim.SGD([x], lr=1.5, weight_decay=0.05)
        for step in range(steps):
            opt.zero_grad()
            loss = -model(adapter.normalize(aug(x)))[0, cls]
            loss.backward()
            x.grad /= x.grad.abs().mean() + 1e-8  # the tutorial's normalized gradient step
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
                if (step + 1) % 10 == 0:
                    x.copy_(gaussian_blur(x, 3, 0.5))
        out.append(x.detach())
    model.requires_grad_(True)
    return torch.cat(out)


@contextlib.contextmanager
def _in_dir_with_spectrum(spectrum: torch.Tensor) -> Iterator[None]:
    """Horama reads its MACO spectrum from ./spectrum_decorrelated.npy (a download
    otherwise): give it featviz's own, computed from photos shipped with scikit-image."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "spectrum_decorrelated.npy"), spectrum.numpy())
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def horama(
    adapter: ModelAdapter,
    classes: list[int],
    seed: int,
    method: str = "fourier",
    size: int = 512,
    steps: int = 512,
    crops: int = 4,
) -> torch.Tensor:
    """Horama's ``fourier`` or ``maco`` (lr 1.0, NAdam, small random crops of a large canvas),
    frozen weights; its output lives in the model's input range, mapped back to [0, 1]."""
    import horama

    from featviz.optvis.spec import shipped_spectrum

    model = adapter.module.eval().requires_grad_(False)
    lo, hi = -2.5, 2.5
    out = []
    with _in_dir_with_spectrum(shipped_spectrum(256, 256)):
        for cls in classes:
            torch.manual_seed(seed)
            fn = getattr(horama, method)
            image, _ = fn(
                lambda x, c=cls: model(x)[:, c].mean(),
                total_steps=steps,
                image_size=size,
                crops_per_iteration=crops,
                device="cpu",
                values_range=(lo, hi),
            )
            # Model input space -> [0, 1] through the model's own normalization (mean/std 0.5).
            mean = torch.tensor(adapter.mean).view(3, 1, 1)
            std = torch.tensor(adapter.std).view(3, 1, 1)
            out.append((image.detach() * std + mean).clamp(0, 1)[None])
    model.requires_grad_(True)
    return torch.cat(out)


def resize_to(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

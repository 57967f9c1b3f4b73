"""DeepDream on a photo: gradient ascent on the photo's own pixels, octave by octave.

The classic recipe (Mordvintsev et al. 2015): the photo is processed at ``octaves`` scales,
from the smallest (``octave_scale`` times smaller per octave) to the full size. At each scale
the pixels take ``steps`` steps along the gradient of the objective, normalized by its mean
magnitude, with the image randomly rolled (jitter) before every forward pass and clamped to
[0, 1] after every step. What has been dreamed at one scale (the difference to the photo) is
upsampled and added to the photo at the next scale, so patterns grow at every size while the
result keeps the photo's size and composition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from featviz.errors import FeatvizError, ImageError
from featviz.hooks import Capture, capture
from featviz.io.images import load_image, save_image
from featviz.models import ModelAdapter, load_model, resolve_device
from featviz.objectives import Objective
from featviz.record import versions
from featviz.units import parse_objective

ImageLike = torch.Tensor | str | Path


@dataclass
class DreamResult:
    """The dreamed image ``[3, H, W]`` (CPU, [0, 1], the photo's size), the photo it started
    from, the objective on both, the octave sizes and the run record."""

    image: torch.Tensor
    photo: torch.Tensor
    score_before: float
    score_after: float
    octaves: list[tuple[int, int]]
    curve: torch.Tensor
    record: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write the image (PNG by default) with the record as a JSON sidecar."""
        import json

        target = save_image(self.image, Path(path).with_suffix(Path(path).suffix or ".png"))
        target.with_suffix(".json").write_text(json.dumps(self.record, indent=2) + "\n")
        return target


def octave_sizes(height: int, width: int, octaves: int, scale: float, min_size: int = 32) -> list[tuple[int, int]]:
    """Image sizes from the smallest octave to the full size (octaves below ``min_size``
    pixels are left out).

    >>> octave_sizes(224, 300, 3, 1.4)
    [(114, 153), (160, 214), (224, 300)]
    """
    if octaves < 1 or scale < 1:
        raise FeatvizError(f"expected octaves >= 1 and octave_scale >= 1, got {octaves} and {scale}")
    sizes = [(round(height / scale**i), round(width / scale**i)) for i in reversed(range(octaves))]
    return [s for s in sizes if min(s) >= min_size] or [(height, width)]


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    down = size[0] < image.shape[-2]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=down)


def _photo(image: ImageLike, size: int | None) -> torch.Tensor:
    photo = load_image(image) if isinstance(image, (str, Path)) else image.detach().float().cpu()
    if photo.dim() == 4 and photo.shape[0] == 1:
        photo = photo[0]
    if photo.dim() != 3 or photo.shape[0] != 3:
        raise ImageError(f"expected a photo [3, H, W] in [0, 1], got shape {tuple(photo.shape)}")
    if size is not None and max(photo.shape[-2:]) != size:
        h, w = photo.shape[-2:]
        k = size / max(h, w)
        photo = _resize(photo[None], (max(1, round(h * k)), max(1, round(w * k))))[0]
    return photo.clamp(0, 1)


def dream(
    model: str | nn.Module | ModelAdapter,
    image: ImageLike,
    unit_or_layer: str | Objective,
    *,
    octaves: int = 4,
    octave_scale: float = 1.4,
    steps: int = 10,
    lr: float = 0.01,
    jitter: int = 16,
    size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> DreamResult:
    """Dream ``unit_or_layer`` into a photo (a ``[3, H, W]`` tensor in [0, 1] or a file).

    ``unit_or_layer`` is anything :func:`featviz.render` takes: a whole layer (``"blocks.4"``,
    the classic DeepDream), a channel, a class or an expression. ``steps`` is per octave, ``lr``
    the mean change of a pixel per step, ``jitter`` the largest random shift in pixels; ``size``
    resizes the photo first so that its longer side has that many pixels.

    >>> photo = torch.rand(3, 48, 64)
    >>> result = dream("efficientnet_lite0", photo, "blocks.2", octaves=2, steps=2, progress=False)
    >>> tuple(result.image.shape), result.score_after > result.score_before
    ((3, 48, 64), True)
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    adapter = load_model(model)
    dev = adapter.device if str(device) == "auto" and not isinstance(model, str) else resolve_device(device)
    adapter.to(dev)
    obj = parse_objective(unit_or_layer, adapter) if isinstance(unit_or_layer, str) else unit_or_layer
    photo = _photo(image, size)
    height, width = photo.shape[-2:]
    sizes = octave_sizes(int(height), int(width), octaves, octave_scale, adapter.min_size)
    base = photo[None].to(dev)
    gen = torch.Generator().manual_seed(seed)
    curve: list[float] = []
    bar = tqdm(total=len(sizes) * steps, disable=not progress, desc="dream", leave=False)
    with capture(adapter, obj.layers) as cap:
        before = _score(cap, obj, base, adapter)
        img = _resize(base, sizes[0])
        for i, shape in enumerate(sizes):
            if i:  # carry what was dreamed so far onto the photo at the next scale
                detail = img - _resize(base, sizes[i - 1])
                img = (_resize(base, shape) + _resize(detail, shape)).clamp(0, 1)
            for _ in range(steps):
                img, score = _ascent(cap, obj, img, adapter, lr, jitter, gen)
                curve.append(score)
                bar.update(1)
        after = _score(cap, obj, img, adapter)
    bar.close()
    record = {
        "kind": "dream",
        "model": adapter.name,
        "image": str(image) if isinstance(image, (str, Path)) else f"tensor of shape {tuple(image.shape)}",
        "size": list(sizes[-1]),
        "unit": unit_or_layer if isinstance(unit_or_layer, str) else repr(unit_or_layer),
        "objective": repr(obj),
        "octaves": [list(s) for s in sizes],
        "octave_scale": octave_scale,
        "steps": steps,
        "lr": lr,
        "jitter": jitter,
        "seed": seed,
        "device": str(dev),
        "score_before": before,
        "score_after": after,
        "seconds": round(time.perf_counter() - start, 3),
        "versions": versions(),
    }
    return DreamResult(img[0].detach().float().cpu(), photo, before, after, sizes, torch.tensor(curve), record)


def _forward(cap: Capture, obj: Objective, images: torch.Tensor, adapter: ModelAdapter) -> torch.Tensor:
    # Models that take one input size only (ViTs) see the image resampled to it.
    x = _resize(images, (adapter.input_size,) * 2) if adapter.fixed_size else images
    acts = cap(x)
    acts["input"] = images
    return obj(acts).expand(images.shape[0])


@torch.no_grad()
def _score(cap: Capture, obj: Objective, images: torch.Tensor, adapter: ModelAdapter) -> float:
    return float(_forward(cap, obj, images, adapter).mean())


def _ascent(
    cap: Capture,
    obj: Objective,
    img: torch.Tensor,
    adapter: ModelAdapter,
    lr: float,
    jitter: int,
    gen: torch.Generator,
) -> tuple[torch.Tensor, float]:
    """One normalized gradient step on a randomly rolled copy of ``img``."""
    x = img.detach().requires_grad_(True)
    dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=gen) if jitter else torch.zeros(2)).tolist()
    # Rolling is a permutation, so the gradient flows back to the unrolled pixels.
    score = _forward(cap, obj, torch.roll(x, (int(dy), int(dx)), (2, 3)), adapter).sum()
    (grad,) = torch.autograd.grad(score, x)
    grad = grad / (grad.abs().mean() + 1e-8)
    return (x + lr * grad).clamp(0, 1).detach(), float(score.detach())

"""DeepDream on a photo: gradient ascent on the photo's own pixels, octave by octave.

The classic recipe (Mordvintsev et al. 2015): the photo is processed at ``octaves`` scales,
from the smallest (``octave_scale`` times smaller per octave) to the full size. At each scale
the pixels take ``steps`` steps along the gradient of the objective, normalized by its mean
magnitude, with the image randomly rolled (jitter) before every forward pass and clamped to
[0, 1] after every step. What has been dreamed at one scale (the difference to the photo) is
upsampled and added to the photo at the next scale, so patterns grow at every size while the
result keeps the photo's size and composition.

Each octave is one :func:`featviz.render` with the ``dream`` recipe (a pixel image started
from the photo, normalized gradient steps, a random roll before every forward, pixels
clamped to [0, 1]); the octaves are an outer loop around the one render loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featviz.data.photos import load_image, resize
from featviz.errors import FeatvizError, ImageError
from featviz.models import ModelAdapter, load_model, place
from featviz.optvis.objectives import Objective
from featviz.optvis.param.images import digest
from featviz.optvis.recipes import DREAM
from featviz.optvis.record import INTEGER, LIST, MAPPING, NUMBER, TEXT, make_record, weights_fields
from featviz.optvis.render import render, score_images
from featviz.optvis.replaying import check_record, replay_device, replay_model, single_objective
from featviz.optvis.spec import check_memory
from featviz.optvis.units import parse_objective

ImageLike = torch.Tensor | str | Path


@dataclass
class DreamResult:
    """The dreamed image ``[3, H, W]`` (CPU, [0, 1], the photo's size), the photo it started
    from, the objective on both, the octave sizes, the objective per step and the run
    record (with each octave's render record). Write it with :func:`featviz.save`."""

    image: torch.Tensor
    photo: torch.Tensor
    score_before: float
    score_after: float
    octaves: list[tuple[int, int]]
    curve: torch.Tensor
    record: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        h, w = self.image.shape[-2:]
        scores = f"{self.score_before:.3f} -> {self.score_after:.3f}"
        return f"DreamResult({w}x{h}, {len(self.octaves)} octaves, score {scores})"


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


def _photo(image: ImageLike) -> torch.Tensor:
    photo = load_image(image) if isinstance(image, (str, Path)) else image.detach().float().cpu()
    if photo.dim() == 4 and photo.shape[0] == 1:
        photo = photo[0]
    if photo.dim() != 3 or photo.shape[0] != 3:
        raise ImageError(f"expected a photo [3, H, W] in [0, 1], got shape {tuple(photo.shape)}")
    return photo.clamp(0, 1)


def _shape(photo: torch.Tensor, size: int | None) -> tuple[int, int]:
    """The photo's size with its longer side at ``size`` pixels (its own size for ``None``)."""
    h, w = (int(s) for s in photo.shape[-2:])
    if size is None or max(h, w) == size:
        return h, w
    if size < 1:
        raise FeatvizError(f"size must be positive, got {size}")
    k = size / max(h, w)
    return max(1, round(h * k)), max(1, round(w * k))


def dream(
    model: str | nn.Module | ModelAdapter,
    image: ImageLike,
    unit_or_layer: str | Objective,
    *,
    octaves: int = 4,
    octave_scale: float = 1.4,
    steps: int = DREAM.steps,
    lr: float = DREAM.lr,
    jitter: int = dict(DREAM.transforms)["roll"]["pixels"],
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
    start = time.perf_counter()
    adapter = load_model(model)
    dev = place(adapter, model, device)
    obj = parse_objective(unit_or_layer, adapter) if isinstance(unit_or_layer, str) else unit_or_layer
    photo = _photo(image)
    photo_digest = digest(photo)
    height, width = _shape(photo, size)
    sizes = octave_sizes(height, width, octaves, octave_scale, adapter.min_size)
    recipe = DREAM.replace(steps=steps, lr=lr, transforms=(("roll", {"pixels": int(jitter)}),))
    adapter.check_size(height, width)
    check_memory(adapter, recipe.build_transforms(), (height, width), 1, dev)  # before the photo is resized
    photo = resize(photo, (height, width)).clamp(0, 1)
    before = float(score_images(adapter, obj, photo[None])[0])
    img, curves, records = photo[None], [], []
    for i, shape in enumerate(sizes):
        # Carry what was dreamed so far onto the photo at the next scale.
        start_image = (
            resize(photo[None], shape)
            if i == 0
            else resize(photo[None], shape) + resize(img - resize(photo[None], sizes[i - 1]), shape)
        )
        result = render(
            adapter,
            obj,
            recipe=recipe,
            size=shape,
            init=start_image.clamp(0, 1),
            seed=seed + i,
            device=device,
            progress=progress,
        )
        if result.interrupted:
            raise KeyboardInterrupt
        img = result.images
        curves.append(result.curve[:, 0])
        records.append({k: v for k, v in result.record.items() if k not in ("versions", "created")})
    after = float(score_images(adapter, obj, img)[0])
    fields = {
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
        # What a replay needs besides the above: the arguments as given, the photo's digest
        # (a file changed since is refused) and the device.
        "unit_form": "unit" if isinstance(unit_or_layer, str) else "repr",
        "octave_count": octaves,
        "longer_side": size,
        "image_digest": photo_digest,
        "needs": [] if isinstance(image, (str, Path)) else ["image"],
        "device": str(dev),
        "score_before": before,
        "score_after": after,
        "renders": records,
        **weights_fields(adapter),
    }
    record = make_record("dream", fields, seconds=time.perf_counter() - start)
    return DreamResult(img[0], photo, before, after, sizes, torch.cat(curves), record)


_RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "model": (TEXT,),
    "image": (TEXT,),
    "unit": (TEXT,),
    "unit_form": (TEXT,),
    "octave_count": (INTEGER,),
    "octave_scale": (NUMBER,),
    "longer_side": (INTEGER, "null"),
    "steps": (INTEGER,),
    "lr": (NUMBER,),
    "jitter": (INTEGER,),
    "seed": (INTEGER,),
    "image_digest": (TEXT,),
    "needs": (LIST,),
    "device": (TEXT,),
    "load": (MAPPING,),
}


def replay_dream(
    record: dict[str, Any],
    *,
    model: str | nn.Module | ModelAdapter | None = None,
    objective: str | Objective | None = None,
    image: ImageLike | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> DreamResult:
    """Dream again what a dream's record describes (see :func:`featviz.replay`): the same
    pixels on the machine that made it. A photo the record names (a file, ``skimage:NAME``)
    is loaded again and must be the same; a photo passed as a tensor is asked for (``image=``)."""
    check_record(record, "dream", _RECORD_FIELDS, optional=("load",))
    if image is None:
        if "image" in record["needs"]:
            raise FeatvizError(
                f"the dream started from a photo passed as a {record['image']}, which a record cannot "
                "rebuild: pass it again (image=...) to replay"
            )
        image = record["image"]
        if digest(_photo(image)) != record["image_digest"]:
            raise FeatvizError(f"the photo {image} is not the one the dream started from (its digest differs)")
    dev = replay_device(record, device)
    return dream(
        replay_model(record, model, dev),
        image,
        single_objective(record, objective),
        octaves=record["octave_count"],
        octave_scale=record["octave_scale"],
        steps=record["steps"],
        lr=record["lr"],
        jitter=record["jitter"],
        size=record["longer_side"],
        seed=record["seed"],
        device=dev,
        progress=progress,
    )

"""Labelled grids: many images stitched into one, with a caption under each tile.

>>> import torch
>>> grid = make_grid(torch.rand(5, 3, 32, 32), labels=["0", "1", "2", "3", "4"], columns=3)
>>> grid.shape[0], grid.shape[2] == 3 * 32 + 4 * 2
(3, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from featviz.data.photos import to_tensor
from featviz.errors import ImageError
from featviz.io.images import save_image, to_uint8


def crop_border(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Cut ``pixels`` from every side of ``[..., H, W]`` images. Borders of a visualization are
    often worse than its middle (the transforms see them less), so atlases drop them."""
    if pixels < 0:
        raise ImageError(f"crop must be 0 or more pixels, got {pixels}")
    if pixels == 0:
        return images
    h, w = images.shape[-2:]
    if 2 * pixels >= min(h, w):
        raise ImageError(f"cannot crop {pixels} px from each side of a {h}x{w} tile")
    return images[..., pixels : h - pixels, pixels : w - pixels]


def make_grid(
    images: torch.Tensor | Sequence[torch.Tensor],
    labels: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    crop: int = 0,
    pad: int = 2,
    background: float = 1.0,
) -> torch.Tensor:
    """Stitch ``[N, 3, H, W]`` images (or a list of ``[3, H, W]``) into one ``[3, H', W']``
    image, ``columns`` wide (about square when left out), with ``labels[i]`` written under
    tile ``i`` in Pillow's default font. ``crop`` cuts that many pixels from each side of
    every tile first."""
    tiles = torch.stack(list(images)) if not isinstance(images, torch.Tensor) else images
    if tiles.dim() != 4 or tiles.shape[1] != 3 or tiles.shape[0] == 0:
        raise ImageError(f"expected [N, 3, H, W] images with N >= 1, got shape {tuple(tiles.shape)}")
    if labels is not None and len(labels) != tiles.shape[0]:
        raise ImageError(f"got {len(labels)} labels for {tiles.shape[0]} images")
    tiles = crop_border(tiles.detach().float().cpu().clamp(0, 1), crop)
    n, _, h, w = tiles.shape
    cols = columns or max(1, int(np.ceil(np.sqrt(n))))
    rows = -(-n // cols)
    font = _font(max(10, min(16, w // 6))) if labels is not None else None
    caption = _text_height(font) + 2 * pad if font is not None else 0
    cell_h, cell_w = h + caption + pad, w + pad
    canvas = torch.full((3, rows * cell_h + pad, cols * cell_w + pad), background)
    for i in range(n):
        top, left = (i // cols) * cell_h + pad, (i % cols) * cell_w + pad
        canvas[:, top : top + h, left : left + w] = tiles[i]
    if font is None or labels is None:
        return canvas
    return _draw_labels(canvas, labels, font, cols, cell_h, cell_w, h, w, pad)


def save_grid(
    images: torch.Tensor | Sequence[torch.Tensor],
    path: str | Path,
    labels: Sequence[str] | None = None,
    **kwargs: Any,
) -> Path:
    """:func:`make_grid` written to ``path`` (PNG unless the suffix says otherwise)."""
    return save_image(make_grid(images, labels, **kwargs), path)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable since Pillow 10.1
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _text_height(font: Any) -> int:
    return int(font.getbbox("0123456789")[3])


def _draw_labels(
    canvas: torch.Tensor,
    labels: Sequence[str],
    font: Any,
    cols: int,
    cell_h: int,
    cell_w: int,
    h: int,
    w: int,
    pad: int,
) -> torch.Tensor:
    from PIL import Image, ImageDraw

    picture = Image.fromarray(to_uint8(canvas))
    draw = ImageDraw.Draw(picture)
    for i, text in enumerate(labels):
        top, left = (i // cols) * cell_h + pad, (i % cols) * cell_w + pad
        width = draw.textlength(text, font=font)
        draw.text((left + (w - width) / 2, top + h + pad), text, fill=(0, 0, 0), font=font)
    return to_tensor(np.asarray(picture))

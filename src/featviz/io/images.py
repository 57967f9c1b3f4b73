"""Writing images: PNG bytes and files (written atomically)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from featviz.errors import ImageError
from featviz.io.files import atomic_write

#: Formats Pillow writes, by suffix.
WRITE_SUFFIXES = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0, 1] -> HxWx3 uint8."""
    arr = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(arr)


def png_bytes(image: torch.Tensor, fmt: str = "PNG") -> bytes:
    """One ``[3, H, W]`` image encoded as PNG (or ``fmt``)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(out, format=fmt)
    return out.getvalue()


def image_format(path: str | Path) -> str:
    """The Pillow format for ``path``'s suffix, or an error naming the known ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise ImageError(f"cannot write an image named {Path(path).name}: expected one of {', '.join(WRITE_SUFFIXES)}")
    return WRITE_SUFFIXES[suffix]


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write one ``[3, H, W]`` image (PNG, or another format by suffix), atomically."""
    return atomic_write(path, png_bytes(image, image_format(path)))

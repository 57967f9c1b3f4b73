"""Reading images: files, the photos that ship with installed packages, resizing.

Nothing here writes; writing lives in :mod:`featviz.io`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from featviz.errors import ImageError, suggestion

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """HxW, HxWx3 or HxWx4 uint8/float array -> float ``[3, H, W]`` in [0, 1]."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ImageError(f"expected an HxW or HxWx3 image, got an array of shape {arr.shape}")
    arr = arr[..., :3]
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float() / scale


#: Photos bundled inside scikit-image (no download), for ``skimage:NAME`` image sources.
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "chelsea",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


def skimage_photo(name: str) -> torch.Tensor:
    """A photo that ships with scikit-image, by name, as ``[3, H, W]`` in [0, 1].

    >>> skimage_photo("chelsea").shape
    torch.Size([3, 300, 451])
    """
    if name not in SKIMAGE_PHOTOS:
        raise ImageError(
            f"unknown scikit-image photo {name!r}: expected one of {', '.join(SKIMAGE_PHOTOS)}."
            f"{suggestion(name, SKIMAGE_PHOTOS)}"
        )
    try:
        import skimage.data
    except ImportError:
        raise ImageError(f"skimage:{name} needs scikit-image: pip install scikit-image") from None
    return to_tensor(getattr(skimage.data, name)())


def load_image(path: str | Path, size: int | Sequence[int] | None = None) -> torch.Tensor:
    """Read an image file as ``[3, H, W]`` in [0, 1], optionally resized (see :func:`resize`).

    ``skimage:NAME`` reads a photo shipped with scikit-image instead (``skimage:astronaut``).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(path, str) and path.startswith("skimage:"):
        photo = skimage_photo(path.split(":", 1)[1])
        return resize(photo, size) if size is not None else photo
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path} is a folder: expected an image file")
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"{path} is not an image that Pillow can read ({err})") from None
    image = to_tensor(array)
    return resize(image, size) if size is not None else image


def resize(image: torch.Tensor, size: int | Sequence[int], crop: bool = True) -> torch.Tensor:
    """Resize ``[3, H, W]`` (or a batch) so the short side is ``size`` and centre-crop to a
    square; a pair ``(h, w)`` resizes to exactly that. Bilinear, antialiased when it
    shrinks; the one resampling of whole images in featviz (transforms and DeepDream use it).

    >>> resize(torch.rand(3, 40, 60), 20).shape, resize(torch.rand(1, 3, 40, 60), (8, 9)).shape
    (torch.Size([3, 20, 20]), torch.Size([1, 3, 8, 9]))
    """
    batch = image if image.dim() == 4 else image[None]
    h, w = batch.shape[-2:]
    if isinstance(size, int):
        scale = size / min(h, w)
        target = (max(size, round(h * scale)), max(size, round(w * scale)))
    else:
        target = (int(size[0]), int(size[1]))
    if tuple(batch.shape[-2:]) != target:
        shrink = target[0] < h or target[1] < w
        batch = F.interpolate(batch, size=target, mode="bilinear", antialias=shrink, align_corners=False)
    if isinstance(size, int) and crop:
        top, left = (target[0] - size) // 2, (target[1] - size) // 2
        batch = batch[..., top : top + size, left : left + size]
    return batch if image.dim() == 4 else batch[0]


def natural_images() -> dict[str, torch.Tensor]:
    """Photos shipped inside scikit-image and scikit-learn (no download), as ``[3, H, W]``.

    Used as the reference for "beats natural images" checks and for the MACO spectrum.
    """
    out: dict[str, torch.Tensor] = {}
    try:
        import skimage.data as data

        for name in (
            "astronaut",
            "chelsea",
            "coffee",
            "rocket",
            "hubble_deep_field",
            "immunohistochemistry",
            "retina",
        ):
            out[name] = to_tensor(getattr(data, name)())
        left, right, _ = data.stereo_motorcycle()
        out["motorcycle"] = to_tensor(left)
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images

        samples = load_sample_images()  # decodes both JPEGs: do it once
        for fname, img in zip(samples.filenames, samples.images, strict=True):
            out[Path(fname).stem] = to_tensor(img)
    except ImportError:
        pass
    if not out:
        raise ImageError("no natural images available: pip install scikit-image or scikit-learn")
    return out


def image_files(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted), or an error naming what was expected."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"expected a folder of images, got {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files

"""Reading images: files, the photos that ship with installed packages, resizing.

Nothing here writes; writing lives in :mod:`featviz.io`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from featviz.errors import ImageError, suggestion

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

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
    """Read an image file as ``[3, H, W]`` in [0, 1], upright, optionally resized (see :func:`resize`).

    Every Pillow mode reads at its real range, never clipped: 8-bit modes (``1``, ``L``, ``P``,
    ``RGB``, ``CMYK``, ``YCbCr``, ``LAB``...) through Pillow's conversion to RGB; integer modes
    (``I;16`` and kin, ``I``) by 65535 when every value lies in [0, 65535] -- 16-bit data, which a
    PNG opens as ``I;16`` or ``I`` depending on the Pillow version -- else by their own min/max;
    float ``F`` as is when within [0, 1], else by its min/max. Alpha is dropped, as
    ``convert("RGB")`` does in torchvision's and timm's loaders (a transparent pixel keeps its
    colour). The EXIF orientation is applied, so a phone photo stands upright.
    ``skimage:NAME`` reads a photo shipped with scikit-image instead (``skimage:astronaut``).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

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
            image = to_tensor(_pixels(ImageOps.exif_transpose(im), path))
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"{path} is not an image that Pillow can read ({err})") from None
    return resize(image, size) if size is not None else image


def _pixels(im: PILImage, path: Path) -> np.ndarray:
    """A Pillow image as an HxW or HxWx3 array: uint8, or float32 in [0, 1] (rules in :func:`load_image`)."""
    if im.mode.startswith("I") or im.mode == "F":
        return _rescale(np.asarray(im, dtype=np.float32), integer=im.mode != "F", path=path)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # straight to RGB makes Pillow warn; the alpha is dropped below
    try:
        return np.asarray(im.convert("RGB"))
    except ValueError:  # a mode Pillow cannot turn into RGB
        raise ImageError(f"{path}: Pillow cannot convert its mode {im.mode} to RGB") from None


def _rescale(arr: np.ndarray, integer: bool, path: Path) -> np.ndarray:
    """Integer data in [0, 65535] by 65535, float data in [0, 1] as is, anything else by its min/max."""
    if not np.isfinite(arr).all():
        raise ImageError(f"{path} has NaN or infinite pixels")
    low, high = float(arr.min()), float(arr.max())
    top = 65535.0 if integer else 1.0
    if low >= 0 and high <= top:
        return arr / top
    return (arr - low) / (high - low) if high > low else np.zeros_like(arr)


def too_small(image: torch.Tensor, input_size: int) -> str | None:
    """Why ``image`` is too small for a model whose input is ``input_size`` px, or None.

    Under half the input size on its short side, resizing blows each pixel up more than 2x:
    fewer than a quarter of the pixels the model sees carry detail, more up-scaling than
    ImageNet training crops reach (8% of a ~400 px photo is ~110 px, about 2x to 224), and the
    answer is a guess (a 1x1 image is "velvet", 5%). Between half and the full input size is
    common (thumbnails, small crops) and classifies well, so it passes.

    >>> too_small(torch.zeros(3, 1, 1), 224)
    "1x1 px, far below the model's 224 px input: the answer is unreliable"
    >>> too_small(torch.zeros(3, 120, 300), 224) is None
    True
    """
    h, w = image.shape[-2:]
    if 2 * min(h, w) >= input_size:
        return None
    return f"{w}x{h} px, far below the model's {input_size} px input: the answer is unreliable"


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

"""Image sources for dataset examples: a folder (nested as ImageNet's train/val are), a list
file, or ``shipped`` -- the photos that ship with scikit-image and scikit-learn, cut into
crops at several scales, so that everything runs without a download.

A source is a list of :class:`Item` (an id that says where the image came from, and how to
read it); :class:`SourceDataset` reads them in DataLoader workers, square-resized to the
model's input size. An unreadable file becomes an empty sample that the pass skips and counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from featviz.data.photos import IMAGE_SUFFIXES, load_image, natural_images, resize
from featviz.errors import ImageError

SHIPPED = "shipped"
#: Crop sides of the shipped photos, as fractions of each photo's short side.
SHIPPED_SCALES = (1.0, 0.5, 0.3)


@dataclass(frozen=True)
class Item:
    """One image of a source: ``id`` names it (a path, or ``skimage:NAME@SCALE#N`` for a
    shipped crop), ``label`` is a class name when the folder names one."""

    id: str
    label: str | None = None
    box: tuple[int, int, int, int] | None = None  # top, left, height, width of a crop of ``photo``
    photo: str | None = None  # the shipped photo's name, for crops


def items(source: str | Path, labels: Any = None) -> list[Item]:
    """The images of ``source``: ``shipped``, a folder (searched recursively, sorted), or a
    text file listing image paths (one per line, relative to the file). ``labels``
    (:class:`~featviz.models.labels.Labels`) names classes from folder names."""
    if str(source) == SHIPPED:
        return shipped_items()
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)}), in it or its subfolders")
        return [Item(str(f), _label(f.parent.name, labels)) for f in files]
    if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        files = [(path.parent / line) if not Path(line).is_absolute() else Path(line) for line in lines]
        if not files:
            raise ImageError(f"{path} lists no image paths")
        return [Item(str(f), _label(f.parent.name, labels)) for f in files]
    raise ImageError(f"unknown data source {str(source)!r}: expected 'shipped', a folder of images or a list file")


def _label(folder: str, labels: Any) -> str | None:
    """A class name when the folder is named after one (``hen``, ``sports_car``) or is an
    ImageNet-1k synset (``n01514859``, as ImageNet's train/val folders are; the synset list
    ships with timm)."""
    if labels is None:
        return None
    try:
        if len(folder) == 9 and folder[0] == "n" and folder[1:].isdigit():
            index = _synsets().get(folder)
            return None if index is None or index >= len(labels) else str(labels.name(index))
        return str(labels.name(labels.index(folder.replace("_", " "))))
    except (KeyError, ValueError):
        return None


_SYNSETS: dict[str, int] = {}


def _synsets() -> dict[str, int]:
    """ImageNet-1k synset -> class index."""
    if not _SYNSETS:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        _SYNSETS.update({info.index_to_label_name(i): i for i in range(info.num_classes())})
    return _SYNSETS


def shipped_items() -> list[Item]:
    """The shipped photos cut into square crops: the centre crop of each photo, then crops
    of half and of 0.3 of its short side on a grid with half a crop's overlap."""
    out = []
    for name, photo in natural_images().items():
        h, w = photo.shape[-2:]
        for scale in SHIPPED_SCALES:
            side = round(min(h, w) * scale)
            stride = max(1, side // 2)
            if scale == 1.0:
                boxes = [((h - side) // 2, (w - side) // 2)]
            else:
                boxes = [(t, l) for t in range(0, h - side + 1, stride) for l in range(0, w - side + 1, stride)]
            for n, (top, left) in enumerate(boxes):
                out.append(Item(f"skimage:{name}@{scale}#{n}", None, (top, left, side, side), name))
    return out


_PHOTOS: dict[str, torch.Tensor] = {}


def read(item: Item, size: int) -> torch.Tensor:
    """The item's image, ``[3, size, size]`` in [0, 1] (short side resized, centre crop)."""
    if item.photo is not None and item.box is not None:
        if not _PHOTOS:
            _PHOTOS.update(natural_images())
        top, left, hh, ww = item.box
        return resize(_PHOTOS[item.photo][:, top : top + hh, left : left + ww], size)
    return load_image(item.id, size)


class SourceDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Items read as ``(index, image)``; an unreadable one gives ``(index, None)``."""

    def __init__(self, source: list[Item], size: int, indices: list[int] | None = None) -> None:
        self.items, self.size = source, size
        self.indices = list(range(len(source))) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None]:
        index = self.indices[i]
        try:
            return index, read(self.items[index], self.size)
        except ImageError:
            return index, None


def collate(batch: list[tuple[int, torch.Tensor | None]]) -> tuple[list[int], torch.Tensor, list[int]]:
    """Indices and a stacked batch of the readable images, and the indices that were not."""
    good = [(i, x) for i, x in batch if x is not None]
    bad = [i for i, x in batch if x is None]
    images = torch.stack([x for _, x in good]) if good else torch.zeros(0, 3, 1, 1)
    return [i for i, _ in good], images, bad

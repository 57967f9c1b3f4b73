"""Crash-safe files: every write goes to a temporary name and is renamed into place.

``os.replace`` is atomic on POSIX and Windows, so a reader (or a run resumed after a kill)
sees either the old file or the whole new one, never half of one. :class:`TileStore` builds
on it: a folder of finished work items (an image and its JSON record each) that a long job
fills one item at a time and a rerun reads back instead of redoing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from featviz.errors import ImageError


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "a" / "b.txt"
    >>> atomic_write(target, b"hello").read_bytes()
    b'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def sweep_temporaries(folder: str | Path) -> int:
    """Remove what a run killed mid-write left behind; returns how many files."""
    n = 0
    for stale in Path(folder).glob(".*.tmp") if Path(folder).is_dir() else []:
        stale.unlink(missing_ok=True)
        n += 1
    return n


class TileStore:
    """A folder of finished items ``KEY.png`` + ``KEY.json``, each written atomically.

    The record is written after the image and is what marks an item finished; an item is
    reused only when its record matches ``settings`` (the values that decide its pixels).
    """

    def __init__(self, folder: str | Path, settings: dict[str, Any]) -> None:
        self.folder = Path(folder)
        # Through JSON so that tuples compare equal to the lists read back.
        self.settings = json.loads(json.dumps(settings))
        sweep_temporaries(self.folder)

    def path(self, key: str | int) -> Path:
        return self.folder / f"{key}.png"

    def put(self, key: str | int, image: torch.Tensor, record: dict[str, Any]) -> Path:
        """Write one finished item: the PNG first, then its record."""
        from featviz.io.images import png_bytes

        target = atomic_write(self.path(key), png_bytes(image))
        atomic_write(target.with_suffix(".json"), json_bytes({**record, **self.settings, "key": str(key)}))
        return target

    def get(self, key: str | int) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """The finished item ``key`` made with the same settings, or ``None``."""
        from featviz.data.photos import load_image

        path = self.path(key)
        try:
            record = json.loads(path.with_suffix(".json").read_text())
            if record.get("key") != str(key) or any(record.get(k) != v for k, v in self.settings.items()):
                return None  # other settings: to be made again
            return load_image(path), record
        except (OSError, ValueError, ImageError):
            return None

    def keys(self) -> Iterator[str]:
        for path in sorted(self.folder.glob("*.json")):
            yield path.stem

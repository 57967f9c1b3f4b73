"""A resumable store: a folder of finished work items (an image and its JSON record each) that a
long job fills one item at a time and a rerun reads back instead of redoing. Every file is
written atomically (:mod:`featviz.io.files`), so a kill at any moment leaves whole items only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from featviz.errors import ImageError
from featviz.io.files import atomic_write, json_bytes, sweep_temporaries
from featviz.io.images import png_bytes


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

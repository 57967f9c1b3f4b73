"""Saving render results: PNG files with a JSON sidecar each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from featviz.io.images import save_image

if TYPE_CHECKING:
    from featviz.render import RenderResult


def save_result(result: RenderResult, path: str | Path) -> list[Path]:
    """Write ``path`` (one image) or ``stem_0.png``, ``stem_1.png``... (a batch), each with a
    ``.json`` sidecar holding the run record and the image's own final score."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    n = result.images.shape[0]
    written = []
    for i in range(n):
        target = path if n == 1 else path.with_name(f"{path.stem}_{i}{path.suffix}")
        save_image(result.images[i], target)
        record = dict(result.record, index=i, image_score=result.final[i].item())
        target.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        written.append(target)
    return written


def load_record(path: str | Path) -> dict:
    """Read the JSON sidecar of an image (give the image or the JSON path)."""
    return json.loads(Path(path).with_suffix(".json").read_text())

"""Output paths, checked before the work: names that are file names, folders that can be
written, formats that can be written, and no finished file replaced by surprise."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from featviz.errors import FeatvizError, shorten

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def default_name(*parts: str, limit: int = 48) -> str:
    """A file name (no suffix) for ``parts`` such as a model and a unit: letters, digits,
    ``_`` and ``-`` only, stable, at most about ``limit`` characters.

    >>> default_name("efficientnet_lite0", "blocks.5:51")
    'efficientnet_lite0_blocks_5_51'
    >>> default_name("m", "logits:hen - 0.5 * (logits:cock + probs:ostrich) " * 3)[:24]
    'm_logits_hen_-_0_5_logit'
    """
    text = "_".join(parts)
    slug = _UNSAFE.sub("_", text).strip("_") or "render"
    if len(slug) <= limit:
        return slug
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{slug[: limit - 9].rstrip('_')}_{digest}"


def check_writable(path: str | Path) -> Path:
    """``path`` if a file can be written there; else an error naming the path and the
    reason. Nothing is left behind: folders made for the probe are removed again (the
    writer makes them when it writes), so a command refused later leaves no empty folder."""
    path = Path(path)
    if path.is_dir():
        raise FeatvizError(f"{path} is a folder: expected a file name")
    folder = path.parent
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".{path.name}.{os.getpid()}.probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise FeatvizError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        for created in made:  # deepest first
            try:
                created.rmdir()
            except OSError:
                break
    return path


def check_replace(path: str | Path, same: dict[str, Any], overwrite: bool) -> None:
    """Refuse to replace an existing ``path`` unless ``overwrite``, or unless its JSON
    record is of the same run (its values for the keys of ``same`` are equal): re-running a
    command is normal, replacing another run's image by surprise is not."""
    path = Path(path)
    if overwrite or not path.exists():
        return
    try:
        record = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        record = None
    expected = json.loads(json.dumps(same))
    if isinstance(record, dict) and all(record.get(k) == v for k, v in expected.items()):
        return
    unit = shorten(record.get("unit") or record.get("layer") or "?") if isinstance(record, dict) else ""
    what = f"another run ({record.get('kind', 'render')} of {unit})" if isinstance(record, dict) else "a file"
    raise FeatvizError(f"{path} exists and holds {what}: pass --overwrite to replace it, or choose another --out")

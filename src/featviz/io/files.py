"""Crash-safe files: every write goes to a temporary name and is renamed into place.

``os.replace`` is atomic on POSIX and Windows, so a reader (or a run resumed after a kill)
sees either the old file or the whole new one, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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

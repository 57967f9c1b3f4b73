"""Run records: the one builder of the JSON-ready records that every tool writes beside its output."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from importlib import metadata
from typing import Any


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("featviz", "torch", "torchvision", "timm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def make_record(kind: str, fields: dict[str, Any], *, seconds: float, status: str = "done") -> dict[str, Any]:
    """A record of one run of ``kind`` (render, dream, zoom, atlas): ``fields`` (what ran and
    what came out) with the status, time taken, creation time and library versions, exactly
    as it reads back from its JSON file.

    >>> rec = make_record("render", {"model": "m", "seed": 0}, seconds=1.23456)
    >>> rec["kind"], rec["status"], rec["model"], rec["seconds"]
    ('render', 'done', 'm', 1.235)
    """
    record = {
        "kind": kind,
        "status": status,
        **fields,
        "seconds": round(seconds, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    # As it will read back from its JSON file: tuples as lists, nothing that JSON cannot hold.
    return json.loads(json.dumps(record))  # type: ignore[no-any-return]

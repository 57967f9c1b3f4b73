"""Run records: the one builder of the JSON-ready records that every tool writes beside its output."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from importlib import metadata
from typing import Any

from featviz.errors import FeatvizError, shorten

#: What a field of a record may hold, by name: checked by :func:`check_fields`.
NUMBER, INTEGER, TEXT, MAPPING, LIST = "a number", "an integer", "a string", "an object", "a list"
BOOL = "true or false"
_KINDS: dict[str, Any] = {
    NUMBER: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    INTEGER: lambda v: isinstance(v, int) and not isinstance(v, bool),
    TEXT: lambda v: isinstance(v, str),
    MAPPING: lambda v: isinstance(v, dict),
    LIST: lambda v: isinstance(v, list),
    BOOL: lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("featviz", "torch", "torchvision", "timm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def check_fields(data: Any, schema: dict[str, tuple[str, ...]], where: str, optional: tuple[str, ...] = ()) -> None:
    """Refuse a record (or a part of one) whose fields are missing or of the wrong kind, in
    one line naming the field: ``schema`` maps each field to the kinds it may hold
    (:data:`NUMBER`, :data:`INTEGER`, :data:`TEXT`, :data:`MAPPING`, :data:`LIST`, :data:`BOOL`,
    ``"null"``).

    >>> check_fields({"lr": "0.05"}, {"lr": (NUMBER,)}, "recipe")
    Traceback (most recent call last):
    ...
    featviz.errors.FeatvizError: the record's recipe.lr is '0.05' (str): expected a number
    """
    if not isinstance(data, dict):
        raise FeatvizError(f"the record's {where} is {shorten(repr(data))}: expected an object")
    missing = [k for k in schema if k not in data and k not in optional]
    if missing:
        names = ", ".join(f"{where}.{k}" for k in missing)
        raise FeatvizError(f"the record has no {names}: it was edited or is not a featviz record")
    for key, kinds in schema.items():
        if key in data and not any(_KINDS[kind](data[key]) for kind in kinds):
            value = data[key]
            text = repr(value) if len(repr(value)) <= 80 else shorten(value)
            raise FeatvizError(
                f"the record's {where}.{key} is {text} ({type(value).__name__}): expected {' or '.join(kinds)}"
            )


def weights_fields(adapter: Any) -> dict[str, Any]:
    """What a record says of the model's weights: ``trained`` (``None``: a module passed in,
    featviz cannot know), for random weights a ``warning`` that every reader sees, and
    ``load``: how a model loaded by name was loaded (weights file and its SHA-256, labels,
    factory arguments; see :func:`featviz.models.load_again`), when not by its name alone."""
    note = getattr(adapter, "untrained_note", None)
    source = getattr(adapter, "source", None)
    return {
        "trained": getattr(adapter, "trained", None),
        **({"warning": note} if note else {}),
        **({"load": source} if source else {}),
    }


#: What decides a result, by record kind: two records of one kind that agree on these fields
#: are the same run. A command may replace its own earlier output (``check_replace``), and a
#: resumed job reuses finished parts (atlas tiles), only when the identities are equal.
IDENTITY: dict[str, tuple[str, ...]] = {
    "render": ("model", "unit", "unit_form", "recipe", "seed", "batch", "size", "init", "param_seed", "load"),
    "atlas": ("model", "layer", "recipe", "seed", "size", "load"),
    "dream": ("model", "image", "unit", "load"),
    "zoom": ("model", "unit", "seed", "load"),
    "checkpoints": ("model", "unit", "seed"),
    "microscope": ("model", "size", "recipe", "seed", "k", "data", "weights"),
}


def identity(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The identity of a run of ``kind`` (:data:`IDENTITY`) from a record or the fields known
    before it runs (those left out are not compared), as JSON reads it back.

    >>> identity("atlas", {"model": "m", "layer": "blocks.2", "seed": 0, "scores": [1.0]})
    {'kind': 'atlas', 'model': 'm', 'layer': 'blocks.2', 'seed': 0}
    """
    if kind not in IDENTITY:
        raise FeatvizError(f"unknown record kind {kind!r}: expected one of {', '.join(IDENTITY)}")
    out = {"kind": kind, **{k: fields[k] for k in IDENTITY[kind] if k in fields}}
    return json.loads(json.dumps(out))  # type: ignore[no-any-return]


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

"""What the replays of the tools' records share (:func:`featviz.replay` dispatches on the kind).

A tool (dream, zoom, atlas, a unit across checkpoints) records the arguments it was called
with; its replay checks the record before any work, loads the model the record names as it
was loaded, on the device it ran on, reads the objective back and calls the tool again.
"""

from __future__ import annotations

from typing import Any

import torch

from featviz.errors import FeatvizError, UnitError, UnknownModelError
from featviz.models import ModelAdapter, load_again, place
from featviz.optvis.objectives import Objective
from featviz.optvis.record import check_fields
from featviz.optvis.units import objective_from_repr


def check_record(record: Any, kind: str, schema: dict[str, tuple[str, ...]], optional: tuple[str, ...] = ()) -> None:
    """Refuse, in one line and before any work, a record that is not of ``kind`` or lacks a
    field its replay reads (``schema``: field -> kinds of value, as for
    :func:`~featviz.optvis.record.check_fields`).

    >>> check_record({"kind": "zoom", "model": "m"}, "zoom", {"model": ("a string",), "frames": ("an integer",)})
    Traceback (most recent call last):
    ...
    featviz.errors.FeatvizError: the record of kind 'zoom' has no frames: expected the fields model, frames
    """
    if not isinstance(record, dict):
        raise FeatvizError(
            f"expected a run record (a dict, as featviz.load_record reads it), got {type(record).__name__}"
        )
    if record.get("kind") != kind:
        raise FeatvizError(f"expected a record of kind {kind!r}, got one of kind {record.get('kind')!r}")
    missing = [k for k in schema if k not in record and k not in optional]
    if missing:
        raise FeatvizError(
            f"the record of kind {kind!r} has no {', '.join(missing)}: expected the fields {', '.join(schema)}"
        )
    check_fields(record, schema, kind, optional=optional)


def replay_device(record: dict[str, Any], device: str | torch.device | None) -> str | torch.device:
    """``device`` when given; else the CPU for a record made on the CPU, any other "auto"
    (a record made on a GPU replays on this machine's GPU, if it has one)."""
    if device is not None:
        return device
    return "cpu" if record.get("device") == "cpu" else "auto"


def replay_model(
    record: dict[str, Any], model: str | torch.nn.Module | ModelAdapter | None, device: str | torch.device
) -> str | torch.nn.Module | ModelAdapter:
    """``model`` when given; else the model the record names, loaded as it was (its weights
    file and labels, :func:`~featviz.models.load_again`) and moved to ``device``."""
    if model is not None:
        return model
    name = record["model"]
    try:
        adapter = load_again(name, record.get("load"))
    except UnknownModelError:
        raise FeatvizError(
            f"the record's model {name!r} is not one featviz loads by name (a module passed in?): "
            "pass it again (model=...)"
        ) from None
    place(adapter, name, device)  # as a run given the name would: "auto" picks the GPU
    return adapter


def replay_objective(record: dict[str, Any], objective: Any = None) -> Any:
    """``objective`` when given; else the objective the record keeps in ``unit``: unit
    syntax (``unit_form`` "unit") or objectives' ``repr`` ("repr"). Any other form (a
    function, say) cannot be read back and is asked for.

    >>> replay_objective({"unit": "channel('blocks.1', 3) - 0.05 * l2()", "unit_form": "repr"})
    channel('blocks.1', 3) - 0.05 * l2()
    """
    if objective is not None:
        return objective
    unit, form = record["unit"], record.get("unit_form", "unit")
    if form == "unit":
        return unit
    if form == "repr":
        try:
            return [objective_from_repr(u) for u in unit] if isinstance(unit, list) else objective_from_repr(unit)
        except UnitError as err:
            raise FeatvizError(f"{err}: pass the objective again (objective=...)") from None
    raise FeatvizError(
        f"the record's objective is {unit!r} (form {form!r}), which a record cannot rebuild: "
        "pass it again (objective=...)"
    )


def single_objective(record: dict[str, Any], objective: str | Objective | None = None) -> str | Objective:
    """:func:`replay_objective` for a tool that takes one objective, not a list."""
    if objective is not None:
        return objective
    found = replay_objective(record)
    if not isinstance(found, (str, Objective)):
        raise FeatvizError(f"the record's unit is {record['unit']!r}: expected one unit or objective, not a list")
    return found

""":func:`replay`: make again what any run record describes, whatever tool wrote it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from featviz.errors import FeatvizError
from featviz.optvis import render
from featviz.tools.atlas import replay_atlas
from featviz.tools.checkpoints import replay_checkpoints
from featviz.tools.dream import replay_dream
from featviz.tools.zoom import replay_zoom

#: The replay of each kind of record (its ``"kind"``), by kind.
REPLAYS: dict[str, Callable[..., Any]] = {
    "render": render.replay,
    "dream": replay_dream,
    "zoom": replay_zoom,
    "atlas": replay_atlas,
    "checkpoints": replay_checkpoints,
}


def register_replay(kind: str, again: Callable[..., Any]) -> None:
    """Make :func:`replay` replay records of ``kind`` with ``again(record, **objects)``: how a
    module above this layer adds its own kind (the activation atlas registers itself when
    imported, as ``import featviz`` does)."""
    REPLAYS[kind] = again


def replay(record: dict[str, Any], **objects: Any) -> Any:
    """Run again what a run record describes (the JSON written beside a result, read with
    :func:`featviz.load_record`) and return the tool's own result: on the machine that made
    it, the same pixels.

    By the record's ``kind``: a ``render`` (also a diversity set or one image of a batch) gives
    a :class:`~featviz.RenderResult` (:func:`featviz.optvis.render.replay`, which names the
    objects it takes: ``model=``, ``objective=``, ``init=``, ``optimizer=``...); a ``dream`` a
    :class:`~featviz.DreamResult` (its photo loaded again from the file or ``skimage:NAME``
    the record names; a photo passed as a tensor must be passed again, ``image=``); a
    ``zoom`` a :class:`~featviz.ZoomResult`; an ``atlas`` an :class:`~featviz.AtlasResult`
    (every tile rendered again; ``out_dir=`` writes them); ``checkpoints`` a
    :class:`~featviz.CheckpointsResult` (from the same checkpoint files, checked by digest);
    an ``activation_atlas`` an :class:`~featviz.analysis.activation_atlas.ActivationAtlas` (its
    data read again, checked by digest; ``data=`` for an atlas made from a list of items).
    The model is loaded again as the record says (:func:`featviz.models.load_again`) unless
    ``model=`` is given; ``device=`` and ``progress=`` are passed through.

    >>> import featviz, torch
    >>> first = featviz.dream("efficientnet_lite0", "skimage:astronaut", "blocks.2", octaves=1, steps=2, size=48,
    ...                       progress=False)
    >>> again = replay(first.record, progress=False)
    >>> type(again).__name__, torch.equal(again.image, first.image)
    ('DreamResult', True)
    """
    if not isinstance(record, dict):
        raise FeatvizError(f"expected a run record (a dict, as load_record reads it), got {type(record).__name__}")
    inner = record.get("record")
    if "kind" not in record and isinstance(inner, dict) and "kind" in inner:  # a summary holding its record
        record = inner
    kind = record.get("kind", "render")
    if kind not in REPLAYS:
        raise FeatvizError(f"cannot replay a record of kind {kind!r}: expected one of {', '.join(REPLAYS)}")
    again = REPLAYS[kind]
    if kind != "render":  # the render's replay names what it takes itself
        takes = [name for name in inspect.signature(again).parameters if name != "record"]
        unknown = sorted(set(objects) - set(takes))
        if unknown:
            raise FeatvizError(f"the replay of a {kind} record takes {', '.join(takes)}; got {unknown}")
    return again(record, **objects)

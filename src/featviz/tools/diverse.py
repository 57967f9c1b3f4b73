"""Diversity sets: several images of one unit in one batch, each pushed away from the others.

A unit often responds to more than one pattern; optimizing a batch for the unit plus a
diversity term (Lucid's: minus the cosine similarity of the images' Gram matrices at a
layer) brings out several of them at once instead of the same one ``n`` times.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from featviz.errors import FeatvizError
from featviz.models import INPUT, LOGITS, ModelAdapter, load_model
from featviz.models.layers import stages
from featviz.optvis.objectives import Objective, diversity
from featviz.optvis.render import RenderResult, render
from featviz.optvis.units import parse_objective

#: Weight of the diversity term: channel means of mid layers reach 10-40, the term lies in
#: [-1, 0]; at this weight the images part ways without giving up much of the unit.
DEFAULT_WEIGHT = 10.0


def diversity_layer(adapter: ModelAdapter, objective: Objective) -> str:
    """Where to compare the images: the objective's own (deepest) layer; for class logits the
    middle one of the model's top-level stages (``blocks.3`` of EfficientNet-Lite0's 0..6)."""
    own = [name for name in objective.layers if name not in (LOGITS, INPUT)]
    if own:
        return own[-1]
    found = stages(adapter)
    if not found:
        raise FeatvizError(f"cannot choose a layer for the diversity term of {objective!r}: give one (layer=...)")
    return found[len(found) // 2]


def diverse(
    model: str | nn.Module | ModelAdapter,
    objective: str | Objective,
    n: int = 4,
    *,
    weight: float = DEFAULT_WEIGHT,
    layer: str | None = None,
    **kwargs: Any,
) -> RenderResult:
    """Render ``n`` images of ``objective`` in one batch with ``weight`` times the diversity
    of the batch at ``layer`` added (see :func:`diversity_layer` for the default). Other
    keyword arguments go to :func:`featviz.render`.

    >>> result = diverse("efficientnet_lite0", "blocks.2:5", 2, steps=2, size=64, progress=False)
    >>> tuple(result.images.shape), result.record["objective"]
    ((2, 3, 64, 64), "channel('blocks.2', 5) + 10.0 * diversity('blocks.2')")
    """
    adapter = load_model(model)
    return render(adapter, diversity_objective(adapter, objective, n, weight, layer), batch=n, **kwargs)


def diversity_objective(
    adapter: ModelAdapter, objective: str | Objective, n: int, weight: float = DEFAULT_WEIGHT, layer: str | None = None
) -> Objective:
    """``objective`` plus ``weight`` times the diversity of a batch of ``n`` at ``layer``."""
    if n < 2:
        raise FeatvizError(f"a diversity set needs at least 2 images, got n={n}")
    obj = parse_objective(objective, adapter) if isinstance(objective, str) else objective
    where = adapter.layer_name(layer) if layer is not None else diversity_layer(adapter, obj)
    return obj + weight * diversity(where)

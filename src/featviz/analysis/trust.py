"""Trust figures of a unit's visualization, read against its dataset examples: its activation
as a multiple of its best example's, and whether it moves the layer below as its examples do."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from featviz.errors import FeatvizError
from featviz.models import ModelAdapter
from featviz.models.hooks import capture
from featviz.optvis.objectives import as_grid


def trust(
    adapter: ModelAdapter,
    layer: str,
    prev: str | None,
    units: list[int],
    images: torch.Tensor,
    found: Any,
    tops: list[torch.Tensor] | None = None,
) -> list[dict[str, Any]]:
    """Per unit: the visualization's activation as a multiple of its best example's (both the
    channel's spatial mean at the build's size), and the rank correlation between the
    activations (channel means) that the visualization and its top examples cause in the
    layer below (``prev``, or the first layer the model runs). ``tops``: each unit's top
    examples already read (:func:`top_images`); every unit's run in one batch."""
    below = prev or first_conv(adapter)
    ex = found.layers[layer]
    tops = top_images(found, layer, units) if tops is None else tops
    with torch.no_grad(), capture(adapter, [below, layer]) as cap:
        viz = cap(images.to(adapter.device))
        acts = cap(torch.cat(tops).to(adapter.device))
    theirs = as_grid(acts, below).mean((2, 3)).split([len(t) for t in tops])
    out = []
    for i, c in enumerate(units):
        value = float(as_grid(viz, layer)[i, c].mean())
        best = float(ex.top_mean.values[c, 0])
        mine = as_grid(viz, below)[i].mean((1, 2))
        out.append(
            {
                "activation_vs_best_example": round(value / best, 3) if best > 0 else None,
                "rank_correlation_below": round(spearman(mine, theirs[i].mean(0)), 3),
                "below": below,
            }
        )
    return out


def top_images(found: Any, layer: str, units: list[int]) -> list[torch.Tensor]:
    """Each unit's top dataset examples (by the channel's spatial mean), read at the data's size."""
    ex = found.layers[layer]
    return [found.images(ex.top_mean.index[c].tolist()) for c in units]


def first_conv(adapter: ModelAdapter) -> str:
    for name, module in adapter.module.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise FeatvizError(f"{adapter.name} has no convolution to compare activations in")


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra = a.argsort().argsort().float()
    rb = b.argsort().argsort().float()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / ((ra.norm() * rb.norm()) + 1e-12))

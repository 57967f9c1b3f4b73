"""Model inspection: every layer with its output shape (what ``featviz layers`` prints)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from featviz.models.adapter import PSEUDO_LAYERS, ModelAdapter
from featviz.models.layout import NHWC


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    shape: tuple[int, ...]  # output shape for one image, without the batch dimension
    channels: int | None
    layout: str = ""  # NCHW, NHWC, tokens, vector or other

    @property
    def depth(self) -> int:
        return self.name.count(".")


def stages(adapter: ModelAdapter) -> list[str]:
    """The model's top-level numbered stages, in order (``blocks.0`` ... ``blocks.6``).

    >>> import featviz
    >>> stages(featviz.load_model())[:2]
    ['blocks.0', 'blocks.1']
    """
    return [n for n in adapter.layers() if n.count(".") == 1 and n.split(".")[-1].isdigit()]


def layer_table(adapter: ModelAdapter, size: int | None = None) -> list[LayerInfo]:
    """Run one grey image through the model and record each module's output shape, layout
    (NCHW, NHWC, tokens, vector: :mod:`featviz.models.layout`) and channel count."""
    from featviz.models.layout import layouts

    size = size or adapter.input_size
    adapter.check_size(size, size)
    module = adapter.module
    found = layouts(module, adapter.normalize(torch.full((1, 3, size, size), 0.5, device=adapter.device)))
    return [
        LayerInfo(n, type(m).__name__, found[n].shape, found[n].channels, found[n].kind)
        for n, m in module.named_modules()
        if n in found
    ]


@torch.no_grad()
def output_shape(adapter: ModelAdapter, layer: str, size: int | None = None) -> tuple[int, ...]:
    """The output shape of one layer for one image of ``size`` pixels (batch left out) as
    featviz reads it: channels first (``[C, H, W]``; a channels-last map such as a Swin
    stage's ``[H, W, C]`` is given as ``[C, H, W]``), tokens as ``[T, C]``; ``logits`` is the
    model's output. A forward stopped right after that layer.

    >>> import featviz
    >>> output_shape(featviz.load_model(), "blocks.5", 224)
    (192, 7, 7)
    """
    from featviz.models.hooks import capture

    name = adapter.layer_name(layer)
    size = adapter.input_size if adapter.fixed_size or size is None else max(size, adapter.min_size)
    with capture(adapter, [name]) as cap:
        act = cap(torch.full((1, 3, size, size), 0.5, device=adapter.device))[name]
    shape = tuple(act.shape[1:])
    if len(shape) == 3 and name not in PSEUDO_LAYERS and adapter.layout(name).kind == NHWC:
        return (shape[2], shape[0], shape[1])
    return shape

"""Model inspection: every layer with its output shape (what ``featviz layers`` prints)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from featviz.models.adapter import ModelAdapter


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    shape: tuple[int, ...]  # output shape for one image, without the batch dimension
    channels: int | None

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


def _channels(shape: tuple[int, ...]) -> int | None:
    if len(shape) == 3:  # [C, H, W]
        return shape[0]
    if len(shape) in (1, 2):  # [C] or [tokens, C]
        return shape[-1]
    return None


@torch.no_grad()
def layer_table(adapter: ModelAdapter, size: int | None = None) -> list[LayerInfo]:
    """Run one grey image through the model and record each module's output shape."""
    size = size or adapter.input_size
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def hook_for(name: str):  # type: ignore[no-untyped-def]
        def hook(module, inputs, output):  # type: ignore[no-untyped-def]
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(out.shape[1:])

        return hook

    module = adapter.module
    was_training = module.training
    try:
        module.eval()
        for name, mod in module.named_modules():
            if name:
                handles.append(mod.register_forward_hook(hook_for(name)))
        adapter(torch.full((1, 3, size, size), 0.5, device=adapter.device))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    modules = dict(module.named_modules())
    return [LayerInfo(n, type(m).__name__, shapes[n], _channels(shapes[n])) for n, m in modules.items() if n in shapes]


@torch.no_grad()
def output_shape(adapter: ModelAdapter, layer: str, size: int | None = None) -> tuple[int, ...]:
    """The output shape of one layer for one image of ``size`` pixels (batch left out);
    ``logits`` is the model's output. A forward stopped right after that layer.

    >>> import featviz
    >>> output_shape(featviz.load_model(), "blocks.5", 224)
    (192, 7, 7)
    """
    from featviz.models.hooks import capture

    name = adapter.layer_name(layer)
    size = adapter.input_size if adapter.fixed_size or size is None else max(size, adapter.min_size)
    with capture(adapter, [name]) as cap:
        act = cap(torch.full((1, 3, size, size), 0.5, device=adapter.device))[name]
    return tuple(act.shape[1:])

"""Capture activations with hooks on only the layers needed, and stop the forward early;
change a layer's output for the length of a block (:func:`intervene`).

The context manager puts the model in eval mode and registers forward hooks on the requested
layers. As soon as every requested layer has produced its output the forward pass is
aborted, so a channel of an early block costs a fraction of a full forward. Hooks and the
training flag are restored in ``finally``. Making the model faster (frozen weights, folded
batch norms, channels-last) is a separate context: :func:`featviz.models.speed.fast_inference`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from featviz.errors import FeatvizError, RenderError
from featviz.models.adapter import INPUT, LOGITS, ModelAdapter


class _StopForward(Exception):
    """Raised inside a hook to end the forward pass once every needed layer has run."""


class Activations(dict[str, torch.Tensor]):
    """Layer name -> activation, plus the adapter (for class names and token grids)."""

    def __init__(self, adapter: ModelAdapter, *args: Any) -> None:
        super().__init__(*args)
        self.adapter = adapter


class Capture:
    """Runs the model and returns the activations of the hooked layers (see :func:`capture`)."""

    def __init__(self, adapter: ModelAdapter, layers: Iterable[str], truncate: bool = True) -> None:
        self.adapter = adapter
        self.layers = tuple(dict.fromkeys(adapter.layer_name(layer) for layer in layers))
        self.modules = [l for l in self.layers if l not in (LOGITS, INPUT)]
        self.needs_output = LOGITS in self.layers
        self.truncate = truncate and not self.needs_output
        self._store: dict[str, torch.Tensor] = {}
        self._active = False  # hooks record only during this capture's own forward
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not self._active or name in self._store:  # another caller, or a second call
                return
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            self._store[name] = tensor
            if self.truncate and len(self._store) == len(self.modules):
                raise _StopForward(self)

        return hook

    def __call__(self, images: torch.Tensor) -> Activations:
        """Forward ``images`` (RGB in [0, 1]) and return the captured activations."""
        self._store = {}
        acts = Activations(self.adapter)
        if INPUT in self.layers:
            acts[INPUT] = images
        if not self.modules and not self.needs_output:
            return acts
        self._active = True
        try:
            output = self.adapter(images)
        except _StopForward as stop:
            if stop.args[0] is not self:  # a nested capture's stop is not ours
                raise
            output = None
        except FeatvizError:
            raise
        except RuntimeError as err:
            h, w = images.shape[-2:]
            raise RenderError(f"{self.adapter.name} failed on a {h}x{w} input: {err}") from err
        finally:
            self._active = False
        acts.update(self._store)
        if self.needs_output and output is not None:
            acts[LOGITS] = output
        missing = [m for m in self.modules if m not in acts]
        if missing:
            raise RenderError(f"layers {missing} did not run in the forward pass of {self.adapter.name}")
        return acts


@contextmanager
def capture(adapter: ModelAdapter, layers: Iterable[str], *, truncate: bool = True) -> Iterator[Capture]:
    """Hook ``layers`` of ``adapter`` for the duration of the block; the model is in eval mode
    inside. On exit the hooks are removed and the training flag restored, also when the
    block raised.

    >>> import featviz
    >>> adapter = featviz.load_model()
    >>> with capture(adapter, ["blocks.1"]) as cap:
    ...     tuple(cap(torch.rand(1, 3, 64, 64))["blocks.1"].shape)
    (1, 24, 16, 16)
    >>> hook_count(adapter.module)
    0
    """
    module = adapter.module
    cap = Capture(adapter, layers, truncate=truncate)
    was_training = module.training
    try:
        module.eval()
        for name in cap.modules:
            cap.handles.append(adapter.get_module(name).register_forward_hook(cap._hook(name)))
        yield cap
    finally:
        for handle in cap.handles:
            handle.remove()
        cap.handles.clear()
        module.train(was_training)


def hook_count(module: nn.Module) -> int:
    """Number of forward (pre-)hooks registered anywhere under ``module``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


@contextmanager
def intervene(
    adapter: ModelAdapter, layer: str, change: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[ModelAdapter]:
    """Replace the output of ``layer`` by ``change(output)`` in every forward pass run inside
    the block (an ablation, a patch); the model is in eval mode inside, and the hook is
    removed and the training flag restored on exit, also when the block raised.

    >>> import featviz
    >>> adapter = featviz.load_model()
    >>> x = torch.rand(1, 3, 64, 64)
    >>> with intervene(adapter, "blocks.6", torch.zeros_like) as model:
    ...     zeroed = model(x)
    >>> bool((zeroed != adapter(x)).any()), hook_count(adapter.module)
    (True, 0)
    """
    module = adapter.module
    was_training = module.training
    handle = adapter.get_module(adapter.layer_name(layer)).register_forward_hook(lambda m, i, out: change(out))
    try:
        module.eval()
        yield adapter
    finally:
        handle.remove()
        module.train(was_training)


@contextmanager
def eval_mode(adapter: ModelAdapter) -> Iterator[ModelAdapter]:
    """The model in eval mode for the block; its training flag restored on exit."""
    module = adapter.module
    was_training = module.training
    try:
        module.eval()
        yield adapter
    finally:
        module.train(was_training)

"""Make a frozen model's forward and input-gradient backward cheaper, for the length of a block.

A render never trains the model, so three rewrites change nothing it computes and save time:
weights stop requiring grad (no weight gradients), batch norms fold into the convolutions
before them (:mod:`featviz.models.fold`), and 4-D weights and inputs go channels-last, the
layout CPUs' and GPUs' convolution kernels prefer. :func:`fast_inference` applies them and
restores the caller's model on exit, also when the block raised. It is separate from
:func:`featviz.models.hooks.capture`, which only hooks layers.

On a CPU it can also hold freed memory in the process's heap for the block (:func:`held_heap`):
every step allocates and frees the same large activations, and glibc's malloc by default
hands blocks of that size back to the system and takes them again, page by page, each step.
That changes a setting of the whole process (glibc's malloc thresholds, shared with every other
library in it), so it happens only when asked: :func:`hold_heap` (the ``featviz`` command line
asks, being its own process) or ``FEATVIZ_HOLD_HEAP=1``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

from featviz.models.adapter import ModelAdapter
from featviz.models.fold import fold_batchnorm

# Modules (and the layers kept unfolded) whose fold was checked against the unfolded model once:
# the check is about the model's structure, which a render does not change.
_FOLD_CHECKED: weakref.WeakKeyDictionary[nn.Module, set[tuple[str, ...]]] = weakref.WeakKeyDictionary()


# glibc's mallopt parameters (malloc.h) and the values held_heap sets and leaves behind.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HELD = 1 << 30  # 1 GiB: a render's blocks stay in the heap, freed memory is kept for the next step
_AFTER_TRIM, _AFTER_MMAP = 64 << 20, 32 << 20  # glibc's own limits once it has seen large blocks freed
_heap_lock = threading.Lock()
_heap_depth = 0
_heap_wanted = os.environ.get("FEATVIZ_HOLD_HEAP", "").lower() in ("1", "true", "yes")


def hold_heap(on: bool = True) -> bool:
    """Whether :func:`fast_inference` holds freed memory in the heap on a CPU (:func:`held_heap`)
    from now on; returns the previous setting. Off by default in a library: it changes glibc's
    malloc settings for the whole process while a render runs.

    >>> before = hold_heap(True); hold_heap(before)
    True
    """
    global _heap_wanted
    before, _heap_wanted = _heap_wanted, bool(on)
    return before


@functools.cache
def _libc() -> Any:
    """glibc, or None (macOS, Windows, musl: nothing to tune)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextmanager
def held_heap() -> Iterator[bool]:
    """Keep freed memory in the heap for the length of the block (glibc only; yields whether
    it could). glibc returns a large freed block to the system (``munmap`` or trimming the heap)
    and faults it back in on the next allocation, so a render on a CPU paid thousands of page
    faults per step for activations of the same sizes each time (700-4,000 per step for the
    default's 4 crops of 160 px, 100,000 for 8 images; see docs/benchmarks.md).
    Inside the block large blocks come from the heap and stay there; on leaving the outermost
    block the thresholds go to glibc's own dynamic maximum and the heap is trimmed, so the
    memory held goes back to the system. Nested blocks and threads share one setting."""
    global _heap_depth
    libc = _libc()
    if libc is None:
        yield False
        return
    with _heap_lock:
        if _heap_depth == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(_HELD))
            libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(_HELD))
        _heap_depth += 1
    try:
        yield True
    finally:
        with _heap_lock:
            _heap_depth -= 1
            if _heap_depth == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(_AFTER_MMAP))
                libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(_AFTER_TRIM))
                libc.malloc_trim(ctypes.c_size_t(0))


def has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


@contextmanager
def fast_inference(
    adapter: ModelAdapter,
    keep: Iterable[str] = (),
    *,
    fold: bool = True,
    channels_last: bool | None = None,
) -> Iterator[ModelAdapter]:
    """Freeze, fold and go channels-last inside the block; layers named in ``keep`` (hooked
    layers whose own output is wanted) are not folded away. ``channels_last`` defaults to
    whether the model has 2-D convolutions."""
    module = adapter.module
    keep = tuple(sorted(set(keep)))
    channels_last = has_conv(module) if channels_last is None else channels_last
    was_training = module.training
    grad_flags = [(p, p.requires_grad) for p in module.parameters()]
    layouts: list[tuple[torch.Tensor, torch.Tensor]] = []
    with ExitStack() as stack:
        try:
            if adapter.device.type == "cpu" and _heap_wanted:
                stack.enter_context(held_heap())
            module.eval()
            for p, _ in grad_flags:
                p.requires_grad_(False)
            if fold:
                checked = keep in _FOLD_CHECKED.get(module, set())
                side = adapter.input_size if adapter.fixed_size else max(64, adapter.min_size)
                probe = None if checked else adapter.normalize(torch.rand(1, 3, side, side, device=adapter.device))
                folded = stack.enter_context(fold_batchnorm(module, keep=keep, check=probe))
                if folded and not checked:
                    _FOLD_CHECKED.setdefault(module, set()).add(keep)
            if channels_last:
                layouts = [(t, t.data) for t in [*module.parameters(), *module.buffers()] if t.dim() == 4]
                for t, data in layouts:
                    t.data = data.contiguous(memory_format=torch.channels_last)
                stack.callback(module.register_forward_pre_hook(_channels_last_input).remove)
            yield adapter
        finally:
            # Layouts first: they hold the folded weights, which the fold's own exit then restores.
            for t, data in layouts:
                t.data = data
            stack.close()
            for p, flag in grad_flags:
                p.requires_grad_(flag)
            module.train(was_training)


def _channels_last_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return None

"""Shared helpers for the benchmarks: timing and the machine description. Importing it holds
freed memory in the heap during featviz's renders (:func:`featviz.models.speed.hold_heap`), as
the ``featviz`` command line does, so that library calls are timed as users' commands run."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch

from featviz.models.speed import hold_heap

hold_heap(True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def time_per_call(fn: Callable[[], object], repeats: int, warmup: int = 5) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` calls, after ``warmup`` calls."""
    return time_interleaved({"fn": fn}, repeats, warmup)["fn"]


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 5) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved round by round so that
    drifts of the machine (turbo, other load) hit every contender alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - t)
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}

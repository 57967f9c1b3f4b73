"""Shared helpers for the benchmarks: timing, the machine description, the classes rendered and
the judges' ranks. :func:`hold` holds freed memory in the heap during featviz's renders
(:func:`featviz.models.speed.hold_heap`), as the ``featviz`` command line does, so that library
calls are timed as users' commands run; the subcommands that measure that way call it first
(importing this module holds nothing)."""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

import featviz
from featviz.data.photos import resize
from featviz.models.speed import hold_heap

# The classic tutorial's eight first, then eight more spread over ImageNet: the recipes were tuned on them.
CLASSES = [8, 144, 288, 587, 605, 800, 964, 983, 1, 130, 291, 340, 407, 511, 817, 948]
# Sixteen more that no recipe was tuned on: loggerhead, tarantula, goose, golden retriever,
# tabby, bee, monarch, giant panda, balloon, basketball, cannon, keyboard, folding chair,
# pickup, school bus, banana.
HELD_OUT = [33, 76, 99, 207, 281, 309, 323, 388, 417, 430, 471, 508, 559, 717, 779, 954]


def hold() -> None:
    """Hold freed memory in the heap during featviz's renders from now on, as ``featviz`` does."""
    hold_heap(True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def class_ranks(judge: featviz.ModelAdapter, images: torch.Tensor, classes: list[int]) -> list[int]:
    """The rank of each image's class among ``judge``'s logits for it (0 = top-1)."""
    with torch.no_grad():
        logits = judge(resize(images, judge.input_size))
    return [int((logits[i] > logits[i, c]).sum()) for i, c in enumerate(classes)]


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


def subcommand(sub: Any, name: str, run: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
    """A subcommand whose description is the docstring of the function that runs it."""
    p = sub.add_parser(
        name, help=help, description=inspect.getdoc(run), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.set_defaults(run=run)
    return p

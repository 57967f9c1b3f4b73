"""How much the same step's time moves on this machine, and why: the bare model's forward and
backward repeated in windows, against a matrix product that only computes.

    python bench/drift.py                       # 24 windows of 50 passes, 1 x 248 px, two threads
    python bench/drift.py --threads 1 --windows 12

Three parts, one process:

1. The folded, channels-last EfficientNet-Lite0 (what a render runs inside
   ``fast_inference``), forward and input-gradient backward on one 248 px view (what ``fast``
   shows the model for a 224 px image), ``--windows`` windows of ``--passes`` passes: the
   median of each window, and the page faults and involuntary context switches in it.
2. A 1024 x 1024 matrix product (compute-bound, its operands in cache) in as many windows.
3. The ReLU6 of the first expanded block (96 x 124 x 124) forward and backward, timed by
   PyTorch's profiler inside the model's pass and alone in a loop on a tensor of that shape.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import torch
from common import machine
from torch.profiler import ProfilerActivity, profile

import featviz
from featviz.models.speed import fast_inference, held_heap

SHAPE = [1, 96, 124, 124]


def windows(step: Callable[[], object], count: int, passes: int) -> list[tuple[float, int, int]]:
    """(median ms, minor page faults, involuntary context switches) per window."""
    for _ in range(10):
        step()
    out = []
    for _ in range(count):
        before, times = resource.getrusage(resource.RUSAGE_SELF), []
        for _ in range(passes):
            start = time.perf_counter()
            step()
            times.append(1000 * (time.perf_counter() - start))
        after = resource.getrusage(resource.RUSAGE_SELF)
        out.append((statistics.median(times), after.ru_minflt - before.ru_minflt, after.ru_nivcsw - before.ru_nivcsw))
    return out


def relu6_in_model(fwd_bwd: Callable[[], None]) -> dict[str, float]:
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(10):
            fwd_bwd()
    found: dict[str, list[float]] = {"aten::clamp": [], "aten::hardtanh_backward": []}
    for e in prof.events():
        if e.name in found and e.input_shapes and list(e.input_shapes[0]) == SHAPE:
            found[e.name].append(e.self_cpu_time_total / 1000)
    return {k: statistics.median(v) for k, v in found.items()}


def relu6_alone(repeats: int = 200) -> dict[str, float]:
    x = torch.rand(SHAPE).contiguous(memory_format=torch.channels_last) * 8 - 1
    grad = torch.rand_like(x)
    ops = {
        "aten::clamp": lambda: torch.nn.functional.hardtanh(x, 0.0, 6.0),
        "aten::hardtanh_backward": lambda: torch.ops.aten.hardtanh_backward(grad, x, 0.0, 6.0),
    }
    out = {}
    with held_heap():
        for name, op in ops.items():
            out[name] = statistics.median(ms for ms, _, _ in windows(op, 1, repeats))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=24)
    ap.add_argument("--passes", type=int, default=50)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    adapter = featviz.load_model("efficientnet_lite0")
    x = torch.rand(1, 3, 248, 248).contiguous(memory_format=torch.channels_last).requires_grad_()

    def fwd_bwd() -> None:
        x.grad = None
        adapter.module(x)[:, 8].sum().backward()

    with fast_inference(adapter):
        model = windows(fwd_bwd, args.windows, args.passes)
        inside = relu6_in_model(fwd_bwd)
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    product = torch.empty(1024, 1024)
    mm = windows(lambda: torch.mm(a, b, out=product), args.windows, args.passes)
    print(f"\n{args.threads} thread(s); median ms per window of {args.passes} passes, in order")
    print("| window | Lite0 fwd+bwd, 1 x 248 px | page faults | involuntary switches | 1024^2 matmul |")
    print("|---|---|---|---|---|")
    for i, ((ms, faults, switches), (mm_ms, _, _)) in enumerate(zip(model, mm, strict=True)):
        print(f"| {i} | {ms:.1f} | {faults} | {switches} | {mm_ms:.2f} |")
    for name, rows in (("Lite0", model), ("matmul", mm)):
        medians = [r[0] for r in rows]
        low, high = min(medians), max(medians)
        print(f"{name}: windows from {low:.2f} to {high:.2f} ms ({100 * (high / low - 1):.0f}% apart)")
    alone = relu6_alone()
    print(f"\nReLU6 on {SHAPE} (channels-last), ms per call:")
    for name in inside:
        print(f"  {name}: {inside[name]:.2f} inside the model's pass, {alone[name]:.2f} alone")


if __name__ == "__main__":
    main()

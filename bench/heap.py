"""Page faults and time per step with and without the held heap (featviz.models.speed.held_heap).

    python bench/heap.py                      # default and fast at 224 px, one image; 8 images batched
    python bench/heap.py --steps 96 --rounds 5
    python bench/heap.py --steps 64 --only "microscope 128, 8 units"    # a Microscope build's render

Each render runs in a fresh process (glibc's malloc adapts its thresholds to what a process
has freed, and the held heap leaves them set, so one process cannot measure both), the two
settings interleaved round by round (off, held, off, held...), so a machine that slows down
for a while slows both. Per setting and case: the median over rounds of wall time, user and
system CPU time per step (``getrusage`` around the render, after a 4-step warm-up render;
two threads, so CPU time is up to twice the wall time) and minor page faults per step. "off"
makes ``held_heap`` find no glibc, which is what a render did before the heap was held.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from unittest import mock

import featviz
from featviz.models import speed

CASES = {
    "default 224, 1 image": ("default", 224, ["logits:hen"]),
    "fast 224, 1 image": ("fast", 224, ["logits:hen"]),
    "default 128, 1 image": ("default", 128, ["logits:hen"]),
    "default 224, 8 images": ("default", 224, [f"logits:{c}" for c in range(8)]),
    "microscope 128, 8 units": ("microscope", 128, [f"blocks.4:{c}" for c in range(8)]),
}


def one(adapter: featviz.ModelAdapter, recipe: str, size: int, units: list[str], steps: int) -> tuple[float, ...]:
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    featviz.render(adapter, units, recipe=recipe, size=size, steps=steps, progress=False)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    per = 1000 / steps
    return (
        wall * per,
        (r1.ru_utime - r0.ru_utime) * per,
        (r1.ru_stime - r0.ru_stime) * per,
        (r1.ru_minflt - r0.ru_minflt) / steps,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--child", nargs=2, metavar=("CASE", "HELD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, held = args.child[0], args.child[1] == "1"
        with mock.patch.object(speed, "_libc", speed._libc if held else lambda: None):
            adapter = featviz.load_model()
            featviz.render(adapter, "logits:hen", steps=4, size=64, progress=False)  # warm up, small
            print(json.dumps(one(adapter, *CASES[name], args.steps)))
        return
    found = defaultdict(list)
    for _ in range(args.rounds):
        for name in args.only:
            for held in (False, True):
                cmd = [sys.executable, __file__, "--steps", str(args.steps), "--child", name, str(int(held))]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                found[name, held].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{args.steps} steps per render, median of {args.rounds} interleaved rounds (ms per step)")
    print(f"{'case':24s} {'heap':5s} {'wall':>7s} {'user':>7s} {'sys':>6s} {'faults':>7s}")
    for name in args.only:
        for held in (False, True):
            wall, user, sys_, faults = (statistics.median(x) for x in zip(*found[name, held], strict=True))
            print(f"{name:24s} {'held' if held else 'off':5s} {wall:7.1f} {user:7.1f} {sys_:6.1f} {faults:7.0f}")


if __name__ == "__main__":
    main()

"""Atlas throughput: channels rendered per minute at batch 1 vs 8 vs 32, in one run.

    python bench/throughput.py [--layer blocks.4] [--channels 32] [--steps 16] [--size 128] [--rounds 2]

Every batch size renders the same channels of the same layer with the same recipe, steps and
size through :func:`featviz.atlas` (no files written): batch 1 is one render per channel,
batch 32 one render for all. Rounds are interleaved (the order rotates each round) so that
drifts of a shared machine hit every batch size alike; the table gives the median round.
"""

from __future__ import annotations

import argparse
import os
import time

from common import machine

import featviz


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--layer", default="blocks.4")
    ap.add_argument("--channels", type=int, default=32, help="channels 0..N-1, rendered at every batch size")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--recipe", default="default")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    adapter = featviz.load_model(args.model)
    featviz.atlas(adapter, args.layer, "0:2", batch=2, steps=2, size=args.size, progress=False)  # warm-up
    load_before = os.getloadavg()[0]
    times: dict[int, list[float]] = {b: [] for b in batches}
    for r in range(args.rounds):
        for b in batches[r % len(batches) :] + batches[: r % len(batches)]:
            start = time.perf_counter()
            featviz.atlas(
                adapter,
                args.layer,
                f"0:{args.channels}",
                batch=b,
                recipe=args.recipe,
                steps=args.steps,
                size=args.size,
                progress=False,
            )
            times[b].append(time.perf_counter() - start)
            print(f"round {r + 1}, batch {b}: {times[b][-1]:.1f} s", flush=True)
    load_after = os.getloadavg()[0]

    print(f"\nmachine: {machine()}")
    print(
        f"{args.model} {args.layer}, channels 0-{args.channels - 1}, recipe {args.recipe}, "
        f"{args.steps} steps, {args.size} px; median of {args.rounds} interleaved rounds; "
        f"load average {load_before:.1f} before, {load_after:.1f} after\n"
    )
    print("| batch | renders | seconds | channels / minute | vs batch 1 |")
    print("|---|---|---|---|---|")
    base = None
    for b in batches:
        secs = sorted(times[b])[(len(times[b]) - 1) // 2]
        rate = args.channels / secs * 60
        base = base or rate
        renders = -(-args.channels // b)
        print(f"| {b} | {renders} | {secs:.1f} | {rate:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()

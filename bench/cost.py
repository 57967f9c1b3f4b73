"""Per-step cost of a recipe (the default unless ``--recipe``) by unit depth and image size, one image at a time:
a 128 px render against a 224 px one, and an early channel against a class logit.

    python bench/cost.py                 # 48 steps per render, best of 3
    python bench/cost.py --recipe fast

Each figure is one render's own wall time over its steps (the render loop only: no start-up),
the best of ``--rounds`` renders, all in one process; the ratios are the targets of the speed
issue (128 px at most half of 224 px; ``blocks.1`` at most 40% of a class logit per step).
"""

from __future__ import annotations

import argparse
import time

import featviz


def per_step(adapter: featviz.ModelAdapter, unit: str, size: int, steps: int, rounds: int, recipe: str) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        featviz.render(adapter, unit, recipe=recipe, size=size, steps=steps, progress=False)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--recipe", default="default")
    args = ap.parse_args()
    adapter = featviz.load_model()
    featviz.render(adapter, "logits:hen", recipe=args.recipe, steps=4, progress=False)  # warm up
    print(f"recipe {args.recipe!r}, {args.steps} steps per render, best of {args.rounds}")
    cost = {
        (unit, size): per_step(adapter, unit, size, args.steps, args.rounds, args.recipe)
        for unit in ("logits:hen", "blocks.1:0")
        for size in (224, 128)
    }
    for (unit, size), seconds in cost.items():
        print(f"{unit:12s} {size} px: {1000 * seconds:.1f} ms / step")
    print(f"128 px / 224 px, logits:hen: {cost[('logits:hen', 128)] / cost[('logits:hen', 224)]:.0%}")
    print(f"blocks.1:0 / logits:hen at 224 px: {cost[('blocks.1:0', 224)] / cost[('logits:hen', 224)]:.0%}")
    print(f"blocks.1:0 / logits:hen at 128 px: {cost[('blocks.1:0', 128)] / cost[('logits:hen', 128)]:.0%}")


if __name__ == "__main__":
    main()

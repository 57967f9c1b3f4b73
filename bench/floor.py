"""Where a step's time goes, one image at a time: the render step split into its phases, and
the bare model's forward and input-gradient backward by input size.

    python bench/floor.py                      # default 224 / 128 px, fast 224 px, blocks.1:0 in both
    python bench/floor.py --steps 80 --rounds 5

Phases (median per step over ``--steps`` steps after 10 of warm-up, one process): the
image (Fourier parameterization), the transforms (crops or the fused resampling), the
forward (normalization, model up to the deepest hooked layer, objective), the backward
(model, transforms and image) and Adam with its schedule. The bare rows time the folded,
channels-last EfficientNet-Lite0 with frozen weights (what the loop runs inside
``fast_inference``) on random inputs, interleaved round by round: what no change to the
loop can go below.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import machine, time_interleaved

import featviz
from featviz.models.hooks import capture
from featviz.models.speed import fast_inference
from featviz.optvis.render import _scores, _tile
from featviz.optvis.spec import resolve

RENDERS = [("default", 224, "logits:hen"), ("default", 128, "logits:hen"), ("fast", 224, "logits:hen")]
RENDERS += [("fast", 224, "blocks.1:0"), ("default", 224, "blocks.1:0")]
BARE = [(4, 32), (4, 64), (4, 112), (4, 160), (1, 32), (1, 128), (1, 224), (1, 248)]
PHASES = ("image", "transforms", "forward", "backward", "adam", "step")


def phases(adapter: featviz.ModelAdapter, recipe: str, size: int, unit: str, steps: int) -> dict[str, float]:
    plan = resolve(adapter, unit, recipe=recipe, size=size, seed=0, device="cpu")
    obj, param, tfm, opt = plan.objective, plan.param, plan.transforms, plan.optimizer
    samples: list[list[float]] = []
    with fast_inference(adapter, keep=obj.layers), capture(adapter, obj.layers) as cap:
        for step in range(steps + 10):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            image = param()
            t1 = time.perf_counter()
            x = tfm(_tile(image, tfm.copies), plan.generator)
            t2 = time.perf_counter()
            scores = _scores(obj, cap(x), image, tfm.copies)
            t3 = time.perf_counter()
            (-scores.sum()).backward()
            t4 = time.perf_counter()
            opt.step()
            if plan.schedule is not None:
                plan.schedule.step()
            param.constrain_()
            t5 = time.perf_counter()
            if step >= 10:
                samples.append([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0])
    return {k: statistics.median(v) for k, v in zip(PHASES, zip(*samples, strict=True), strict=True)}


def bare(adapter: featviz.ModelAdapter, repeats: int) -> dict[tuple[int, int], float]:
    module = adapter.module
    inputs = {
        (b, s): torch.rand(b, 3, s, s).contiguous(memory_format=torch.channels_last).requires_grad_() for b, s in BARE
    }

    def fwd_bwd(x: torch.Tensor) -> None:
        x.grad = None
        module(x)[:, 8].sum().backward()

    with fast_inference(adapter):
        times = time_interleaved({f"{b}x{s}": (lambda x=x: fwd_bwd(x)) for (b, s), x in inputs.items()}, repeats)
    return {key: times[f"{key[0]}x{key[1]}"] for key in inputs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds of the bare model")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    adapter = featviz.load_model()
    print(f"machine: {machine()}\n")
    print("| render | " + " | ".join(f"{p} ms" for p in PHASES) + " |")
    print("|---|" + "---|" * len(PHASES))
    for recipe, size, unit in RENDERS:
        ph = phases(adapter, recipe, size, unit, args.steps)
        print(f"| {recipe} {size} px {unit} | " + " | ".join(f"{1000 * ph[p]:.1f}" for p in PHASES) + " |")
    print("\n| bare Lite0, folded, channels-last | forward + input-gradient backward, ms |")
    print("|---|---|")
    for (b, s), seconds in bare(adapter, args.rounds).items():
        print(f"| {b} x {s} px | {1000 * seconds:.1f} |")


if __name__ == "__main__":
    main()

"""Per-step cost of featviz's render loop against the bare limit, measured in one run.

    python bench/speed.py [--batch 1] [--size 224] [--recipe default] [--steps 24] [--rounds 3]

"featviz" is the real render loop (parameterization, transforms, forward, backward, Adam),
timed per step with a callback. The limits are a plain forward + input-gradient backward of
the same model, frozen weights, on the same number of images at the same size as featviz
feeds it (batch x crops): once as users write it (NCHW, batch norms as they are) and once
with the two things featviz does to the model during a render (batch norms folded into the
convolutions, channels-last), so the overhead of the loop itself shows too. Rounds alternate
between contenders so that drifts of the machine hit all alike.
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import time

import torch
from common import machine

import featviz
from featviz.models.fold import fold_batchnorm
from featviz.optvis import transforms as T


def featviz_steps(adapter: featviz.ModelAdapter, recipe: str, batch: int, size: int, steps: int) -> list[float]:
    stamps: list[float] = []
    units = [f"logits:{c}" for c in (8, 144, 288, 587, 605, 800, 964, 983)[:batch]] * (batch // 8 + 1)
    featviz.render(
        adapter,
        units[:batch],
        recipe=recipe,
        steps=steps,
        size=size,
        progress=False,
        callbacks=[lambda state: stamps.append(time.perf_counter())],
    )
    return [b - a for a, b in zip(stamps[3:], stamps[4:], strict=False)]  # skip warm-up steps


def bare_steps(module: torch.nn.Module, n: int, size: int, steps: int, channels_last: bool) -> list[float]:
    x = torch.rand(n, 3, size, size, requires_grad=True)
    out = []
    for i in range(steps):
        t = time.perf_counter()
        x.grad = None
        inp = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        module(inp)[:, 8].sum().backward()
        if i >= 3:
            out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--recipe", default="default")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    adapter = featviz.load_model("efficientnet_lite0")
    recipe = featviz.get_recipe(args.recipe)
    transforms = recipe.build_transforms()
    copies = transforms.copies
    n = args.batch * copies
    # The model sees what the crops resample to, else the image size.
    crops = next((t for t in transforms.transforms if isinstance(t, T.RandomCrops)), None)
    seen = crops.output_size(args.size, args.size)[0] if crops else args.size
    plain = copy.deepcopy(adapter.module).eval().requires_grad_(False)
    tuned = copy.deepcopy(plain)
    with fold_batchnorm(tuned):
        for t in [*tuned.parameters(), *tuned.buffers()]:
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)
        samples: dict[str, list[float]] = {
            "featviz render loop": [],
            "bare, as users write it": [],
            "bare, folded BN + channels-last": [],
        }
        for _ in range(args.rounds):
            samples["featviz render loop"] += featviz_steps(adapter, args.recipe, args.batch, args.size, args.steps)
            samples["bare, as users write it"] += bare_steps(plain, n, seen, args.steps, False)
            samples["bare, folded BN + channels-last"] += bare_steps(tuned, n, seen, args.steps, True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"machine: {machine()}")
    print(
        f"EfficientNet-Lite0, recipe {args.recipe!r}: {args.batch} image(s) of {args.size} px x {copies} crops = {n} "
        f"model inputs of {seen} px per step; median over {args.rounds} rounds of {args.steps - 4} steps\n"
    )
    print("| contender | ms / step | vs featviz |")
    print("|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v * 1e3:.1f} | {v / med['featviz render loop']:.2f}x |")
    over = med["featviz render loop"] / med["bare, folded BN + channels-last"] - 1
    print(
        f"\nfeatviz overhead over the tuned bare limit: {over:+.0%}; over the plain bare limit: "
        f"{med['featviz render loop'] / med['bare, as users write it'] - 1:+.0%}"
    )
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

"""Fewer or cheaper steps for the default recipe: judge transfer and cost of variants.

    python bench/steps.py s128 s160k2 s256k2          # variants by name (see VARIANTS)
    python bench/steps.py d384 --size 224 --seed 1

Each variant renders the 16 held-out classes (8 per batch, the same batches for all) on
EfficientNet-Lite0; Lite1 and Lite2 judge (top-1 and the rank of the class, 0 = top-1).
Seconds per image are the batched cost, for comparing variants with each other; what a user
waits for one image at a time is measured by ``bench/single.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import featviz
from featviz.data.photos import resize
from featviz.optvis.recipes import Recipe, get_recipe

HELD_OUT = [33, 76, 99, 207, 281, 309, 323, 388, 417, 430, 471, 508, 559, 717, 779, 954]


def crops(k: int, size: int, zoom: float = 1.25) -> tuple:
    return (
        ("crops", {"k": k, "area": (0.25, 1.0), "size": size, "max_zoom": zoom}),
        ("color", {"brightness": 0.05, "contrast": 0.05}),
        ("noise", {"std": 0.02}),
    )


BASE = get_recipe("default")
VARIANTS: dict[str, Recipe] = {
    "d384": BASE,
    "s128": BASE.replace(steps=128),
    "s128lr08": BASE.replace(steps=128, lr=0.08),
    "s96lr1": BASE.replace(steps=96, lr=0.1),
    "s160k2": BASE.replace(steps=160, transforms=crops(2, 160)),
    "s128k2lr08": BASE.replace(steps=128, lr=0.08, transforms=crops(2, 160)),
    "s256k2": BASE.replace(steps=256, transforms=crops(2, 160)),
    "s192k2lr06": BASE.replace(steps=192, lr=0.06, transforms=crops(2, 160)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    adapter = featviz.load_model()
    judges = {n: featviz.load_model(n) for n in ("efficientnet_lite1", "efficientnet_lite2")}
    for name in args.variants:
        recipe = VARIANTS[name].replace(name=name)
        start, images = time.perf_counter(), []
        for i in range(0, len(HELD_OUT), 8):
            units = [f"logits:{c}" for c in HELD_OUT[i : i + 8]]
            images.append(
                featviz.render(adapter, units, recipe=recipe, size=args.size, seed=args.seed, progress=False).images
            )
        seconds = (time.perf_counter() - start) / len(HELD_OUT)
        x = torch.cat(images)
        cells = []
        for judge_name, judge in judges.items():
            with torch.no_grad():
                logits = judge(resize(x, judge.input_size))
            ranks = [int((logits[i] > logits[i, c]).sum()) for i, c in enumerate(HELD_OUT)]
            top1 = sum(r == 0 for r in ranks)
            cells.append(f"{judge_name[-5:]} top-1 {top1}/16, mean rank {statistics.fmean(ranks):.2f}, ranks {ranks}")
        print(f"{name} at {args.size} px: {seconds:.2f} s / image batched; " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()

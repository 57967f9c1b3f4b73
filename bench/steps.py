"""Fewer or cheaper steps: judge transfer and cost of variants of a recipe.

    python bench/steps.py s192k2 steps=192 k=2                      # one variant of the default
    python bench/steps.py a steps=192 k=2 -- b steps=160 k=2 lr=0.06  # several, '--' between
    python bench/steps.py fast base=fast classes=tuned seed=0        # a recipe as it is

A variant is a name and ``key=value`` changes to a base recipe (``base=``, default
``default``): ``steps``, ``lr``, ``lr_final``, ``k`` (crops per step), ``crop`` (their size),
``a0`` (the smallest crop's share of the image), ``zoom`` (max_zoom), ``decay`` (Fourier
spectrum), ``eps`` and ``b2`` (Adam), ``sched`` (``constant`` or ``cosine``), ``resize`` (a last
transform resampling to that size), ``rot`` (a random rotation of up to that many degrees
before the crops), ``size`` (image), ``keep=PATH`` (a grid of the images), ``single=1`` (one
image per ``render()`` call, as a user renders them), ``seed`` and ``classes``
(``held-out``, default, ``tuned``: the 16 classes the recipes were tuned on, or class indices
with commas, to screen a variant on the classes it fails).

Each variant renders 16 classes (8 per batch, the same batches for all) on EfficientNet-Lite0;
Lite1 and Lite2 judge (top-1 and the rank of the class, 0 = top-1). Seconds per image are the
batched cost, for comparing variants with each other; what a user waits for one image at a
time is measured by ``bench/single.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import torch

import featviz
from featviz.data.photos import resize
from featviz.io.grid import save_grid
from featviz.optvis.recipes import Recipe, get_recipe

HELD_OUT = [33, 76, 99, 207, 281, 309, 323, 388, 417, 430, 471, 508, 559, 717, 779, 954]
TUNED = [8, 144, 288, 587, 605, 800, 964, 983, 1, 130, 291, 340, 407, 511, 817, 948]


def variant(base: Recipe, changes: dict[str, str]) -> Recipe:
    """``base`` with the bench's short keys applied."""
    kv: dict[str, Any] = dict(changes)
    crops = next((dict(s) for n, s in base.transforms if n == "crops"), {})
    keys = {"k": ("k", int), "crop": ("size", int), "zoom": ("max_zoom", float)}
    for key, (name, cast) in keys.items():
        if key in kv:
            crops[name] = cast(kv.pop(key))
    if "a0" in kv:
        crops["area"] = (float(kv.pop("a0")), 1.0)
    out: dict[str, Any] = {"transforms": tuple((n, crops if n == "crops" else s) for n, s in base.transforms)}
    if "rot" in kv:  # a random rotation of the whole image before the crops (fused into one resampling)
        out["transforms"] = (("rotate", {"degrees": float(kv.pop("rot"))}), *out["transforms"])
    if "resize" in kv:  # resample whatever the transforms made to this size last, as Lucent does to 224
        out["transforms"] += (("resize", {"size": int(kv.pop("resize"))}),)
    for key, cast in (("steps", int), ("lr", float), ("lr_final", float)):
        if key in kv:
            out[key] = cast(kv.pop(key))
    if "sched" in kv:
        out["lr_schedule"] = kv.pop("sched")
    if "decay" in kv:
        out["param_kwargs"] = {**base.param_kwargs, "decay": float(kv.pop("decay"))}
    opt = dict(base.optimizer_kwargs)
    if "eps" in kv:
        opt["eps"] = float(kv.pop("eps"))
    if "b2" in kv:
        opt["betas"] = (0.9, float(kv.pop("b2")))
    out["optimizer_kwargs"] = opt
    if kv:
        raise SystemExit(f"unknown keys {sorted(kv)}; see the docstring")
    return base.replace(**out)


def main() -> None:
    groups: list[list[str]] = [[]]
    for arg in sys.argv[1:]:
        if arg == "--":
            groups.append([])
        else:
            groups[-1].append(arg)
    if not groups[0] or groups[0][0].startswith("-"):
        raise SystemExit(__doc__)
    adapter = featviz.load_model()
    judges = {n: featviz.load_model(n) for n in ("efficientnet_lite1", "efficientnet_lite2")}
    for name, *changes in groups:
        kv = dict(c.split("=", 1) for c in changes)
        seed = int(kv.pop("seed", 1))
        size = int(kv.pop("size", 0)) or None  # None: the base recipe's size, else the model's (224)
        per = 1 if kv.pop("single", "0") == "1" else 8
        keep = kv.pop("keep", None)
        which = kv.pop("classes", "held-out")
        classes = {"tuned": TUNED, "held-out": HELD_OUT}.get(which) or [int(c) for c in which.split(",")]
        recipe = variant(get_recipe(kv.pop("base", "default")), kv).replace(name=name)
        start, images = time.perf_counter(), []
        for i in range(0, len(classes), per):
            units = [f"logits:{c}" for c in classes[i : i + per]]
            result = featviz.render(adapter, units, recipe=recipe, size=size, seed=seed, progress=False)
            images.append(result.images)
        seconds = (time.perf_counter() - start) / len(classes)
        x = torch.cat(images)
        if keep:
            save_grid(x, keep, labels=[str(c) for c in classes])
        cells = []
        for judge_name, judge in judges.items():
            with torch.no_grad():
                logits = judge(resize(x, judge.input_size))
            ranks = [int((logits[i] > logits[i, c]).sum()) for i, c in enumerate(classes)]
            top1 = sum(r == 0 for r in ranks)
            mean = statistics.fmean(ranks)
            cells.append(f"{judge_name[-5:]} top-1 {top1}/{len(classes)}, mean rank {mean:.2f}, ranks {ranks}")
        how = "one at a time" if per == 1 else "batched"
        blown = float(((x.clamp(0, 1) * 255).round() % 255 == 0).float().mean())
        print(
            f"{name} ({' '.join(changes) or 'as it is'}) at {x.shape[-1]} px: {seconds:.2f} s / image {how}; "
            + "; ".join(cells)
            + f"; blown-out {100 * blown:.2f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Truncated forward: per-step cost of an early channel vs a class logit, in one run.

    python bench/truncation.py [--size 224] [--steps 20]

Prints, side by side: featviz's per-step time for ``blocks.1:0`` and ``logits:hen`` (Fourier
image, jitter/scale/rotate, Adam; batch 1), the same channel with truncation switched off, and the bare
forward + input-gradient backward through ``conv_stem..blocks.1`` alone vs the whole network.
"""

from __future__ import annotations

import argparse
import copy
from contextlib import ExitStack

import torch
from common import machine, time_interleaved

import featviz
from featviz.models.hooks import capture
from featviz.models.speed import fast_inference
from featviz.optvis import transforms as T
from featviz.optvis.param import FourierImage, PixelImage
from featviz.optvis.render import _scores


def featviz_step(adapter, unit: str, size: int, truncate: bool = True, plain: bool = False):
    """One optimization step: Fourier image + jitter/scale/rotate + Adam, or with ``plain``
    the ``gray`` recipe's pixels + SGD and no transforms (what truncation alone buys)."""
    obj = featviz.parse_objective(unit, adapter)
    gen0 = torch.Generator().manual_seed(0)
    param = PixelImage(size, 1, generator=gen0) if plain else FourierImage(size, 1, generator=gen0)
    opt = torch.optim.SGD(param.parameters(), lr=0.5) if plain else torch.optim.Adam(param.parameters(), lr=0.05)
    # Lucid's jitter, scale and rotation (fused into one resampling), without the padding so
    # that every step feeds the model exactly size x size pixels, like the bare baseline.
    tfm = T.Compose([] if plain else [T.jitter(8), T.random_scale(0.9, 1.1), T.random_rotate(10)])
    gen = torch.Generator().manual_seed(0)
    ctx = ExitStack()
    ctx.enter_context(fast_inference(adapter, obj.layers))
    cap = ctx.enter_context(capture(adapter, obj.layers, truncate=truncate))

    def step():
        opt.zero_grad(set_to_none=True)
        image = param()
        (-_scores(obj, cap(tfm(image, gen)), image, 1).sum()).backward()
        opt.step()

    return step, ctx


def bare_step(module: torch.nn.Module, size: int):
    module.requires_grad_(False)
    x = torch.rand(1, 3, size, size, requires_grad=True)

    def step():
        x.grad = None
        module(x).pow(2).mean().backward()

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    adapter = featviz.load_model("efficientnet_lite0")
    # The bare baseline runs on an untouched copy, made before any render is open (featviz
    # folds batch norms and switches to channels-last while its renders are open).
    m = copy.deepcopy(adapter.module.eval())
    fns, contexts = {}, []
    for label, unit, trunc in [
        ("blocks.1:0", "blocks.1:0", True),
        ("logits:hen", "logits:hen", True),
        ("blocks.1:0, no truncation", "blocks.1:0", False),
    ]:
        fns[label], ctx = featviz_step(adapter, unit, args.size, trunc)
        contexts.append(ctx)
    for label, unit in [("blocks.1:0, pixels + SGD", "blocks.1:0"), ("logits:hen, pixels + SGD", "logits:hen")]:
        fns[label], ctx = featviz_step(adapter, unit, args.size, True, plain=True)
        contexts.append(ctx)
    early = torch.nn.Sequential(m.conv_stem, m.bn1, m.blocks[0], m.blocks[1])
    fns["bare fwd+bwd, stem..blocks.1"] = bare_step(early, args.size)
    fns["bare fwd+bwd, whole network"] = bare_step(m, args.size)
    try:
        rows = time_interleaved(fns, args.steps)
    finally:
        for ctx in reversed(contexts):  # nested contexts close last-in, first-out
            ctx.__exit__(None, None, None)
    print(f"machine: {machine()}; EfficientNet-Lite0, {args.size} px, batch 1, median of {args.steps} steps\n")
    print("| measurement | ms / step | vs logits:hen (featviz) |")
    print("|---|---|---|")
    base = rows["logits:hen"]
    for label, sec in rows.items():
        print(f"| {label} | {sec * 1e3:.1f} | {sec / base:.0%} |")
    plain = rows["blocks.1:0, pixels + SGD"] / rows["logits:hen, pixels + SGD"]
    print(f"\npixels + SGD, no transforms (the gray recipe): blocks.1:0 / logits:hen = {plain:.0%}")
    bare = rows["bare fwd+bwd, stem..blocks.1"] / rows["bare fwd+bwd, whole network"]
    print(f"\nbare ratio stem..blocks.1 / whole network: {bare:.0%}")


if __name__ == "__main__":
    main()

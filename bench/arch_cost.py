"""Per-step cost of a render against the bare forward + input-gradient backward, by architecture.

    python bench/arch_cost.py                                   # 16 steps per render, best of 3 rounds
    python bench/arch_cost.py --models resnet50 lite0 --steps 24 --rounds 5
    python bench/arch_cost.py --tuned                           # bare model folded + channels-last too

Models: ResNet-50 (torchvision, random weights), ConvNeXt-T and ViT-S/16 (timm, random
weights) and the embedded EfficientNet-Lite0; for each a mid-depth channel (``LAYER:0``) and
a class logit (``logits:hen``), one image, the default recipe, at the model's input size and at
128 px where the model takes other sizes (a ViT takes 224 px only: featviz resamples every
crop to 224, so a 128 px render costs the model what a 224 px one does; it is left out).

"render" is featviz's own loop (``featviz.render``), timed per step. The bare figures are
``x.requires_grad_(); model(x)`` on a frozen copy of the model (eval, no weight gradients,
batch norms as they are; with ``--tuned`` folded and channels-last as the loop runs it) and
``.backward()`` of the channel's mean or of the logit: "to layer" stops the forward at the
layer with a hook, as featviz does; "full" runs the whole network. Each is timed on two
inputs: what the render feeds the model per step (the recipe's crops, e.g. 4 of 160 px for a
224 px image) and one image of the render's size. Render steps and bare calls alternate: a
callback runs one bare call after every step of the render (the unit's bare contenders in
turn) and the step is timed without it, so a drifting machine (other load, turbo) hits both
alike. Each figure is the median over one render (its first two steps left out), the best
of ``--rounds`` renders.

"vs crops" is render / bare-to-layer on the crops the render feeds (the loop's own
overhead: Fourier image, transforms, normalization, objective, Adam); "vs 1 image" is render
/ bare-to-layer on one image of the render's size (the overhead plus the recipe's crops).
"ok" marks a ratio within 25% of its bare cost.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import torch
from common import machine
from torch import nn

import featviz
from featviz.models.speed import fast_inference
from featviz.optvis.callbacks import StepState
from featviz.optvis.spec import resolve

# key -> (name for featviz.load_model, mid-depth layer)
MODELS = {
    "resnet50": ("torchvision:resnet50", "layer3"),
    "convnext_tiny": ("timm:convnext_tiny", "stages.2"),
    "vit_small": ("timm:vit_small_patch16_224", "blocks.6"),
    "lite0": ("efficientnet_lite0", "blocks.4"),
}
CLASS = "logits:hen"
HEN = 8
BARE = ("crops|to layer", "crops|full", "1 image|to layer", "1 image|full")


class _Stop(Exception):
    """Raised by the bare truncated forward's hook once the layer has run."""


def interleaved(
    adapter: featviz.ModelAdapter, unit: str, size: int, steps: int, bare: dict[str, Callable[[], None]]
) -> tuple[float, dict[str, float]]:
    """One default-recipe render with one bare call after each step, the contenders in
    turn: the median seconds of a step (the bare call left out) and of each contender's
    calls, from the third step on."""
    turns = itertools.cycle(bare.items())
    step_s: list[float] = []
    bare_s: dict[str, list[float]] = {label: [] for label in bare}
    resumed = 0.0

    def callback(state: StepState) -> None:
        nonlocal resumed
        ended = time.perf_counter()
        label, fn = next(turns)
        fn()
        done = time.perf_counter()
        if state.step >= 2:
            step_s.append(ended - resumed)
            bare_s[label].append(done - ended)
        resumed = time.perf_counter()

    featviz.render(adapter, unit, size=size, steps=steps, device="cpu", progress=False, callbacks=[callback])
    return statistics.median(step_s), {label: statistics.median(v) for label, v in bare_s.items() if v}


def fed_shape(adapter: featviz.ModelAdapter, unit: str, size: int) -> tuple[int, int]:
    """How many images of which side the render feeds the model per step (crops, resampling)."""
    plan = resolve(adapter, unit, size=size, device="cpu")
    return plan.transforms.copies, plan.transforms.output_size(size, size)[0]


def bare_call(
    module: nn.Module, layer: str | None, prefix: int, n: int, side: int, truncate: bool
) -> Callable[[], None]:
    """A frozen forward + input-gradient backward: the logit's if ``layer`` is None, else
    channel 0's mean at ``layer`` (the forward stopped there when ``truncate``)."""
    x = torch.rand(n, 3, side, side, requires_grad=True)
    target = dict(module.named_modules())[layer] if layer else None

    def objective(out: torch.Tensor) -> torch.Tensor:
        if out.dim() == 3:  # tokens [B, T, C]: the grid's tokens, not the class token
            return out[:, prefix:, 0].mean()
        return out[:, 0].mean()

    def call() -> None:
        x.grad = None
        if target is None:
            module(x)[:, HEN].sum().backward()
            return
        store: list[torch.Tensor] = []

        def hook(m: nn.Module, i: object, out: torch.Tensor) -> None:
            store.append(out)
            if truncate:
                raise _Stop

        handle = target.register_forward_hook(hook)
        try:
            module(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        objective(store[0]).backward()

    return call


def bare_calls(
    adapter: featviz.ModelAdapter, module: nn.Module, layer: str, unit: str, size: int
) -> dict[str, Callable[[], None]]:
    """The bare contenders of a unit at a render size, by label (a logit's forward is the full one)."""
    prefix = adapter.prefix_tokens or 0
    lyr = None if unit == CLASS else layer
    fns: dict[str, Callable[[], None]] = {}
    for what in ("crops", "1 image"):
        n, side = fed_shape(adapter, unit, size) if what == "crops" else (1, size)
        side = adapter.input_size if adapter.fixed_size else side
        fns[f"{what}|to layer"] = bare_call(module, lyr, prefix, n, side, True)
        if lyr is not None:
            fns[f"{what}|full"] = bare_call(module, lyr, prefix, n, side, False)
    return fns


def measure(key: str, args: argparse.Namespace) -> Iterator[dict[str, object]]:
    """The table's rows of one model, a render size at a time."""
    name, layer = MODELS[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: said in the docstring
        adapter = featviz.load_model(name)
    plain = copy.deepcopy(adapter.module).eval().requires_grad_(False)
    bare_adapter = featviz.load_model(plain, mean=adapter.mean, std=adapter.std, input_size=adapter.input_size)
    small = [] if args.native or adapter.fixed_size or adapter.input_size == 128 else [128]
    sizes = [adapter.input_size, *small]
    units = [f"{layer}:0", CLASS]
    for size in sizes:
        contenders = {unit: bare_calls(adapter, plain, layer, unit, size) for unit in units}
        best: dict[str, float] = {}
        with ExitStack() as stack:
            if args.tuned:
                stack.enter_context(fast_inference(bare_adapter, keep=[layer]))
            for unit in units:  # warm-up: first renders, the fold's one-off check, allocator, each bare call
                featviz.render(adapter, unit, size=size, steps=3, device="cpu", progress=False)
                for fn in contenders[unit].values():
                    fn()
            for _ in range(args.rounds):
                for unit in units:
                    step, bare = interleaved(adapter, unit, size, args.steps, contenders[unit])
                    for label, seconds in [(unit, step), *((f"{unit}|{k}", v) for k, v in bare.items())]:
                        best[label] = min(best.get(label, float("inf")), seconds)
        for unit in units:
            n, side = fed_shape(adapter, unit, size)
            side = adapter.input_size if adapter.fixed_size else side
            yield {
                "model": key,
                "size": size,
                "unit": unit,
                "fed": f"{n} x {side}",
                "render": best[unit],
                **{w: best.get(f"{unit}|{w}", best[f"{unit}|{w.split('|')[0]}|to layer"]) for w in BARE},
            }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--steps", type=int, default=16, help="steps per render")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tuned", action="store_true", help="bare model folded + channels-last, as the loop runs it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--native", action="store_true", help="each model at its input size only (no 128 px row)")
    args = ap.parse_args()
    torch.set_num_threads(min(args.threads, torch.get_num_threads()))
    # Random weights (no download here) can drive deep activations into subnormal floats, which
    # a CPU computes many times slower; trained weights do not. Flushed for render and bare alike.
    torch.set_flush_denormal(True)
    start = time.perf_counter()
    bare = "frozen, folded + channels-last" if args.tuned else "frozen, as users write it"
    print(f"machine: {machine()}; load average at the start {_load()}")
    print(
        f"recipe 'default', 1 image; {args.steps} steps per render, a bare call after each; "
        f"bare model {bare}; medians, best of {args.rounds} renders; ms per step\n"
    )
    head = "| model | px | unit | model sees | render | bare crops to layer | bare crops full |"
    head += " vs crops | bare 1 image to layer | bare 1 image full | vs 1 image |"
    print(head)
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in (row for key in args.models for row in measure(key, args)):
        ms = {k: 1000 * v for k, v in r.items() if isinstance(v, float)}
        vs_crops = ms["render"] / ms["crops|to layer"]
        vs_one = ms["render"] / ms["1 image|to layer"]
        print(
            f"| {r['model']} | {r['size']} | {r['unit']} | {r['fed']} | {ms['render']:.1f} | "
            f"{ms['crops|to layer']:.1f} | {ms['crops|full']:.1f} | {vs_crops:.2f}x {_ok(vs_crops)} | "
            f"{ms['1 image|to layer']:.1f} | {ms['1 image|full']:.1f} | {vs_one:.2f}x {_ok(vs_one)} |",
            flush=True,
        )
    print(f"\n{time.perf_counter() - start:.0f} s in all; load average at the end {_load()}")


def _load() -> str:
    """The machine's 1-minute load average against its cores: another process's share shows."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def _ok(ratio: float) -> str:
    return "ok" if ratio <= 1.25 else "over"


if __name__ == "__main__":
    main()

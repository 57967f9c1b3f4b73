"""Speed benchmarks, one subcommand each; docs/benchmarks.md gives their results with the commands.

    python bench/speed.py batch          per-step cost of the render loop against the bare limit
    python bench/speed.py startup        start-up of a ``featviz render`` command
    python bench/speed.py single         class visualizations one image at a time, featviz against Lucent
    python bench/speed.py throughput     atlas throughput: channels per minute at batch 1, 8 and 32
    python bench/speed.py cost           per-step cost of a recipe by unit depth and image size
    python bench/speed.py arch-cost      per-step cost of a render against the bare model, by architecture
    python bench/speed.py heap           page faults and time per step with and without the held heap
    python bench/speed.py floor          where a step's time goes: its phases, and the bare model by size
    python bench/speed.py truncation     truncated forward: an early channel against a class logit
    python bench/speed.py steps          judge transfer and cost of variants of a recipe

``python bench/speed.py COMMAND --help`` describes each and its options.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from common import CLASSES, HELD_OUT, class_ranks, hold, machine, subcommand, time_interleaved
from torch import nn

import featviz
from featviz.data.photos import load_image
from featviz.io.grid import save_grid
from featviz.models import speed
from featviz.models.fold import fold_batchnorm
from featviz.models.hooks import capture
from featviz.models.speed import fast_inference
from featviz.optvis import transforms as T
from featviz.optvis.callbacks import StepState
from featviz.optvis.param import FourierImage, PixelImage
from featviz.optvis.recipes import Recipe, get_recipe
from featviz.optvis.render import _scores, _tile
from featviz.optvis.spec import resolve

# ---- batch


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


def batch_main(args: argparse.Namespace) -> None:
    """Per-step cost of featviz's render loop against the bare limit, measured in one run.

        python bench/speed.py batch [--batch 1] [--size 224] [--recipe default] [--steps 24] [--rounds 3]

    "featviz" is the real render loop (parameterization, transforms, forward, backward, Adam),
    timed per step with a callback. The limits are a plain forward + input-gradient backward of
    the same model, frozen weights, on the same number of images at the same size as featviz
    feeds it (batch x crops): once as users write it (NCHW, batch norms as they are) and once
    with the two things featviz does to the model during a render (batch norms folded into the
    convolutions, channels-last), so the overhead of the loop itself shows too. Rounds alternate
    between contenders so that drifts of the machine hit all alike.
    """
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


# ---- startup


PROBE = "import sys, runpy; sys.argv = {argv!r}; "
PROBE += "import atexit; atexit.register(lambda: print(sorted(m for m in ('timm', 'torchvision', 'torch._dynamo') "
PROBE += "if m in sys.modules))); runpy.run_module('featviz', run_name='__main__')"


def startup_timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def startup_main(args: argparse.Namespace) -> None:
    """Start-up of a ``featviz render`` command: everything a user waits for besides the steps.

        python bench/speed.py startup                                  # 5 runs
        git worktree add /tmp/before COMMIT
        python bench/speed.py startup --before /tmp/before/src         # interleaved with another checkout
        python bench/speed.py startup --before /tmp/before/src --full --runs 3   # the whole default render

    Times ``featviz render efficientnet_lite0 logits:hen --steps 1 --size 64`` in a fresh
    process (imports, model, one tiny step, the closing prediction, PNG and record), alternating
    with ``python -c "import torch"`` (the floor) and, with ``--before``, the same command run
    from another checkout's ``src`` folder; prints medians and every run. ``--full`` times
    ``featviz render efficientnet_lite0 logits:hen`` with the default recipe instead. Also says which of
    timm, torchvision and ``torch._dynamo`` the command imported.
    """
    out = Path(tempfile.mkdtemp()) / "hen.png"
    argv = ["featviz", "render", "efficientnet_lite0", "logits:hen"]
    argv += [] if args.full else ["--steps", "1", "--size", "64"]
    argv += ["-q", "--overwrite", "--out", str(out)]
    command = [sys.executable, "-m", *argv]
    runs: dict[str, list[float]] = {'python -c "import torch"': [], "render command": []}
    before = None
    if args.before:
        before = dict(os.environ, PYTHONPATH=str(Path(args.before).resolve()))
        runs["render command, --before"] = []
    for _ in range(args.runs):
        runs['python -c "import torch"'].append(startup_timed([sys.executable, "-c", "import torch"]))
        if before is not None:
            runs["render command, --before"].append(startup_timed(command, before))
        runs["render command"].append(startup_timed(command))
    print("| | median | runs |\n|---|---|---|")
    for name, times in runs.items():
        print(f"| {name} | {statistics.median(times):.2f} s | {' '.join(f'{t:.2f}' for t in times)} |")
    probe = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True)
    imported = probe.stdout.strip().splitlines()[-1]
    print(f"imported by the render command, of timm / torchvision / torch._dynamo: {imported}")


# ---- single


BENCH = Path(__file__).resolve().parent
LUCENT = """
import sys, torch
sys.path.insert(0, {bench!r})
import featviz, quality
from featviz.io.images import save_image
adapter = featviz.load_model("efficientnet_lite0")
save_image(quality.lucent(adapter, [{cls}], {seed})[0], {out!r})
"""


def single_timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - start


def judge(images: dict[int, torch.Tensor], judges: dict[str, featviz.ModelAdapter]) -> dict[str, list[int]]:
    out = {}
    classes = list(images)
    batch = torch.stack([images[c] for c in classes])
    for name, model in judges.items():
        out[name] = class_ranks(model, batch, classes)
    return out


def blown(images: dict[int, torch.Tensor]) -> float:
    q = (torch.stack(list(images.values())).clamp(0, 1) * 255).round()
    return float(((q == 0) | (q == 255)).float().mean())


def single_main(args: argparse.Namespace) -> None:
    """Class visualizations one image at a time, as users run them, featviz against Lucent,
    interleaved in one run; Lite1 and Lite2 judge every image.

        python bench/speed.py single                              # 16 held-out classes, featviz + Lucent
        python bench/speed.py single --classes 4 --no-lucent --recipe default

    Per class, in this order: ``featviz render efficientnet_lite0 logits:C --seed 1 --out X.png``
    in a fresh process (start-up, model load, the render and the closing prediction: what a
    user waits for), then Lucent's ``render_vis`` defaults in a fresh process (its 128 px
    Fourier image, standard transforms, Adam 0.05, 512 steps; the same one-image script a Lucent
    user runs), then featviz's ``render()`` called in this process, which loaded the model once
    before the first class (a warm process: one call per class, interleaved with the commands, so
    that all three sample the same minutes of a machine whose speed drifts). Judges: rank of the
    class on EfficientNet-Lite1 and Lite2 (0 = top-1), which never took part in rendering;
    "blown-out" is the share of channel values at 0 or 255.
    """
    classes = HELD_OUT[: args.classes]
    folder = Path(args.keep or tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = {"featviz command": [], "lucent command": [], "featviz warm render()": []}
    images: dict[str, dict[int, torch.Tensor]] = {k: {} for k in times}
    adapter = featviz.load_model("efficientnet_lite0")
    for c in classes:
        out = folder / f"featviz_{c}.png"
        cmd = [sys.executable, "-m", "featviz", "render", "efficientnet_lite0", f"logits:{c}", "--seed", str(args.seed)]
        cmd += ["--recipe", args.recipe, "--out", str(out), "-q", "--overwrite"]
        cmd += ["--size", str(args.size)] if args.size else []
        times["featviz command"].append(single_timed(cmd))
        images["featviz command"][c] = load_image(out)
        if not args.no_lucent:
            out = folder / f"lucent_{c}.png"
            script = LUCENT.format(bench=str(BENCH), cls=c, seed=args.seed, out=str(out))
            times["lucent command"].append(single_timed([sys.executable, "-c", script]))
            images["lucent command"][c] = load_image(out)
        start = time.perf_counter()
        result = featviz.render(
            adapter, f"logits:{c}", recipe=args.recipe, size=args.size, seed=args.seed, progress=False
        )
        times["featviz warm render()"].append(time.perf_counter() - start)
        images["featviz warm render()"][c] = result.images[0]
        print(f"class {c}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items() if v), flush=True)
    judges = {n: featviz.load_model(n) for n in ("efficientnet_lite1", "efficientnet_lite2")}
    size = images["featviz command"][classes[0]].shape[-1]
    print(f"\n{len(classes)} held-out classes, seed {args.seed}, featviz recipe {args.recipe!r} at {size} px")
    print(
        "| contender | s / image (median) | s / image (mean) | Lite1 top-1 | Lite1 mean rank | Lite2 top-1 "
        "| Lite2 mean rank | blown-out |"
    )
    print("|---|---|---|---|---|---|---|---|")
    misses: dict[str, list[str]] = {}
    for name, t in times.items():
        if not t:
            continue
        r = judge(images[name], judges)
        cells = [f"{statistics.median(t):.1f}", f"{statistics.fmean(t):.1f}"]
        for j in ("efficientnet_lite1", "efficientnet_lite2"):
            cells += [f"{100 * sum(x == 0 for x in r[j]) / len(r[j]):.0f}%", f"{statistics.fmean(r[j]):.2f}"]
        print(f"| {name} | " + " | ".join(cells) + f" | {100 * blown(images[name]):.2f}% |")
        pairs = [(j, c, k) for j, ranks in r.items() for c, k in zip(images[name], ranks, strict=True)]
        misses[name] = [f"{j[-5:]} {c}: {k}" for j, c, k in pairs if k]
    for name, missed in misses.items():
        print(f"{name} misses (judge class: rank): {', '.join(missed) or 'none'}")
    if times["lucent command"]:
        lucent = statistics.fmean(times["lucent command"])
        for name in ("featviz command", "featviz warm render()"):
            paired = [f / x for f, x in zip(times[name], times["lucent command"], strict=True)]
            print(
                f"{name}: {statistics.fmean(times[name]) / lucent:.3f}x Lucent's time per image by the means, "
                f"{statistics.median(paired):.3f}x by the median of the per-class ratios"
            )


# ---- throughput


def throughput_main(args: argparse.Namespace) -> None:
    """Atlas throughput: channels rendered per minute at batch 1 vs 8 vs 32, in one run.

        python bench/speed.py throughput [--layer blocks.4] [--channels 32] [--steps 16] [--size 128] [--rounds 2]

    Every batch size renders the same channels of the same layer with the same recipe, steps and
    size through :func:`featviz.tools.atlas` (no files written): batch 1 is one render per channel,
    batch 32 one render for all. Rounds are interleaved (the order rotates each round) so that
    drifts of a shared machine hit every batch size alike; the table gives the median round.
    """
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


# ---- cost


def per_step(adapter: featviz.ModelAdapter, unit: str, size: int, steps: int, rounds: int, recipe: str) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        featviz.render(adapter, unit, recipe=recipe, size=size, steps=steps, progress=False)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def cost_main(args: argparse.Namespace) -> None:
    """Per-step cost of a recipe (the default unless ``--recipe``) by unit depth and image size, one image at a time:
    a 128 px render against a 224 px one, and an early channel against a class logit.

        python bench/speed.py cost                 # 48 steps per render, best of 3
        python bench/speed.py cost --recipe fast

    Each figure is one render's own wall time over its steps (the render loop only: no start-up),
    the best of ``--rounds`` renders, all in one process; the ratios are the targets of the speed
    issue (128 px at most half of 224 px; ``blocks.1`` at most 40% of a class logit per step).
    """
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


# ---- arch-cost


# key -> (name for featviz.load_model, mid-depth layer)
MODELS = {
    "resnet50": ("torchvision:resnet50", "layer3"),
    "convnext_tiny": ("timm:convnext_tiny", "stages.2"),
    "vit_small": ("timm:vit_small_patch16_224", "blocks.6"),
    "lite0": ("efficientnet_lite0", "blocks.4"),
}
CLASS = "logits:hen"
HEN = 8
ARCH_COST_BARE = ("crops|to layer", "crops|full", "1 image|to layer", "1 image|full")


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
                **{w: best.get(f"{unit}|{w}", best[f"{unit}|{w.split('|')[0]}|to layer"]) for w in ARCH_COST_BARE},
            }


def arch_cost_main(args: argparse.Namespace) -> None:
    """Per-step cost of a render against the bare forward + input-gradient backward, by architecture.

        python bench/speed.py arch-cost                                   # 16 steps per render, best of 3 rounds
        python bench/speed.py arch-cost --models resnet50 lite0 --steps 24 --rounds 5
        python bench/speed.py arch-cost --tuned                           # bare model folded + channels-last too

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


# ---- heap


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


def heap_main(args: argparse.Namespace) -> None:
    """Page faults and time per step with and without the held heap (featviz.models.speed.held_heap).

        python bench/speed.py heap                      # default and fast at 224 px, one image; 8 images batched
        python bench/speed.py heap --steps 96 --rounds 5
        python bench/speed.py heap --steps 64 --only "microscope 128, 8 units"    # a Microscope build's render

    Each render runs in a fresh process (glibc's malloc adapts its thresholds to what a process
    has freed, and the held heap leaves them set, so one process cannot measure both), the two
    settings interleaved round by round (off, held, off, held...), so a machine that slows down
    for a while slows both. Per setting and case: the median over rounds of wall time, user and
    system CPU time per step (``getrusage`` around the render, after a 4-step warm-up render;
    two threads, so CPU time is up to twice the wall time) and minor page faults per step. "off"
    makes ``held_heap`` find no glibc, which is what a render did before the heap was held.
    """
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
                cmd = [sys.executable, __file__, "heap", "--steps", str(args.steps), "--child", name, str(int(held))]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                found[name, held].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{args.steps} steps per render, median of {args.rounds} interleaved rounds (ms per step)")
    print(f"{'case':24s} {'heap':5s} {'wall':>7s} {'user':>7s} {'sys':>6s} {'faults':>7s}")
    for name in args.only:
        for held in (False, True):
            wall, user, sys_, faults = (statistics.median(x) for x in zip(*found[name, held], strict=True))
            print(f"{name:24s} {'held' if held else 'off':5s} {wall:7.1f} {user:7.1f} {sys_:6.1f} {faults:7.0f}")


# ---- floor


RENDERS = [("default", 224, "logits:hen"), ("default", 128, "logits:hen"), ("fast", 224, "logits:hen")]
RENDERS += [("fast", 224, "blocks.1:0"), ("default", 224, "blocks.1:0")]
FLOOR_BARE = [(4, 32), (4, 64), (4, 112), (4, 160), (1, 32), (1, 128), (1, 224), (1, 248)]
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
        (b, s): torch.rand(b, 3, s, s).contiguous(memory_format=torch.channels_last).requires_grad_()
        for b, s in FLOOR_BARE
    }

    def fwd_bwd(x: torch.Tensor) -> None:
        x.grad = None
        module(x)[:, 8].sum().backward()

    with fast_inference(adapter):
        times = time_interleaved({f"{b}x{s}": (lambda x=x: fwd_bwd(x)) for (b, s), x in inputs.items()}, repeats)
    return {key: times[f"{key[0]}x{key[1]}"] for key in inputs}


def floor_main(args: argparse.Namespace) -> None:
    """Where a step's time goes, one image at a time: the render step split into its phases, and
    the bare model's forward and input-gradient backward by input size.

        python bench/speed.py floor                      # default 224 / 128 px, fast 224 px, blocks.1:0 in both
        python bench/speed.py floor --steps 80 --rounds 5

    Phases (median per step over ``--steps`` steps after 10 of warm-up, one process): the
    image (Fourier parameterization), the transforms (crops or the fused resampling), the
    forward (normalization, model up to the deepest hooked layer, objective), the backward
    (model, transforms and image) and Adam with its schedule. The bare rows time the folded,
    channels-last EfficientNet-Lite0 with frozen weights (what the loop runs inside
    ``fast_inference``) on random inputs, interleaved round by round: what no change to the
    loop can go below.
    """
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


# ---- truncation


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


def truncation_main(args: argparse.Namespace) -> None:
    """Truncated forward: per-step cost of an early channel vs a class logit, in one run.

        python bench/speed.py truncation [--size 224] [--steps 20]

    Prints, side by side: featviz's per-step time for ``blocks.1:0`` and ``logits:hen`` (Fourier
    image, jitter/scale/rotate, Adam; batch 1), the same channel with truncation switched off, and the bare
    forward + input-gradient backward through ``conv_stem..blocks.1`` alone vs the whole network.
    """
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


# ---- steps


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


def steps_main(args: argparse.Namespace) -> None:
    """Fewer or cheaper steps: judge transfer and cost of variants of a recipe.

        python bench/speed.py steps s192k2 steps=192 k=2                      # one variant of the default
        python bench/speed.py steps a steps=192 k=2 -- b steps=160 k=2 lr=0.06  # several, '--' between
        python bench/speed.py steps fast base=fast classes=tuned seed=0        # a recipe as it is

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
    time is measured by ``bench/speed.py single``.
    """
    groups: list[list[str]] = [[]]
    for arg in args.variants:
        if arg == "--":
            groups.append([])
        else:
            groups[-1].append(arg)
    if not groups[0] or groups[0][0].startswith("-"):
        raise SystemExit(inspect.getdoc(steps_main))
    adapter = featviz.load_model()
    judges = {n: featviz.load_model(n) for n in ("efficientnet_lite1", "efficientnet_lite2")}
    for name, *changes in groups:
        kv = dict(c.split("=", 1) for c in changes)
        seed = int(kv.pop("seed", 1))
        size = int(kv.pop("size", 0)) or None  # None: the base recipe's size, else the model's (224)
        per = 1 if kv.pop("single", "0") == "1" else 8
        keep = kv.pop("keep", None)
        which = kv.pop("classes", "held-out")
        classes = {"tuned": CLASSES, "held-out": HELD_OUT}.get(which) or [int(c) for c in which.split(",")]
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
            ranks = class_ranks(judge, x, classes)
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


# ---- the command line


#: The subcommands that time featviz as the ``featviz`` command runs it, the heap held first
#: (:func:`common.hold`); the others leave glibc's malloc as a library user's process has it.
HOLDS_HEAP = {"batch", "throughput", "arch-cost", "floor", "truncation"}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = subcommand(sub, "batch", batch_main, "per-step cost of the render loop against the bare limit")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--recipe", default="default")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--rounds", type=int, default=3)

    p = subcommand(sub, "startup", startup_main, "start-up of a featviz render command")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--before", help="another checkout's src folder, run interleaved")
    p.add_argument("--full", action="store_true", help="the default recipe's whole render (512 steps, 224 px)")

    p = subcommand(sub, "single", single_main, "class visualizations one image at a time, featviz against Lucent")
    p.add_argument("--classes", type=int, default=16)
    p.add_argument("--recipe", default="default")
    p.add_argument("--size", type=int, help="image size (default: the recipe's, else 224)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-lucent", action="store_true")
    p.add_argument("--keep", help="keep the images in this folder")

    p = subcommand(sub, "throughput", throughput_main, "atlas throughput: channels per minute by batch size")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--layer", default="blocks.4")
    p.add_argument("--channels", type=int, default=32, help="channels 0..N-1, rendered at every batch size")
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--recipe", default="default")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2)

    p = subcommand(sub, "cost", cost_main, "per-step cost of a recipe by unit depth and image size")
    p.add_argument("--steps", type=int, default=48)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--recipe", default="default")

    p = subcommand(
        sub, "arch-cost", arch_cost_main, "per-step cost of a render against the bare model, by architecture"
    )
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--steps", type=int, default=16, help="steps per render")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tuned", action="store_true", help="bare model folded + channels-last, as the loop runs it")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--native", action="store_true", help="each model at its input size only (no 128 px row)")

    p = subcommand(sub, "heap", heap_main, "page faults and time per step with and without the held heap")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--child", nargs=2, metavar=("CASE", "HELD"), help=argparse.SUPPRESS)

    p = subcommand(sub, "floor", floor_main, "where a step's time goes: its phases, and the bare model by input size")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds of the bare model")

    p = subcommand(sub, "truncation", truncation_main, "truncated forward: an early channel against a class logit")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=40)

    p = subcommand(sub, "steps", steps_main, "judge transfer and cost of variants of a recipe")
    p.add_argument("variants", nargs=argparse.REMAINDER, help="NAME KEY=VALUE ... [-- NAME KEY=VALUE ...]")
    return ap


def main() -> None:
    args = parser().parse_args()
    if args.command in HOLDS_HEAP:
        hold()
    args.run(args)


if __name__ == "__main__":
    main()

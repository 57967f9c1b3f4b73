"""Quality benchmarks: what the pictures look like and what other models see in them, one
subcommand each; docs/benchmarks.md gives their results with the commands.

    python bench/quality.py classes      class visualizations, featviz vs peers: judge transfer, colour, cost
    python bench/quality.py picture      the eight-class picture, one row per recipe
    python bench/quality.py drift        how much the same step's time moves on this machine, and why
    python bench/quality.py speckle      pixel-level speckle: the share of spectral energy in the top octave
    python bench/quality.py redirect     the README's picture of dead units, without and with ReLU redirection
    python bench/quality.py reproduce    a run record rendered again with 1 and 2 torch threads

``python bench/quality.py COMMAND --help`` describes each and its options. The peers that
``classes`` (and ``bench/speed.py single``) run, as their users run them, are the functions
:func:`lucent`, :func:`classic` and :func:`horama` here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import CLASSES, HELD_OUT, class_ranks, hold, machine, subcommand
from PIL import Image, ImageDraw
from torch.profiler import ProfilerActivity, profile

import featviz
from featviz.data.photos import natural_images, resize
from featviz.io.grid import save_grid
from featviz.io.images import to_uint8
from featviz.models import ModelAdapter
from featviz.models.speed import fast_inference, held_heap

# ---- classes


Renderer = Callable[[featviz.ModelAdapter, list[int], int], torch.Tensor]


def featviz_recipe(recipe: str, batch: int = 8, **overrides: object) -> Renderer:
    """featviz renders ``batch`` classes at once (one unit per image, one forward per step)."""

    def run(adapter: featviz.ModelAdapter, classes: list[int], seed: int) -> torch.Tensor:
        out = []
        for i in range(0, len(classes), batch):
            units = [f"logits:{c}" for c in classes[i : i + batch]]
            out.append(featviz.render(adapter, units, recipe=recipe, seed=seed, progress=False, **overrides).images)
        return torch.cat(out)

    return run


CONTENDERS: dict[str, tuple[str, Renderer]] = {
    "featviz default 224": ("featviz", featviz_recipe("default")),
    "featviz default 128": ("featviz", featviz_recipe("default", size=128)),
    "featviz default 448": ("featviz", featviz_recipe("default", size=448)),
    "featviz fast 224": ("featviz", featviz_recipe("fast")),
    "featviz fast 128": ("featviz", featviz_recipe("fast", size=128)),
    "featviz large 448": ("featviz", featviz_recipe("large")),
    "lucent render_vis defaults (128 px)": ("lucent", lambda a, c, s: lucent(a, c, s)),
    "classic tutorial loop 224": ("classic", lambda a, c, s: classic(a, c, s)),
    "horama fourier 512": ("horama", lambda a, c, s: horama(a, c, s, "fourier", steps=256)),
    "horama maco 512": ("horama", lambda a, c, s: horama(a, c, s, "maco", steps=256)),
}


def blown_out(images: torch.Tensor) -> list[float]:
    """Share of channel values at 0 or 255 once quantized, per image."""
    q = (images.clamp(0, 1) * 255).round()
    return ((q == 0) | (q == 255)).float().flatten(1).mean(1).tolist()


def summary(r: list[int]) -> dict[str, float]:
    return {
        "top1": sum(x == 0 for x in r) / len(r),
        "top5": sum(x < 5 for x in r) / len(r),
        "median_rank": statistics.median(r),
        "mean_rank": statistics.fmean(r),
    }


def measure(
    name: str,
    renderer: Renderer,
    classes: list[int],
    seed: int,
    judges: dict,
    natural_best: torch.Tensor,
    out: Path,
    generator: str = "efficientnet_lite0",
) -> dict:
    adapter = featviz.load_model(generator)  # fresh: peers may leave hooks behind
    wall, cpu = time.perf_counter(), time.process_time()
    images = renderer(adapter, classes, seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    gen = featviz.load_model(generator)
    with torch.no_grad():
        own = gen(resize(images, gen.input_size))[torch.arange(len(classes)), torch.tensor(classes)]
    row = Image.new("RGB", (len(classes) * 132, 128), "white")
    for i, img in enumerate(resize(images, 128)):
        row.paste(Image.fromarray(to_uint8(img)), (i * 132, 0))
    row.save(out / f"{name.replace(' ', '_').replace('(', '').replace(')', '')}.png")
    result = {
        "name": name,
        "generator": generator,
        "classes": classes,
        "seed": seed,
        "image_size": images.shape[-1],
        "seconds_per_image": wall / len(classes),
        "cpu_seconds_per_image": cpu / len(classes),
        "blown_out": blown_out(images),
        "activation_multiple": (own / natural_best).tolist(),
        "ranks": {j: class_ranks(judge, images, classes) for j, judge in judges.items()},
    }
    result["summary"] = {j: summary(r) for j, r in result["ranks"].items()}
    return result


def table(results: dict[str, dict], natural_blown: list[float]) -> str:
    first = next(iter(results.values()), {})
    if first.get("generator", "efficientnet_lite0") != "efficientnet_lite0":
        return judged_table(results)
    lines = [
        "| contender | px | s / image | CPU s / image | Lite1 top-1 | Lite1 mean rank | Lite2 top-1 | "
        "Lite2 top-5 | Lite2 median rank | Lite2 mean rank | blown-out (median) | activation x best photo |",
        "|---" * 12 + "|",
    ]
    for r in results.values():
        s1, s2 = r["summary"]["efficientnet_lite1"], r["summary"]["efficientnet_lite2"]
        lines.append(
            f"| {r['name']} ({len(r['classes'])} classes) | {r['image_size']} | {r['seconds_per_image']:.1f} | "
            f"{r['cpu_seconds_per_image']:.1f} | {s1['top1']:.0%} | {s1['mean_rank']:.2f} | {s2['top1']:.0%} | "
            f"{s2['top5']:.0%} | {s2['median_rank']:.0f} | {s2['mean_rank']:.2f} | "
            f"{statistics.median(r['blown_out']):.2%} | {statistics.median(r['activation_multiple']):.1f} |"
        )
    lines.append(
        f"| natural photos ({len(natural_blown)}) | | | | | | | | | | {statistics.median(natural_blown):.2%} "
        f"(max {max(natural_blown):.1%}) | 1.0 |"
    )
    return "\n".join(lines)


def judged_table(results: dict[str, dict]) -> str:
    """The table of renders made on another model than Lite0, one column pair per judge."""
    judges = list(next(iter(results.values()))["ranks"])
    head = " | ".join(f"{j} top-1 | {j} top-5 | {j} mean rank" for j in judges)
    lines = [f"| generator | contender | px | s / image | {head} | activation x best photo |"]
    lines.append("|---" * (5 + 3 * len(judges)) + "|")
    for r in results.values():
        cells = " | ".join(
            f"{r['summary'][j]['top1']:.0%} | {r['summary'][j]['top5']:.0%} | {r['summary'][j]['mean_rank']:.2f}"
            for j in judges
        )
        lines.append(
            f"| {r['generator']} | {r['name']} ({len(r['classes'])} classes) | {r['image_size']} | "
            f"{r['seconds_per_image']:.1f} | {cells} | {statistics.median(r['activation_multiple']):.1f} |"
        )
    return "\n".join(lines)


def classes_main(args: argparse.Namespace) -> None:
    """Judge transfer, colour, activation and cost of class visualizations, featviz vs peers.

        python bench/quality.py classes --out bench/results/quality   # all contenders, one run
        python bench/quality.py classes --out bench/results/held_out --class-set held-out --only featviz
        python bench/quality.py classes --out bench/results/on_lite1 --generator efficientnet_lite1 --classes 8 \\
            --only "featviz default 224" "featviz fast 224" "featviz large"

    Every contender renders class-logit visualizations on EfficientNet-Lite0 for the same
    classes and seed; EfficientNet-Lite1 and Lite2, which never took part in rendering, judge
    them (rank of the target class: 0 = top-1). ``--generator`` renders on Lite1 or Lite2 instead,
    judged by the other two Lite models: the recipes are not one model's. Also reported: the share of channel values
    pinned at 0 or 255, the generating model's target logit as a multiple of the best natural
    photo's, and seconds per image (wall and process CPU). Results go to OUT/results.json and
    one PNG row per contender, so a rerun skips contenders already measured (``--redo`` to force).
    """
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.redo:  # measure again what --only selects (everything without it)
        results = {k: v for k, v in results.items() if args.only and not any(o in k for o in args.only)}
    photos = torch.stack([resize(p, 224) for p in natural_images().values()])
    if args.table:
        print(table(results, blown_out(photos)))
        return
    lites = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    judges = {n: featviz.load_model(n) for n in lites if n != args.generator}
    gen = featviz.load_model(args.generator)
    with torch.no_grad():
        natural_logits = gen(resize(photos, gen.input_size))
    for name, (kind, renderer) in CONTENDERS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        if name in results:
            continue
        pool = HELD_OUT if args.class_set == "held-out" else CLASSES
        classes = pool[: args.peer_classes if kind == "horama" else args.classes]
        natural_best = natural_logits[:, classes].max(0).values
        results[name] = measure(name, renderer, classes, args.seed, judges, natural_best, out, args.generator)
        path.write_text(json.dumps(results, indent=1))  # each contender is kept as soon as it is done
        print(table({name: results[name]}, blown_out(photos)).splitlines()[-2], flush=True)
    print(f"\nmachine: {machine()}\n")
    print(table(results, blown_out(photos)))


# ---- peers: no subcommand; ``classes`` and ``bench/speed.py single`` run them


# Peer feature-visualization loops, run as their users run them. Each peer takes the generating
# adapter, a list of class indices and a seed, and returns images in [0, 1] as ``[N, 3, H, W]``.
# Peers are installed by the ``bench`` extra; none of their code is part of featviz.


def _kornia_shim() -> None:
    """torch-lucent 0.1.8 pins kornia<=0.4.1, which no longer runs on current torch; the
    two functions it calls by their old top-level names moved to kornia.geometry."""
    import kornia
    from kornia.geometry import transform as kt

    for name in ("get_rotation_matrix2d", "warp_affine"):
        if not hasattr(kornia, name):
            setattr(kornia, name, getattr(kt, name))


def lucent(
    adapter: ModelAdapter, classes: list[int], seed: int, size: int = 128, steps: int = 512, freeze: bool = False
) -> torch.Tensor:
    """Lucent's ``render_vis`` with its defaults: Fourier + decorrelated 128 px image,
    standard transforms, Adam 0.05, 512 steps, upsampled to 224; weights not frozen."""
    _kornia_shim()
    from lucent.optvis import param, render, transform

    model = adapter.module.eval()
    flags = [p.requires_grad for p in model.parameters()]
    if freeze:
        model.requires_grad_(False)
    norm = adapter.normalize  # the model's own preprocessing, as Lucent's preprocess=False asks
    out = []
    try:
        for cls in classes:
            torch.manual_seed(seed)
            np.random.seed(seed)
            images = render.render_vis(
                model,
                f"classifier:{cls}",
                param_f=lambda: param.image(size),
                transforms=[*transform.standard_transforms, norm],
                thresholds=(steps,),
                preprocess=False,
                progress=False,
                show_image=False,
            )
            out.append(torch.from_numpy(images[-1]).permute(0, 3, 1, 2))
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return torch.cat(out).float()


def classic(adapter: ModelAdapter, classes: list[int], seed: int, size: int = 224, steps: int = 256) -> torch.Tensor:
    """The classic tutorial's loop: SGD on raw pixels from grey, torchvision ColorJitter (no
    hue: it fails on images that require grad) + RandomAffine, L2 decay, blur every 10 steps."""
    from torchvision import transforms as T
    from torchvision.transforms.functional import gaussian_blur

    model = adapter.module.eval().requires_grad_(False)
    aug = T.Compose([T.ColorJitter(0.1, 0.1, 0.1), T.RandomAffine(10, translate=(0.04, 0.04), scale=(0.9, 1.1))])
    out = []
    for cls in classes:
        torch.manual_seed(seed)
        x = (0.5 + 0.01 * (torch.rand(1, 3, size, size) - 0.5)).requires_grad_(True)
        opt = torch.optim.SGD([x], lr=1.5, weight_decay=0.05)
        for step in range(steps):
            opt.zero_grad()
            loss = -model(adapter.normalize(aug(x)))[0, cls]
            loss.backward()
            x.grad /= x.grad.abs().mean() + 1e-8  # the tutorial's normalized gradient step
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
                if (step + 1) % 10 == 0:
                    x.copy_(gaussian_blur(x, 3, 0.5))
        out.append(x.detach())
    model.requires_grad_(True)
    return torch.cat(out)


@contextlib.contextmanager
def _in_dir_with_spectrum(spectrum: torch.Tensor) -> Iterator[None]:
    """Horama reads its MACO spectrum from ./spectrum_decorrelated.npy (a download
    otherwise): give it featviz's own, computed from photos shipped with scikit-image."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "spectrum_decorrelated.npy"), spectrum.numpy())
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def horama(
    adapter: ModelAdapter,
    classes: list[int],
    seed: int,
    method: str = "fourier",
    size: int = 512,
    steps: int = 512,
    crops: int = 4,
) -> torch.Tensor:
    """Horama's ``fourier`` or ``maco`` (lr 1.0, NAdam, small random crops of a large canvas),
    frozen weights; its output lives in the model's input range, mapped back to [0, 1]."""
    import horama

    from featviz.optvis.spec import shipped_spectrum

    model = adapter.module.eval().requires_grad_(False)
    lo, hi = -2.5, 2.5
    out = []
    with _in_dir_with_spectrum(shipped_spectrum(256, 256)):
        for cls in classes:
            torch.manual_seed(seed)
            fn = getattr(horama, method)
            image, _ = fn(
                lambda x, c=cls: model(x)[:, c].mean(),
                total_steps=steps,
                image_size=size,
                crops_per_iteration=crops,
                device="cpu",
                values_range=(lo, hi),
            )
            # Model input space -> [0, 1] through the model's own normalization (mean/std 0.5).
            mean = torch.tensor(adapter.mean).view(3, 1, 1)
            std = torch.tensor(adapter.std).view(3, 1, 1)
            out.append((image.detach() * std + mean).clamp(0, 1)[None])
    model.requires_grad_(True)
    return torch.cat(out)


def resize_to(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


# ---- picture


PICTURE_CLASSES = {
    8: "hen",
    144: "pelican",
    288: "leopard",
    587: "hammer",
    605: "iPod",
    800: "slot",
    964: "potpie",
    983: "scuba diver",
}
RECIPES = ["naive", "gray", "robust", "l2", "blur", "lucid", "lucent", "maco", "default", "fast"]


def picture_main(args: argparse.Namespace) -> None:
    """The eight-class picture: one row per recipe, from the classic tutorial's stages to
    featviz's own recipes, so that a reader sees what each improvement buys.

        python bench/quality.py picture --out docs/images/recipes.png
    """
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = featviz.load_model("efficientnet_lite0")
    units = [f"logits:{c}" for c in PICTURE_CLASSES]
    t, label_w, pad = args.tile, 70, 4
    shape = (label_w + len(units) * (t + pad), 18 + len(RECIPES) * (t + pad))
    if args.rows:  # keep the other rows as they are
        sheet = Image.open(args.out).convert("RGB")
        if sheet.size != shape:
            raise SystemExit(f"{args.out} is {sheet.size}, expected {shape} for --tile {t}")
    else:
        sheet = Image.new("RGB", shape, "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(PICTURE_CLASSES.values()):
        draw.text((label_w + j * (t + pad) + 4, 3), name, fill="black")
    for i, recipe in enumerate(RECIPES):
        if args.rows and recipe not in args.rows:
            continue
        start = time.perf_counter()
        result = featviz.render(model, units, recipe=recipe, seed=args.seed, size=args.size, progress=False)
        top1 = [p[0][0] for p in model.predict(result.images, k=1)]
        print(
            f"{recipe}: {time.perf_counter() - start:.0f} s for 8 images; Lite0 top-1 hits "
            f"{sum(a == b for a, b in zip(top1, PICTURE_CLASSES, strict=True))}/8",
            flush=True,
        )
        y = 18 + i * (t + pad)
        draw.rectangle((0, y, shape[0], y + t), fill="white")
        draw.text((4, y + t // 2 - 6), recipe, fill="black")
        for j, img in enumerate(resize(result.images, t)):
            sheet.paste(Image.fromarray(to_uint8(img)), (label_w + j * (t + pad), y))
        sheet.save(args.out)
    print(f"machine: {machine()}; wrote {args.out}")


# ---- drift


SHAPE = [1, 96, 124, 124]


def windows(step: Callable[[], object], count: int, passes: int) -> list[tuple[float, int, int]]:
    """(median ms, minor page faults, involuntary context switches) per window."""
    for _ in range(10):
        step()
    out = []
    for _ in range(count):
        before, times = resource.getrusage(resource.RUSAGE_SELF), []
        for _ in range(passes):
            start = time.perf_counter()
            step()
            times.append(1000 * (time.perf_counter() - start))
        after = resource.getrusage(resource.RUSAGE_SELF)
        out.append((statistics.median(times), after.ru_minflt - before.ru_minflt, after.ru_nivcsw - before.ru_nivcsw))
    return out


def relu6_in_model(fwd_bwd: Callable[[], None]) -> dict[str, float]:
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(10):
            fwd_bwd()
    found: dict[str, list[float]] = {"aten::clamp": [], "aten::hardtanh_backward": []}
    for e in prof.events():
        if e.name in found and e.input_shapes and list(e.input_shapes[0]) == SHAPE:
            found[e.name].append(e.self_cpu_time_total / 1000)
    return {k: statistics.median(v) for k, v in found.items()}


def relu6_alone(repeats: int = 200) -> dict[str, float]:
    x = torch.rand(SHAPE).contiguous(memory_format=torch.channels_last) * 8 - 1
    grad = torch.rand_like(x)
    ops = {
        "aten::clamp": lambda: torch.nn.functional.hardtanh(x, 0.0, 6.0),
        "aten::hardtanh_backward": lambda: torch.ops.aten.hardtanh_backward(grad, x, 0.0, 6.0),
    }
    out = {}
    with held_heap():
        for name, op in ops.items():
            out[name] = statistics.median(ms for ms, _, _ in windows(op, 1, repeats))
    return out


def drift_main(args: argparse.Namespace) -> None:
    """How much the same step's time moves on this machine, and why: the bare model's forward and
    backward repeated in windows, against a matrix product that only computes.

        python bench/quality.py drift                       # 24 windows of 50 passes, 1 x 248 px, two threads
        python bench/quality.py drift --threads 1 --windows 12

    Three parts, one process:

    1. The folded, channels-last EfficientNet-Lite0 (what a render runs inside
       ``fast_inference``), forward and input-gradient backward on one 248 px view (what ``fast``
       shows the model for a 224 px image), ``--windows`` windows of ``--passes`` passes: the
       median of each window, and the page faults and involuntary context switches in it.
    2. A 1024 x 1024 matrix product (compute-bound, its operands in cache) in as many windows.
    3. The ReLU6 of the first expanded block (96 x 124 x 124) forward and backward, timed by
       PyTorch's profiler inside the model's pass and alone in a loop on a tensor of that shape.
    """
    torch.set_num_threads(args.threads)
    print(machine())
    adapter = featviz.load_model("efficientnet_lite0")
    x = torch.rand(1, 3, 248, 248).contiguous(memory_format=torch.channels_last).requires_grad_()

    def fwd_bwd() -> None:
        x.grad = None
        adapter.module(x)[:, 8].sum().backward()

    with fast_inference(adapter):
        model = windows(fwd_bwd, args.windows, args.passes)
        inside = relu6_in_model(fwd_bwd)
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    product = torch.empty(1024, 1024)
    mm = windows(lambda: torch.mm(a, b, out=product), args.windows, args.passes)
    print(f"\n{args.threads} thread(s); median ms per window of {args.passes} passes, in order")
    print("| window | Lite0 fwd+bwd, 1 x 248 px | page faults | involuntary switches | 1024^2 matmul |")
    print("|---|---|---|---|---|")
    for i, ((ms, faults, switches), (mm_ms, _, _)) in enumerate(zip(model, mm, strict=True)):
        print(f"| {i} | {ms:.1f} | {faults} | {switches} | {mm_ms:.2f} |")
    for name, rows in (("Lite0", model), ("matmul", mm)):
        medians = [r[0] for r in rows]
        low, high = min(medians), max(medians)
        print(f"{name}: windows from {low:.2f} to {high:.2f} ms ({100 * (high / low - 1):.0f}% apart)")
    alone = relu6_alone()
    print(f"\nReLU6 on {SHAPE} (channels-last), ms per call:")
    for name in inside:
        print(f"  {name}: {inside[name]:.2f} inside the model's pass, {alone[name]:.2f} alone")


# ---- speckle


def top_octave_share(image: torch.Tensor) -> float:
    """Energy above half the Nyquist frequency over all energy but DC, of ``[3, H, W]``."""
    grey = image.float().mean(0)
    grey = grey - grey.mean()
    power = torch.fft.rfft2(grey).abs() ** 2
    fy = torch.fft.fftfreq(grey.shape[0]).abs()[:, None]
    fx = torch.fft.rfftfreq(grey.shape[1])[None, :]
    radius = torch.maximum(fy, fx)  # 0.5 is Nyquist
    return float(power[radius > 0.25].sum() / power.sum().clamp(min=1e-12))


def speckle_main(args: argparse.Namespace) -> None:
    """Pixel-level speckle, measured: the share of an image's spectral energy in the top octave
    (spatial frequencies above half the Nyquist limit, on the grey image, DC removed), for
    rendered images against the photos shipped with scikit-image and scikit-learn resized to the
    same size.

        python bench/quality.py speckle docs/images/hen_448.png docs/images/hen_448_large.png
    """
    rendered = {path: featviz.load_image(path) for path in args.images}
    size = next(iter(rendered.values())).shape[-1]
    photos = [top_octave_share(resize(p, size)) for p in natural_images().values()]
    median = sorted(photos)[len(photos) // 2]
    print(f"photos at {size} px: top-octave share {min(photos):.4f} .. {max(photos):.4f} (median {median:.4f})")
    for path, image in rendered.items():
        print(f"{path}: {top_octave_share(image):.4f}")


# ---- redirect


UNITS = ["blocks.4.2.bn2:0", "blocks.3.2.bn2:1", "blocks.5.0.bn1:2"]


def redirect_main(args: argparse.Namespace) -> None:
    """The README's picture of dead units: each rendered without and with ReLU gradients
    redirected for the first 16 steps (64 steps, 128 px, seed 0, the default recipe).

        python bench/quality.py redirect --out docs/images/redirect_relu.png
    """
    model = featviz.load_model("efficientnet_lite0")
    images = []
    for unit in UNITS:
        for redirect in (0, 16):
            start = time.perf_counter()
            result = featviz.render(model, unit, size=128, steps=64, redirect_relu=redirect, seed=0, progress=False)
            image = result.images[0]
            print(
                f"{unit} redirect_relu={redirect}: {time.perf_counter() - start:.1f} s, "
                f"final {result.final[0]:.3f}, pixel std {image.std():.3f}",
                flush=True,
            )
            images.append(image)
    save_grid(images, args.out, columns=len(images), pad=4)  # in README order: each unit off, on
    print(f"wrote {args.out}")


# ---- reproduce


def reproduce_main(args: argparse.Namespace) -> None:
    """What holds when a run record is rendered again elsewhere: here, with 1 and 2 torch threads.

    The same record on the same machine and thread count gives the same pixels (the tests check
    it byte for byte). Another thread count changes the order of floating-point sums inside the
    convolutions, and hundreds of optimization steps amplify the rounding differences: the pixels
    differ, the picture should not. This prints, for each thread count, the final score, the share
    of pixels that differ from the first run, and what Lite0, Lite1 and Lite2 see.

        python bench/quality.py reproduce --record docs/images/hen.json
    """
    record = featviz.load_record(args.record)
    names = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    judges = {name: featviz.load_model(name) for name in names}
    rows, first = [], None
    for n in args.threads:
        torch.set_num_threads(n)
        start = time.perf_counter()
        result = featviz.replay(record, progress=False)
        seconds = time.perf_counter() - start
        pixels = (result.images * 255).round()
        first = pixels if first is None else first
        differ = (pixels != first).any(1).float().mean().item()
        seen = {k: j.predict(result.images, k=1)[0][0] for k, j in judges.items()}
        mad = (pixels - first).abs().mean().item()
        rows.append((n, float(result.final[0]), differ, mad, seen, seconds))
    base = rows[0][1]
    header = ["torch threads", "final score", "vs first", "pixels differing", "mean abs diff (0-255)"]
    print("| " + " | ".join(header + ["Lite0", "Lite1", "Lite2", "s"]) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, score, differ, mad, seen, seconds in rows:
        tops = " | ".join(f"{s[1]} ({s[2]:.2f})" for s in seen.values())
        change = f"{100 * (score / base - 1):+.1f}%"
        print(f"| {n} | {score:.3f} | {change} | {100 * differ:.1f}% | {mad:.1f} | {tops} | {seconds:.1f} |")


# ---- the command line


#: The subcommands that time featviz as the ``featviz`` command runs it, the heap held first
#: (:func:`common.hold`); the others leave glibc's malloc as a library user's process has it.
HOLDS_HEAP = {"classes", "picture", "drift"}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = subcommand(
        sub, "classes", classes_main, "class visualizations, featviz vs peers: judge transfer, colour, activation, cost"
    )
    p.add_argument("--out", default="bench/results/quality")
    p.add_argument("--classes", type=int, default=16, help="how many of the 16 classes")
    p.add_argument(
        "--class-set", choices=("main", "held-out"), default="main", help="held-out: 16 classes no recipe was tuned on"
    )
    p.add_argument("--peer-classes", type=int, default=4, help="classes for the slow Horama peers")
    p.add_argument("--only", nargs="*", help="run only these contenders (substring match)")
    p.add_argument("--redo", action="store_true", help="measure again the contenders --only selects")
    p.add_argument("--table", action="store_true", help="only print the table of the results kept in OUT")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generator", default="efficientnet_lite0", help="the Lite model that renders; the others judge")

    p = subcommand(sub, "picture", picture_main, "the eight-class picture, one row per recipe")
    p.add_argument("--out", default="docs/images/recipes.png")
    p.add_argument("--tile", type=int, default=160, help="tile size in the picture")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, help="render size (the model's 224 when left out)")
    p.add_argument("--rows", nargs="*", help="render only these recipes' rows into the existing picture")

    p = subcommand(sub, "drift", drift_main, "how much the same step's time moves on this machine, and why")
    p.add_argument("--windows", type=int, default=24)
    p.add_argument("--passes", type=int, default=50)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())

    p = subcommand(sub, "speckle", speckle_main, "pixel-level speckle: the share of spectral energy in the top octave")
    p.add_argument("images", nargs="+")

    p = subcommand(
        sub, "redirect", redirect_main, "the README's picture of dead units, without and with ReLU redirection"
    )
    p.add_argument("--out", default="docs/images/redirect_relu.png")

    p = subcommand(sub, "reproduce", reproduce_main, "a run record rendered again with 1 and 2 torch threads")
    p.add_argument("--record", default="docs/images/hen.json", help="a render's JSON record")
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    return ap


def main() -> None:
    args = parser().parse_args()
    if args.command in HOLDS_HEAP:
        hold()
    args.run(args)


if __name__ == "__main__":
    main()

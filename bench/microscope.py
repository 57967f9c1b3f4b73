"""Microscope and report benchmarks, one subcommand each; docs/benchmarks.md gives their results
with the commands.

    python bench/microscope.py build          the dataset-examples pass against a bare forward; a build's units per hour
    python bench/microscope.py site           how fast a layer page with many units loads in headless Chromium
    python bench/microscope.py explain        what a whole default ``featviz explain`` costs, one command per photo
    python bench/microscope.py serve-ctrl-c   Ctrl-C on ``featviz microscope serve`` while it renders a unit
    python bench/microscope.py passes         the concept and activation atlas data passes against the image count
    python bench/microscope.py law            a build's time against units, steps, size and images; predictions
    python bench/microscope.py trust          Microscope recipes against the earlier 2 x 64 on 48 fixed units
    python bench/microscope.py diversity      the build's diversity sets at fewer steps, on the same units

``python bench/microscope.py COMMAND --help`` describes each and its options. ``site`` and
``serve-ctrl-c`` use the tests' helpers (tests/browser.py, tests/test_serve_robust.py): they
need the ``test`` extra, and Debian's chromium for ``site``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import subcommand

import featviz
from featviz.analysis.examples import examples
from featviz.data.sources import read, shipped_items
from featviz.microscope import build
from featviz.microscope.build import DIVERSITY_SHARE

#: The tests' folder, whose helpers ``site`` (a browser) and ``serve-ctrl-c`` (a served Microscope) import.
TESTS = Path(__file__).resolve().parents[1] / "tests"


# ---- build


def bare_forward(adapter, images: torch.Tensor, batch: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            adapter(images[i : i + batch])
    return time.perf_counter() - start


def build_main(args: argparse.Namespace) -> None:
    """Microscope costs, measured in one run: the dataset-examples pass against a bare batched
    forward of the same tensors, and a build's units per hour, with how each grows.

        python bench/microscope.py build                      # examples + a small build
        python bench/microscope.py build --units 8 --layers blocks.2,blocks.4

    Examples: every shipped crop (scikit-image + scikit-learn photos at three scales), read and
    resized to SIZE in the loop's own process (workers 0) or in DataLoader workers, against a
    bare ``torch.inference_mode`` forward of the same images already decoded, batch for batch,
    stopped at nothing (the whole model). Build: ``featviz.microscope.build`` of UNITS channels
    of each layer at 128 px with the microscope recipe (channel, negative, neuron, a diversity
    set of 4, drives, inputs, trust figures per unit), timed per part.
    """
    adapter = featviz.load_model(args.model)
    layers = args.layers.split(",")
    crops = shipped_items()
    print(f"machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}; {args.model}")

    decoded = torch.stack([read(item, args.size) for item in crops])
    bare_forward(adapter, decoded[: args.batch], args.batch)  # warm-up
    bare = bare_forward(adapter, decoded, args.batch)
    rows = [("bare batched forward, images decoded beforehand", len(crops) / bare)]
    for workers in (0, 2):
        found = examples(adapter, layers, size=args.size, batch=args.batch, workers=workers, progress=False)
        rows.append(
            (f"featviz examples, {len(layers)} layers, {workers} workers (decoding included)", found.images_per_second)
        )
    half = examples(adapter, layers[-1:], size=args.size, batch=args.batch, limit=len(crops) // 2, progress=False)
    rows.append((f"featviz examples, 1 layer, half the images ({len(crops) // 2})", half.images_per_second))
    print(f"\nexamples: {len(crops)} shipped crops at {args.size} px, batch {args.batch}\n")
    print("| contender | images / s | vs bare |")
    print("|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} | {rate / rows[0][1]:.2f}x |")
    if args.no_build:
        return

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        report = build(adapter, out, layers=layers, units_per_layer=args.units, size=args.build_size, progress=False)
        seconds = time.perf_counter() - start
    units = report.units
    t = report.timings
    print(f"\nbuild: {len(layers)} layers x {args.units} units at {args.build_size} px, microscope recipe\n")
    print("| part | seconds | per unit |")
    print("|---|---|---|")
    print(f"| dataset examples ({len(crops)} images, {len(layers)} layers, one pass) | {t.get('examples', 0):.1f} | |")
    print(f"| layer DeepDreams ({len(layers)}) | {t.get('dreams', 0):.1f} | |")
    print(f"| units: 7 renders + figures each | {t.get('units', 0):.1f} | {t.get('units', 0) / units:.1f} |")
    print(f"| whole build | {seconds:.1f} | {seconds / units:.1f} |")
    print(f"\nunits per hour: {3600 * units / seconds:.0f} (units alone: {3600 * units / t.get('units', 1):.0f})")


# ---- site


LAYER = "blocks.6"


def make_folder(out: Path, units: int) -> float:
    """A folder with a catalog of ``units`` built units; returns write_site's seconds."""
    sys.path.insert(0, str(TESTS))
    from synthetic import fake_microscope

    return fake_microscope(out, {LAYER: units})


def measure(browser, url: str, runs: int, sort: bool = True) -> dict[str, float]:
    loads, visible, sorts = [], [], []
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url, wait_until="load")
        page.wait_for_function(
            "() => Array.from(document.images)"
            ".filter(i => i.getBoundingClientRect().top < innerHeight)"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        visible.append(time.perf_counter() - start)
        loads.append(page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
        t = time.perf_counter()
        if sort:
            page.select_option("#sort", "trust")
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        sorts.append(time.perf_counter() - t)
        context.close()
    return {"load": statistics.median(loads), "visible": statistics.median(visible), "sort": statistics.median(sorts)}


def site_main(args: argparse.Namespace) -> None:
    """How fast a Microscope layer page with many units loads in headless Chromium, measured
    from ``file://`` and from ``featviz microscope serve`` in one run.

        python bench/microscope.py site                  # 1,000 units
        python bench/microscope.py site --units 4000 --runs 5
        python bench/microscope.py site --whole --runs 3    # every page of a 2,064-unit site

    A synthetic Microscope folder holds one layer of UNITS channels, each with its own 96 px
    thumbnail (a distinct PNG file per unit, as a build writes them) and the figures a page
    shows; the site is written by the library's own ``write_site``. Each run opens the layer page
    in a fresh browser context (nothing cached) and reports the time to the ``load`` event
    (navigation timing) and to every thumbnail in the first screen decoded, then the time to
    re-sort the grid by a trust figure.
    """
    sys.path.insert(0, str(TESTS))
    from browser import chromium

    if args.whole:
        return whole_site(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        site_seconds = make_folder(out, args.units)
        page = out / "layers" / f"{LAYER}.html"
        print(f"{args.units} units; write_site {site_seconds:.2f} s; layer page {page.stat().st_size / 1e3:.0f} kB")
        port = 8799
        server = subprocess.Popen(
            [sys.executable, "-m", "featviz", "microscope", "serve", str(out), "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(4)
            with chromium() as browser:
                for where, url in (
                    ("file://", page.as_uri()),
                    ("served", f"http://127.0.0.1:{port}/layers/{LAYER}.html"),
                ):
                    m = measure(browser, url, args.runs)
                    print(
                        f"{where:8s} load event {m['load']:.3f} s, first screen decoded {m['visible']:.3f} s, "
                        f"re-sort by trust {m['sort'] * 1000:.0f} ms (median of {args.runs})"
                    )
        finally:
            server.terminate()


def whole_site(runs: int) -> None:
    """``--whole``: every channel of Lite0's seven stages and its head (2,064 units, synthetic),
    each page's first screen from ``file://``."""
    from browser import chromium
    from synthetic import fake_microscope

    layers = {f"blocks.{i}": c for i, c in enumerate((16, 24, 40, 80, 112, 192, 320))} | {"conv_head": 1280}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        seconds = fake_microscope(out, layers)
        print(f"{sum(layers.values())} units in {len(layers)} layers; write_site {seconds:.2f} s")
        with chromium() as browser:
            for name, units in {"model page": 0, **layers}.items():
                url = (out / "index.html" if not units else out / "layers" / f"{name}.html").as_uri()
                m = measure(browser, url, runs, sort=bool(units))
                print(f"{name:10s} {units:5d} units: load event {m['load']:.3f} s, first screen {m['visible']:.3f} s")


# ---- explain


def explain_main(args: argparse.Namespace) -> None:
    """What a whole default ``featviz explain`` costs, as users run it: one command per photo,
    start-up included (imports, model, captum, the renders of every channel in the report), with
    the library's own breakdown of the run.

        python bench/microscope.py explain                       # chelsea and coffee, default settings
        python bench/microscope.py explain --photos skimage:astronaut

    The target is under 2 minutes per report on 2 CPU cores.
    """
    with tempfile.TemporaryDirectory() as tmp:
        for photo in args.photos.split(","):
            out = Path(tmp) / f"{photo.split(':')[-1]}.html"
            start = time.perf_counter()
            cmd = [sys.executable, "-m", "featviz", "explain", photo, "--out", str(out), "-q"]
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - start
            data = json.loads(out.with_suffix(".json").read_text())
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in data["seconds"].items() if k != "total")
            a = data["ablation"]
            print(
                f"{photo}: {wall:.1f} s wall (start-up {wall - data['seconds']['total']:.1f} s; {parts}); "
                f"{data['target']['name']}; top-8 ablation drop {a['top_drop']:.2f} vs random "
                f"{a['random_mean']:.2f} +- {a['random_std']:.2f}; report {out.stat().st_size / 1e6:.1f} MB"
            )


# ---- serve-ctrl-c


def serve_ctrl_c_main(args: argparse.Namespace) -> None:
    """Ctrl-C on ``featviz microscope serve`` while it renders a unit on demand, RUNS times over:
    each run's exit status, the catalog's ``PRAGMA integrity_check`` and the seconds from SIGINT to
    exit (the test does 2 runs; the issue asks for 5).

        python bench/microscope.py serve-ctrl-c              # builds a one-unit Microscope of blocks.1, 5 runs
        python bench/microscope.py serve-ctrl-c --runs 10 --folder BUILT

    Each run serves a fresh copy of the folder as its own process (SIGINT at its default, as from
    a terminal), opens blocks.1:1 (not built), waits for its render to pass step 1 and sends SIGINT.
    A run passes when the exit status is 0 or 130 with no C++ abort, the catalog checks ``ok`` and
    holds only the built unit, and nothing of the abandoned one was written.
    """
    sys.path.insert(0, str(TESTS))
    from test_serve_robust import STEPS, Served, _ask, _check_stopped_cleanly

    work = Path(tempfile.mkdtemp(prefix="serve_ctrl_c_"))
    folder = args.folder
    if folder is None:
        folder = work / "built"
        small = {"units_per_layer": 1, "batch": 1, "size": 64, "steps": STEPS, "k": 2, "examples_limit": 12}
        build(featviz.load_model("efficientnet_lite0"), folder, layers=["blocks.1"], progress=False, **small)
    failed = 0
    for run in range(args.runs):
        copy = work / f"run{run}"
        shutil.copytree(folder, copy)
        start = time.monotonic()
        server = Served(copy)
        try:
            _ask(server)
            step = server.wait_for_step(1)["step"]
            code, output, seconds = server.ctrl_c()
        finally:
            server.kill()
        db = sqlite3.connect(copy / "catalog.sqlite")
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()
        try:
            _check_stopped_cleanly(copy, code, output)
            verdict = "clean"
        except AssertionError as err:
            failed += 1
            verdict = f"FAILED: {err}"
        print(
            f"run {run + 1}: SIGINT at step {step}, exit {code}, integrity_check {integrity}, "
            f"{seconds:.1f} s to exit, {time.monotonic() - start:.1f} s in all: {verdict}",
            flush=True,
        )
    shutil.rmtree(work)
    sys.exit(1 if failed else 0)


# ---- passes


def passes_main(args: argparse.Namespace) -> None:
    """Time and peak memory of the concept pass (dictionary, description, faithfulness) and of
    the activation atlas pass (sampling, UMAP; cells not rendered) against the number of
    images. Each point runs in a fresh process, so that its peak resident memory is its own;
    more images than the 477 shipped crops are the crops again (the passes read every item).

        python bench/microscope.py passes --images 160,480,1440 --layer blocks.5
    """
    if args.child:
        return passes_child(args)
    counts = [int(n) for n in args.images.split(",")]
    atlas = f"atlas {args.grid}x{args.grid}, {args.per_image} per image"
    print(f"{args.layer} at {args.size} px, concepts k={args.k}; {atlas}")
    print(f"{'images':>7} {'pass':>9} {'seconds':>8} {'s/100 img':>9} {'peak MiB':>9} {'+ over model':>12}  phases")
    for n in counts:
        for kind in ("concepts", "atlas"):
            cmd = [sys.executable, __file__, "passes", "--child", kind, "--images", str(n)]
            cmd += ["--layer", args.layer, "--size", str(args.size), "--k", str(args.k)]
            cmd += ["--grid", str(args.grid), "--per-image", str(args.per_image)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            phases = ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items())
            print(
                f"{n:>7} {kind:>9} {r['seconds']:>8.1f} {100 * r['seconds'] / n:>9.2f} {r['peak']:>9.0f} "
                f"{r['peak'] - r['model']:>12.0f}  {phases}",
                flush=True,
            )


def passes_child(args: argparse.Namespace) -> None:
    import resource

    from featviz.analysis.activation_atlas import activation_atlas

    adapter = featviz.load_model("efficientnet_lite0")
    with torch.inference_mode():
        adapter(torch.rand(2, 3, args.size, args.size))
    model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    crops = shipped_items()
    data = [crops[i % len(crops)] for i in range(int(args.images))]
    start = time.perf_counter()
    if args.child == "concepts":
        found = featviz.concepts(adapter, args.layer, args.k, data, size=args.size, progress=False)
        phases = {k: v for k, v in found.seconds.items() if k != "total"}
    else:
        common = {"grid": args.grid, "per_image": args.per_image, "image_size": args.size, "steps": 1}
        atlas = activation_atlas(adapter, args.layer, data, **common, size=32, progress=False)
        phases = {k: v for k, v in atlas.record["times"].items() if k in ("activations", "layout", "render")}
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak": peak, "model": model, "phases": phases}))


# ---- trust


def fixed_units(adapter) -> dict[str, list[int]]:
    """The 48 fixed units: 8 channels spread over each of blocks.1 ... blocks.6."""
    from featviz.models.grids import grid_shape

    out = {}
    for i in range(1, 7):
        name = f"blocks.{i}"
        channels = grid_shape(adapter, name, 128)[0]
        out[name] = [round(j * (channels - 1) / 7) for j in range(8)]
    return out


#: The build's recipe before the trust comparison made it cheaper: 2 crops of a quarter to all of
#: the image, Adam 0.05, 64 steps. Candidates are written as changes to it.
EARLIER = dict(crops=2, area=0.25, lr=0.05, steps=64)


def earlier():
    from featviz.optvis.recipes import get_recipe

    return candidate(get_recipe("microscope"), "2x64/0.05~0.25").replace(name="earlier 2x64")


def candidate(base, spec: str):
    """A recipe from ``CROPSxSTEPS[@PX][/LR][~AREA]`` (crops per step, steps, the side the
    model sees each crop at -- the image's own when left out --, Adam's first learning rate and
    the smallest share of the image a crop covers), or ``microscope``: today's build recipe."""
    from featviz.optvis.recipes import get_recipe

    if spec == "microscope":
        return get_recipe("microscope")
    name = spec
    spec, _, area = spec.partition("~")
    spec, _, lr = spec.partition("/")
    spec, _, px = spec.partition("@")
    k, steps = (int(v) for v in spec.split("x"))
    change = {"k": k, "size": int(px) if px else None, "area": (float(area or EARLIER["area"]), 1.0)}
    crops = tuple((n, {**kw, **change}) if n == "crops" else (n, kw) for n, kw in base.transforms)
    return base.replace(name=name, steps=steps, transforms=crops, lr=float(lr) if lr else EARLIER["lr"])


def trust_main(args: argparse.Namespace) -> None:
    """Microscope recipes against the earlier build recipe (2 crops of a quarter to all of the
    image, Adam 0.05, 64 steps) on 48 fixed units (8 channels spread over each of blocks.1 ...
    blocks.6, 128 px): seconds of the channel renders and the trust figure of each unit (its
    visualization's activation over its best dataset example's, the figure a unit page shows),
    with the median; a side-by-side picture of 16 of them (the earlier recipe's first row, then
    each candidate's).

        python bench/microscope.py trust --candidates microscope,1x64 --picture microscope_recipes.png
    """
    from featviz.analysis.trust import trust
    from featviz.io.grid import make_grid
    from featviz.io.images import save_image

    adapter = featviz.load_model("efficientnet_lite0")
    units = fixed_units(adapter)
    found = examples(adapter, list(units), k=9, size=128, progress=False)
    today = earlier()
    candidates = [candidate(today, spec) for spec in args.candidates.split(",")]
    figures: dict[str, list[float]] = {}
    images: dict[str, list[torch.Tensor]] = {}
    print(f"48 units, 128 px; candidates: {args.candidates}; against the earlier recipe (2 crops x 64 steps)")
    for rec in (today, *candidates):
        start = time.perf_counter()
        figures[rec.name], images[rec.name] = [], []
        names = list(units)
        for layer, channels in units.items():
            result = featviz.render(adapter, [f"{layer}:{c}" for c in channels], rec, size=128, progress=False)
            prev = names[names.index(layer) - 1] if names.index(layer) else None
            for row in trust(adapter, layer, prev, channels, result.images, found):
                if row["activation_vs_best_example"] is not None:  # None: the unit's best example is not positive
                    figures[rec.name].append(row["activation_vs_best_example"])
            images[rec.name] += [result.images[j] for j in (0, 3, 5)] if len(images[rec.name]) < 16 else []
        seconds = time.perf_counter() - start
        values = figures[rec.name]
        ratio = statistics.median(values) / statistics.median(figures[today.name])
        print(
            f"{rec.name:14s} {seconds:7.1f} s  median trust {statistics.median(values):.3f} "
            f"(quartiles {np.percentile(values, 25):.3f} / {np.percentile(values, 75):.3f}, {len(values)} units), "
            f"{ratio:.2f} of the earlier recipe's",
            flush=True,
        )
    if args.picture:
        tiles = [t for rec in (today, *candidates) for t in images[rec.name][:16]]
        save_image(make_grid(tiles, columns=16), args.picture)
        print(f"wrote {args.picture}")


def diversity_main(args: argparse.Namespace) -> None:
    """A build's diversity sets (4 images of a unit, each pushed away from the others) at fewer
    steps than the recipe's 32, on the 48 fixed units at 128 px: seconds, the median over units of
    the set's mean trust figure (the images' activation over the best dataset example's) and of
    its similarity (the mean cosine similarity of the images' Gram matrices at the unit's layer,
    the term the diversity objective lowers), each also as a share of the 32-step sets'; a
    picture of 6 units' sets, a row per step count. ``STEPS/LR`` also changes Adam's rate.

        python bench/microscope.py diversity --steps 32,24,16,24/0.15 --picture diversity_steps.png
    """
    from featviz.analysis.trust import trust
    from featviz.io.grid import make_grid
    from featviz.io.images import save_image
    from featviz.models.hooks import capture
    from featviz.optvis.objectives import diversity
    from featviz.optvis.recipes import get_recipe
    from featviz.tools.diverse import diversity_objective

    adapter = featviz.load_model("efficientnet_lite0")
    units = fixed_units(adapter)
    found = examples(adapter, list(units), k=9, size=128, progress=False)
    names = list(units)
    shown = {(layer, channels[2]) for layer, channels in units.items()}  # a unit of each layer in the picture
    base = get_recipe("microscope")
    rows: dict[str, tuple[float, list[float], list[float], list[torch.Tensor]]] = {}
    print("48 units, 128 px, diversity sets of 4 (weight 10), the microscope recipe at each step count")
    for spec in args.steps.split(","):
        steps, _, lr = spec.partition("/")
        recipe = base.replace(steps=int(steps), lr=float(lr) if lr else base.lr)
        start, trusts, sims, tiles = time.perf_counter(), [], [], []
        for layer, channels in units.items():
            prev = names[names.index(layer) - 1] if names.index(layer) else None
            for c in channels:
                objective = diversity_objective(adapter, f"{layer}:{c}", 4)
                result = featviz.render(adapter, objective, recipe, batch=4, size=128, progress=False)
                per_image = trust(adapter, layer, prev, [c] * 4, result.images, found)
                figures = [r["activation_vs_best_example"] for r in per_image]
                if None not in figures:
                    trusts.append(statistics.mean(figures))
                with torch.no_grad(), capture(adapter, [layer]) as cap:
                    sims.append(-float(diversity(layer)(cap(result.images.to(adapter.device))).mean()))
                tiles += list(result.images) if (layer, c) in shown else []
        rows[spec] = (time.perf_counter() - start, trusts, sims, tiles)
        first = rows[next(iter(rows))]
        print(
            f"{spec:>8s} steps {rows[spec][0]:6.1f} s  median trust {statistics.median(trusts):.3f} "
            f"({statistics.median(trusts) / statistics.median(first[1]):.2f} of the first's), "
            f"median similarity {statistics.median(sims):.3f} "
            f"({statistics.median(sims) / statistics.median(first[2]):.2f} of the first's), {len(trusts)} units",
            flush=True,
        )
    if args.picture:
        save_image(make_grid([t for r in rows.values() for t in r[3]], columns=24), args.picture)
        print(f"wrote {args.picture}")


# ---- law

#: Image-passes of a unit per step of the recipe: its channel, negative and neuron images, and its
#: 4 diversity images at three quarters of the steps (6 in all).
PAGE_IMAGES = 3 + 4 * DIVERSITY_SHARE


def build_seconds(model: str, layer: str, units: int, steps: int, size: int, images: int) -> tuple[float, dict]:
    """One ``featviz microscope build`` in a fresh process, as a user runs it: wall seconds
    (start-up included) and the seconds by phase it prints."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "featviz", "microscope", "build", model, "--layers", layer]
        cmd += ["--units-per-layer", str(units), "--steps", str(steps), "--size", str(size)]
        cmd += ["--examples-limit", str(images), "--out", str(Path(tmp) / "m")]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
    line = next(l for l in done.stdout.splitlines() if l.startswith("seconds by phase: "))
    phases = {k: float(v) for k, v in (part.rsplit(" ", 1) for part in line[18:].split(", "))}
    return wall, phases


def pass_seconds(adapter, layer: str, size: int, batch: int = 24, steps: int = 4) -> float:
    """Seconds per image per step of a Microscope render of ``layer`` (forward to the layer and
    back to the image), from a batch of ``batch`` channels."""
    from featviz.models.grids import grid_shape

    channels = grid_shape(adapter, layer, size)[0]
    units = [f"{layer}:{c % channels}" for c in range(batch)]
    featviz.render(adapter, units[:2], "microscope", size=size, steps=1, progress=False)
    start = time.perf_counter()
    featviz.render(adapter, units, "microscope", size=size, steps=steps, progress=False)
    return (time.perf_counter() - start) / (batch * steps)


def fit(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope through ``(x, y)`` points."""
    xs, ys = np.asarray(pairs, float).T
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(intercept), float(slope)


def law_main(args: argparse.Namespace) -> None:
    """The growth law of a Microscope build: its wall time against units, steps per render,
    image size and dataset images, three points each, one factor moved at a time from a centre
    build (each a fresh ``featviz microscope build`` process, start-up included); the law's
    constants fitted from them; each stage's cost per image-pass for Lite0 and a ResNet-50
    (random weights: the cost does not depend on them); and the predictions a whole model's
    build follows from, here and with a per-pass cost measured elsewhere.

        python bench/microscope.py law
        python bench/microscope.py law --repeat 3      # each point the fastest of 3 builds
    """
    centre = {"units": args.units, "steps": args.steps, "size": args.size, "images": args.images}
    points = {
        "units": [args.units // 2, args.units, args.units * 2],
        "steps": [args.steps // 2, args.steps, args.steps * 2],
        "size": [args.size // 2, args.size * 3 // 4, args.size],
        "images": [args.images // 4, args.images // 2, args.images],
    }
    seen: dict[tuple, tuple[float, dict]] = {}
    measured: dict[str, list[tuple[int, float, dict]]] = {}
    print(f"{args.model} {args.layer}, centre: {centre}; wall seconds of a fresh build process")
    for factor, values in points.items():
        measured[factor] = []
        for value in values:
            setting = {**centre, factor: value}
            key = tuple(setting.values())
            if key not in seen:  # the fastest of --repeat runs: the machine's load only ever slows a run
                seen[key] = min(
                    (build_seconds(args.model, args.layer, **setting) for _ in range(args.repeat)), key=lambda r: r[0]
                )
            wall, phases = seen[key]
            renders = sum(v for k, v in phases.items() if k.startswith("render:"))
            measured[factor].append((value, wall, phases))
            print(
                f"  {factor:7s} {value:5d}: {wall:6.1f} s  (examples {phases.get('examples', 0):.1f}, "
                f"renders {renders:.1f}, analyses {sum(phases.get(k, 0) for k in ('drives', 'inputs', 'trust')):.1f})",
                flush=True,
            )
    u, s, n = centre["units"], centre["steps"], centre["images"]
    _, per_unit = fit([(v, w) for v, w, _ in measured["units"]])
    _, per_step = fit([(v, w) for v, w, _ in measured["steps"]])
    _, per_image = fit([(v, p["examples"]) for v, _, p in measured["images"]])
    _, per_pixel = fit([(v * v, w) for v, w, _ in measured["size"]])
    p = per_step / (u * PAGE_IMAGES)  # seconds per image-pass at the centre size
    q = per_unit - PAGE_IMAGES * s * p  # a unit's analyses and writing
    start = seen[tuple(centre.values())][0] - u * per_unit - n * per_image
    print(
        f"law: T = {start:.1f} s + {per_image * 1000:.1f} ms x dataset images + units x "
        f"({PAGE_IMAGES:g} image-passes x steps x {p * 1000:.1f} ms + {q:.2f} s); "
        f"size: {per_pixel * 1000:.3f} ms per px^2 at the centre (T grows as size^2 above the start-up)"
    )
    print(f"per image-pass at {args.size} px, render batch 24 (forward to the stage and back):")
    lite = featviz.load_model("efficientnet_lite0")
    resnet = featviz.load_model("torchvision:resnet50")
    costs = {}
    for name, adapter, stages in (
        ("efficientnet_lite0", lite, [f"blocks.{i}" for i in range(7)]),
        ("resnet50", resnet, [f"layer{i}.{j}" for i, n in ((1, 3), (2, 4), (3, 6), (4, 3)) for j in range(n)]),
    ):
        from featviz.models.grids import grid_shape

        rows = [
            (stage, grid_shape(adapter, stage, args.size)[0], pass_seconds(adapter, stage, args.size))
            for stage in stages
        ]
        costs[name] = rows
        print(f"  {name}: " + ", ".join(f"{st} ({c} ch) {sec * 1000:.1f} ms" for st, c, sec in rows), flush=True)
    ratio = q / p  # analyses and writing, in image-passes of the unit's own stage
    for name, rows in costs.items():
        units = sum(c for _, c, _ in rows)
        passes = sum(c * (PAGE_IMAGES * 32 + ratio) * sec for _, c, sec in rows)
        print(
            f"  {name} whole model here ({units} units, 32 steps, 477 images): "
            f"{(start + 477 * per_image + passes) / 60:.0f} min predicted"
        )
    rn = costs["resnet50"]
    units = sum(c for _, c, _ in rn)
    unit_passes = sum(c * (PAGE_IMAGES * 32 + ratio) for _, c, _ in rn)
    here = sum(c * (PAGE_IMAGES * 32 + ratio) * sec for _, c, sec in rn) / unit_passes
    print(
        f"  resnet50: {units} units x ~{unit_passes / units:.0f} image-passes = {unit_passes / 1e6:.2f} M image-passes "
        f"(here {here * 1000:.1f} ms each on average)"
    )


# ---- the command line


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = subcommand(
        sub, "build", build_main, "the dataset-examples pass against a bare forward, and a build's units per hour"
    )
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--size", type=int, default=224, help="examples: image size")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--layers", default="blocks.2,blocks.4,blocks.6", help="layers of the examples pass and the build")
    p.add_argument("--units", type=int, default=8, help="build: channels per layer")
    p.add_argument("--build-size", type=int, default=128)
    p.add_argument("--no-build", action="store_true")

    p = subcommand(sub, "site", site_main, "how fast a layer page with many units loads in headless Chromium")
    p.add_argument("--units", type=int, default=1000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--whole", action="store_true", help="a whole model's site: Lite0's 2,064 units, every page")

    p = subcommand(sub, "explain", explain_main, "what a whole default featviz explain costs, one command per photo")
    p.add_argument("--photos", default="skimage:chelsea,skimage:coffee")

    p = subcommand(
        sub,
        "serve-ctrl-c",
        serve_ctrl_c_main,
        "Ctrl-C on featviz microscope serve while it renders a unit, RUNS times over",
    )
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--folder", type=Path, help="a Microscope built as the test builds it (default: build one)")

    p = subcommand(sub, "passes", passes_main, "the concept and activation atlas passes against the image count")
    p.add_argument("--images", default="160,480,1440", help="image counts, one fresh process each")
    p.add_argument("--layer", default="blocks.5")
    p.add_argument("--size", type=int, default=128, help="image size")
    p.add_argument("--k", type=int, default=8, help="concepts")
    p.add_argument("--grid", type=int, default=10, help="atlas cells per side")
    p.add_argument("--per-image", type=int, default=16, help="atlas positions per image")
    p.add_argument("--child", choices=["concepts", "atlas"], help=argparse.SUPPRESS)

    p = subcommand(sub, "trust", trust_main, "Microscope recipes against the earlier 2 x 64 on 48 fixed units")
    p.add_argument(
        "--candidates",
        default="microscope",
        help="recipes as CROPSxSTEPS[@PX][/LR][~AREA] or microscope (today's), comma-separated",
    )
    p.add_argument("--picture", help="a PNG of 16 units, a row per recipe, the earlier one first")

    p = subcommand(sub, "diversity", diversity_main, "the build's diversity sets at fewer steps, on 48 fixed units")
    p.add_argument(
        "--steps", default="32,24,16", help="STEPS[/LR] (Adam's rate), comma-separated; the first is the reference"
    )
    p.add_argument("--picture", help="a PNG of 6 units' sets, a row per step count")

    p = subcommand(sub, "law", law_main, "a build's time against units, steps, size and images; the prediction")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--layer", default="blocks.4")
    p.add_argument("--units", type=int, default=8, help="centre: channels")
    p.add_argument("--steps", type=int, default=16, help="centre: steps per render")
    p.add_argument("--size", type=int, default=128, help="centre: image size")
    p.add_argument("--images", type=int, default=480, help="centre: dataset images (the shipped 477 at most)")
    p.add_argument("--repeat", type=int, default=1, help="builds per point, the fastest kept")
    return ap


def main() -> None:
    args = parser().parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

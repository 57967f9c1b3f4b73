"""Class visualizations one image at a time, as users run them, featviz against Lucent,
interleaved in one run; Lite1 and Lite2 judge every image.

    python bench/single.py                              # 16 held-out classes, featviz + Lucent
    python bench/single.py --classes 4 --no-lucent --recipe default

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

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import featviz
from featviz.data.photos import load_image, resize

HELD_OUT = [33, 76, 99, 207, 281, 309, 323, 388, 417, 430, 471, 508, 559, 717, 779, 954]
BENCH = Path(__file__).resolve().parent

LUCENT = """
import sys, torch
sys.path.insert(0, {bench!r})
import featviz, peers
from featviz.io.images import save_image
adapter = featviz.load_model("efficientnet_lite0")
save_image(peers.lucent(adapter, [{cls}], {seed})[0], {out!r})
"""


def timed(cmd: list[str]) -> float:
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
        with torch.no_grad():
            logits = model(resize(batch, model.input_size))
        out[name] = [int((logits[i] > logits[i, c]).sum()) for i, c in enumerate(classes)]
    return out


def blown(images: dict[int, torch.Tensor]) -> float:
    q = (torch.stack(list(images.values())).clamp(0, 1) * 255).round()
    return float(((q == 0) | (q == 255)).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=16)
    ap.add_argument("--recipe", default="default")
    ap.add_argument("--size", type=int, help="image size (default: the recipe's, else 224)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-lucent", action="store_true")
    ap.add_argument("--keep", help="keep the images in this folder")
    args = ap.parse_args()
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
        times["featviz command"].append(timed(cmd))
        images["featviz command"][c] = load_image(out)
        if not args.no_lucent:
            out = folder / f"lucent_{c}.png"
            script = LUCENT.format(bench=str(BENCH), cls=c, seed=args.seed, out=str(out))
            times["lucent command"].append(timed([sys.executable, "-c", script]))
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


if __name__ == "__main__":
    main()

"""Judge transfer, colour, activation and cost of class visualizations, featviz vs peers.

    python bench/quality.py --out bench/results/quality   # all contenders, one run
    python bench/quality.py --out bench/results/held_out --class-set held-out --only featviz
    python bench/quality.py --out bench/results/on_lite1 --generator efficientnet_lite1 --classes 8 \
        --only "featviz default 224" "featviz fast 224" "featviz large"

Every contender renders class-logit visualizations on EfficientNet-Lite0 for the same
classes and seed; EfficientNet-Lite1 and Lite2, which never took part in rendering, judge
them (rank of the target class: 0 = top-1). ``--generator`` renders on Lite1 or Lite2 instead,
judged by the other two Lite models: the recipes are not one model's. Also reported: the share of channel values
pinned at 0 or 255, the generating model's target logit as a multiple of the best natural
photo's, and seconds per image (wall and process CPU). Results go to OUT/results.json and
one PNG row per contender, so a rerun skips contenders already measured (``--redo`` to force).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import peers
import torch
from common import machine
from PIL import Image

import featviz
from featviz.data.photos import natural_images, resize
from featviz.io.images import to_uint8

# The classic tutorial's eight first, then eight more spread over ImageNet.
CLASSES = [8, 144, 288, 587, 605, 800, 964, 983, 1, 130, 291, 340, 407, 511, 817, 948]
# Sixteen more that no recipe was tuned on: loggerhead, tarantula, goose, golden retriever,
# tabby, bee, monarch, giant panda, balloon, basketball, cannon, keyboard, folding chair,
# pickup, school bus, banana.
HELD_OUT = [33, 76, 99, 207, 281, 309, 323, 388, 417, 430, 471, 508, 559, 717, 779, 954]

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
    "lucent render_vis defaults (128 px)": ("lucent", lambda a, c, s: peers.lucent(a, c, s)),
    "classic tutorial loop 224": ("classic", lambda a, c, s: peers.classic(a, c, s)),
    "horama fourier 512": ("horama", lambda a, c, s: peers.horama(a, c, s, "fourier", steps=256)),
    "horama maco 512": ("horama", lambda a, c, s: peers.horama(a, c, s, "maco", steps=256)),
}


def ranks(judge: featviz.ModelAdapter, images: torch.Tensor, classes: list[int]) -> list[int]:
    with torch.no_grad():
        logits = judge(resize(images, judge.input_size))
    return [int((logits[i] > logits[i, c]).sum()) for i, c in enumerate(classes)]


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
        "ranks": {j: ranks(judge, images, classes) for j, judge in judges.items()},
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/quality")
    ap.add_argument("--classes", type=int, default=16, help="how many of the 16 classes")
    ap.add_argument(
        "--class-set", choices=("main", "held-out"), default="main", help="held-out: 16 classes no recipe was tuned on"
    )
    ap.add_argument("--peer-classes", type=int, default=4, help="classes for the slow Horama peers")
    ap.add_argument("--only", nargs="*", help="run only these contenders (substring match)")
    ap.add_argument("--redo", action="store_true", help="measure again the contenders --only selects")
    ap.add_argument("--table", action="store_true", help="only print the table of the results kept in OUT")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generator", default="efficientnet_lite0", help="the Lite model that renders; the others judge")
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()

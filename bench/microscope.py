"""Microscope costs, measured in one run: the dataset-examples pass against a bare batched
forward of the same tensors, and a build's units per hour, with how each grows.

    python bench/microscope.py                      # examples + a small build
    python bench/microscope.py --units 8 --layers blocks.2,blocks.4

Examples: every shipped crop (scikit-image + scikit-learn photos at three scales), read and
resized to SIZE in the loop's own process (workers 0) or in DataLoader workers, against a
bare ``torch.inference_mode`` forward of the same images already decoded, batch for batch,
stopped at nothing (the whole model). Build: ``featviz.microscope.build`` of UNITS channels
of each layer at 128 px with the microscope recipe (channel, negative, neuron, a diversity
set of 4, drives, inputs, trust figures per unit), timed per part.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import featviz
from featviz.data.sources import read, shipped_items
from featviz.examples import examples
from featviz.microscope import build


def bare_forward(adapter, images: torch.Tensor, batch: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            adapter(images[i : i + batch])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=224, help="examples: image size")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--layers", default="blocks.2,blocks.4,blocks.6", help="layers of the examples pass and the build")
    ap.add_argument("--units", type=int, default=8, help="build: channels per layer")
    ap.add_argument("--build-size", type=int, default=128)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()

"""The eight-class picture: one row per recipe, from the classic tutorial's stages to
featviz's own recipes, so that a reader sees what each improvement buys.

    python bench/picture.py --out docs/images/recipes.png
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine
from PIL import Image, ImageDraw

import featviz
from featviz.data.photos import resize
from featviz.io.images import to_uint8

CLASSES = {
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/images/recipes.png")
    ap.add_argument("--tile", type=int, default=160, help="tile size in the picture")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, help="render size (the model's 224 when left out)")
    ap.add_argument("--rows", nargs="*", help="render only these recipes' rows into the existing picture")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = featviz.load_model("efficientnet_lite0")
    units = [f"logits:{c}" for c in CLASSES]
    t, label_w, pad = args.tile, 70, 4
    shape = (label_w + len(units) * (t + pad), 18 + len(RECIPES) * (t + pad))
    if args.rows:  # keep the other rows as they are
        sheet = Image.open(args.out).convert("RGB")
        if sheet.size != shape:
            raise SystemExit(f"{args.out} is {sheet.size}, expected {shape} for --tile {t}")
    else:
        sheet = Image.new("RGB", shape, "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(CLASSES.values()):
        draw.text((label_w + j * (t + pad) + 4, 3), name, fill="black")
    for i, recipe in enumerate(RECIPES):
        if args.rows and recipe not in args.rows:
            continue
        start = time.perf_counter()
        result = featviz.render(model, units, recipe=recipe, seed=args.seed, size=args.size, progress=False)
        top1 = [p[0][0] for p in model.predict(result.images, k=1)]
        print(
            f"{recipe}: {time.perf_counter() - start:.0f} s for 8 images; Lite0 top-1 hits "
            f"{sum(a == b for a, b in zip(top1, CLASSES, strict=True))}/8",
            flush=True,
        )
        y = 18 + i * (t + pad)
        draw.rectangle((0, y, shape[0], y + t), fill="white")
        draw.text((4, y + t // 2 - 6), recipe, fill="black")
        for j, img in enumerate(resize(result.images, t)):
            sheet.paste(Image.fromarray(to_uint8(img)), (label_w + j * (t + pad), y))
        sheet.save(args.out)
    print(f"machine: {machine()}; wrote {args.out}")


if __name__ == "__main__":
    main()

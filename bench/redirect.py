"""The README's picture of dead units: each rendered without and with ReLU gradients
redirected for the first 16 steps (64 steps, 128 px, seed 0, the default recipe).

    python bench/redirect.py --out docs/images/redirect_relu.png
"""

from __future__ import annotations

import argparse
import time

import featviz
from featviz.io.grid import save_grid

UNITS = ["blocks.4.2.bn2:0", "blocks.3.2.bn2:1", "blocks.5.0.bn1:2"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/images/redirect_relu.png")
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()

"""Pixel-level speckle, measured: the share of an image's spectral energy in the top octave
(spatial frequencies above half the Nyquist limit, on the grey image, DC removed), for
rendered images against the photos shipped with scikit-image and scikit-learn resized to the
same size.

    python bench/speckle.py docs/images/hen_448.png docs/images/hen_448_large.png
"""

from __future__ import annotations

import argparse

import torch

import featviz
from featviz.data.photos import natural_images, resize


def top_octave_share(image: torch.Tensor) -> float:
    """Energy above half the Nyquist frequency over all energy but DC, of ``[3, H, W]``."""
    grey = image.float().mean(0)
    grey = grey - grey.mean()
    power = torch.fft.rfft2(grey).abs() ** 2
    fy = torch.fft.fftfreq(grey.shape[0]).abs()[:, None]
    fx = torch.fft.rfftfreq(grey.shape[1])[None, :]
    radius = torch.maximum(fy, fx)  # 0.5 is Nyquist
    return float(power[radius > 0.25].sum() / power.sum().clamp(min=1e-12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()
    rendered = {path: featviz.load_image(path) for path in args.images}
    size = next(iter(rendered.values())).shape[-1]
    photos = [top_octave_share(resize(p, size)) for p in natural_images().values()]
    median = sorted(photos)[len(photos) // 2]
    print(f"photos at {size} px: top-octave share {min(photos):.4f} .. {max(photos):.4f} (median {median:.4f})")
    for path, image in rendered.items():
        print(f"{path}: {top_octave_share(image):.4f}")


if __name__ == "__main__":
    main()

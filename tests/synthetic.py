"""A Microscope folder made without rendering: a catalog of built units whose images are small
synthetic PNGs (a distinct thumbnail per unit, as a build writes them, the other images shared)
and whose figures are random, for the tests and benchmarks of the site's speed at whole-model
scale (``bench/microscope.py site`` imports it from here)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from featviz.microscope.catalog import CATALOG, Catalog
from featviz.microscope.site import write_site

SHARED = ("negative", "neuron", "diversity_0", "diversity_1", "diversity_2", "diversity_3")


def fake_microscope(out: Path, layers: dict[str, int], seed: int = 0) -> float:
    """A folder ``out`` whose catalog holds every channel of ``layers`` (name -> channels) as
    built; returns the seconds :func:`write_site` took to write its site."""
    rng = np.random.default_rng(seed)
    cat = Catalog(out / CATALOG)
    cat.check_or_set_meta({"model": "efficientnet_lite0", "size": 128, "seed": 0, "data": "shipped", "k": 9})
    shared = out / "units" / "shared.png"
    shared.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (64, 576, 3), dtype=np.uint8)).save(shared)
    names = list(layers)
    for position, (layer, units) in enumerate(layers.items()):
        cat.put_layer(layer, position, [units, 4, 4], list(range(units)))
        rows = []
        for c in range(units):
            folder = out / "units" / layer / str(c)
            folder.mkdir(parents=True, exist_ok=True)
            grid = np.clip(rng.integers(0, 255, (3,)) + rng.normal(0, 40, (12, 12, 3)), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(grid).resize((96, 96), Image.Resampling.BICUBIC).save(buffer, "PNG")
            (folder / "channel.png").write_bytes(buffer.getvalue())
            files = {"channel": f"units/{layer}/{c}/channel.png"}
            files.update({k: "units/shared.png" for k in (*SHARED, "examples_top", "examples_bottom")})
            examples = {"hist": [int(v) for v in rng.integers(0, 50, 32)], "mean": 0.1, "max": float(rng.random() * 5)}
            below = names[position - 1] if position else None
            inputs = [[int(j), float(rng.random())] for j in range(min(3, layers[below]))] if below else []
            figures = {
                "score": float(rng.random() * 10),
                "examples": {**examples, "fires": 0.5},
                "drives": {"raises": [[8, "hen", float(rng.random())]], "lowers": [[7, "cock", float(rng.random())]]},
                "inputs": inputs,
                "activation_vs_best_example": float(rng.random() * 3),
                "rank_correlation_below": float(rng.random()),
                "below": below or "conv_stem",
            }
            rows.append({"layer": layer, "channel": c, "files": files, "figures": figures, "records": {}})
        cat.put_units(rows)
    cat.close()
    start = time.perf_counter()
    write_site(out)
    return time.perf_counter() - start

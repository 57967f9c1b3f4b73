"""How fast a Microscope layer page with many units loads in headless Chromium, measured
from ``file://`` and from ``featviz microscope serve`` in one run.

    python bench/site.py                  # 1,000 units
    python bench/site.py --units 4000 --runs 5

A synthetic Microscope folder holds one layer of UNITS channels, each with its own 96 px
thumbnail (a distinct PNG file per unit, as a build writes them) and the figures a page
shows; the site is written by the library's own ``write_site``. Each run opens the layer page
in a fresh browser context (nothing cached) and reports the time to the ``load`` event
(navigation timing) and to every thumbnail in the first screen decoded, then the time to
re-sort the grid by a trust figure.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import chromium  # noqa: E402

from featviz.microscope.catalog import CATALOG, Catalog  # noqa: E402
from featviz.microscope.site import write_site  # noqa: E402

LAYER = "blocks.6"


def make_folder(out: Path, units: int) -> float:
    """A folder with a catalog of ``units`` built units; returns write_site's seconds."""
    rng = np.random.default_rng(0)
    cat = Catalog(out / CATALOG)
    cat.check_or_set_meta({"model": "efficientnet_lite0", "size": 128, "seed": 0, "data": "shipped", "k": 9})
    cat.put_layer(LAYER, 0, [units, 4, 4], list(range(units)))
    shared = out / "units" / "shared.png"
    shared.parent.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (64, 576, 3), dtype=np.uint8)).save(shared)
    rows = []
    for c in range(units):
        folder = out / "units" / LAYER / str(c)
        folder.mkdir(parents=True)
        base = rng.integers(0, 255, (3,))
        grid = np.clip(base + rng.normal(0, 40, (12, 12, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(grid).resize((96, 96), Image.Resampling.BICUBIC).save(buffer, "PNG")
        (folder / "channel.png").write_bytes(buffer.getvalue())
        files = {"channel": f"units/{LAYER}/{c}/channel.png"}
        files.update({k: "units/shared.png" for k in ("negative", "neuron", "examples_top", "examples_bottom")})
        examples = {"hist": [int(v) for v in rng.integers(0, 50, 32)], "mean": 0.1, "max": float(rng.random() * 5)}
        figures = {
            "score": float(rng.random() * 10),
            "examples": {**examples, "fires": 0.5},
            "drives": {"raises": [[8, "hen", float(rng.random())]], "lowers": []},
            "inputs": [],
            "activation_vs_best_example": float(rng.random() * 3),
            "rank_correlation_below": float(rng.random()),
            "below": "blocks.5",
        }
        rows.append({"layer": LAYER, "channel": c, "files": files, "figures": figures, "records": {}})
    cat.put_units(rows)
    cat.close()
    start = time.perf_counter()
    write_site(out)
    return time.perf_counter() - start


def measure(browser, url: str, runs: int) -> dict[str, float]:
    loads, visible, sorts = [], [], []
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url, wait_until="load")
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('#units img'))"
            ".filter(i => i.getBoundingClientRect().top < innerHeight)"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        visible.append(time.perf_counter() - start)
        loads.append(page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
        t = time.perf_counter()
        page.select_option("#sort", "trust")
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
        sorts.append(time.perf_counter() - t)
        context.close()
    return {"load": statistics.median(loads), "visible": statistics.median(visible), "sort": statistics.median(sorts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()

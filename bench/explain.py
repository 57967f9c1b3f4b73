"""What a whole default ``featviz explain`` costs, as users run it: one command per photo,
start-up included (imports, model, captum, the renders of every channel in the report), with
the library's own breakdown of the run.

    python bench/explain.py                       # chelsea and coffee, default settings
    python bench/explain.py --photos skimage:astronaut

The target is under 2 minutes per report on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default="skimage:chelsea,skimage:coffee")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()

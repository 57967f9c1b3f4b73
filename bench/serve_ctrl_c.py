"""Ctrl-C on ``featviz microscope serve`` while it renders a unit on demand, RUNS times over:
each run's exit status, the catalog's ``PRAGMA integrity_check`` and the seconds from SIGINT to
exit (the test does 2 runs; the issue asks for 5).

    python bench/serve_ctrl_c.py              # builds a one-unit Microscope of blocks.1, 5 runs
    python bench/serve_ctrl_c.py --runs 10 --folder BUILT

Each run serves a fresh copy of the folder as its own process (SIGINT at its default, as from
a terminal), opens blocks.1:1 (not built), waits for its render to pass step 1 and sends SIGINT.
A run passes when the exit status is 0 or 130 with no C++ abort, the catalog checks ``ok`` and
holds only the built unit, and nothing of the abandoned one was written.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_serve_robust import STEPS, Served, _ask, _check_stopped_cleanly  # noqa: E402

import featviz  # noqa: E402
from featviz.microscope import build  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--folder", type=Path, help="a Microscope built as the test builds it (default: build one)")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()

"""Start-up of a ``featviz render`` command: everything a user waits for besides the steps.

    python bench/startup.py                                  # 5 runs
    git worktree add /tmp/before COMMIT
    python bench/startup.py --before /tmp/before/src         # interleaved with another checkout

Times ``featviz render efficientnet_lite0 logits:hen --steps 1 --size 64`` in a fresh
process (imports, model, one tiny step, the closing prediction, PNG and record), alternating
with ``python -c "import torch"`` (the floor) and, with ``--before``, the same command run
from another checkout's ``src`` folder; prints medians and every run. Also says which of
timm, torchvision and ``torch._dynamo`` the command imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = "import sys, runpy; sys.argv = {argv!r}; "
PROBE += "import atexit; atexit.register(lambda: print(sorted(m for m in ('timm', 'torchvision', 'torch._dynamo') "
PROBE += "if m in sys.modules))); runpy.run_module('featviz', run_name='__main__')"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--before", help="another checkout's src folder, run interleaved")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp()) / "hen.png"
    argv = ["featviz", "render", "efficientnet_lite0", "logits:hen", "--steps", "1", "--size", "64"]
    argv += ["-q", "--overwrite", "--out", str(out)]
    command = [sys.executable, "-m", *argv]
    runs: dict[str, list[float]] = {'python -c "import torch"': [], "render command": []}
    before = None
    if args.before:
        before = dict(os.environ, PYTHONPATH=str(Path(args.before).resolve()))
        runs["render command, --before"] = []
    for _ in range(args.runs):
        runs['python -c "import torch"'].append(timed([sys.executable, "-c", "import torch"]))
        if before is not None:
            runs["render command, --before"].append(timed(command, before))
        runs["render command"].append(timed(command))
    print("| | median | runs |\n|---|---|---|")
    for name, times in runs.items():
        print(f"| {name} | {statistics.median(times):.2f} s | {' '.join(f'{t:.2f}' for t in times)} |")
    probe = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True)
    imported = probe.stdout.strip().splitlines()[-1]
    print(f"imported by the render command, of timm / torchvision / torch._dynamo: {imported}")


if __name__ == "__main__":
    main()

"""What holds when a run record is rendered again elsewhere: here, with 1 and 2 torch threads.

The same record on the same machine and thread count gives the same pixels (the tests check
it byte for byte). Another thread count changes the order of floating-point sums inside the
convolutions, and hundreds of optimization steps amplify the rounding differences: the pixels
differ, the picture should not. This prints, for each thread count, the final score, the share
of pixels that differ from the first run, and what Lite0, Lite1 and Lite2 see.

    python bench/reproduce.py --record docs/images/hen.json
"""

from __future__ import annotations

import argparse
import time

import torch

import featviz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", default="docs/images/hen.json", help="a render's JSON record")
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    args = ap.parse_args()
    record = featviz.load_record(args.record)
    names = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    judges = {name: featviz.load_model(name) for name in names}
    rows, first = [], None
    for n in args.threads:
        torch.set_num_threads(n)
        start = time.perf_counter()
        result = featviz.replay(record, progress=False)
        seconds = time.perf_counter() - start
        pixels = (result.images * 255).round()
        first = pixels if first is None else first
        differ = (pixels != first).any(1).float().mean().item()
        seen = {k: j.predict(result.images, k=1)[0][0] for k, j in judges.items()}
        mad = (pixels - first).abs().mean().item()
        rows.append((n, float(result.final[0]), differ, mad, seen, seconds))
    base = rows[0][1]
    header = ["torch threads", "final score", "vs first", "pixels differing", "mean abs diff (0-255)"]
    print("| " + " | ".join(header + ["Lite0", "Lite1", "Lite2", "s"]) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, score, differ, mad, seen, seconds in rows:
        tops = " | ".join(f"{s[1]} ({s[2]:.2f})" for s in seen.values())
        change = f"{100 * (score / base - 1):+.1f}%"
        print(f"| {n} | {score:.3f} | {change} | {100 * differ:.1f}% | {mad:.1f} | {tops} | {seconds:.1f} |")


if __name__ == "__main__":
    main()

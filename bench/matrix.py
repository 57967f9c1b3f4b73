"""The architecture matrix as a Markdown table: for every model of ``tests/matrix_models.py``
(random weights, the sizes ``tests/test_matrix.py`` runs), what featviz says of it (library,
input size, default Microscope layers and their layouts) and whether each command runs:
render a channel, a neuron and a class, dataset examples, a Microscope of two units, explain.

    python bench/matrix.py                    # every model
    python bench/matrix.py --only resnet18,vit_tiny_patch16_224
    python bench/matrix.py --errors           # each failure's message under the table

A command that fails gets a ✗ and its one-line reason (with ``--errors``); the table is what
the models table of docs/guide/models.md is made from.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import matrix_models as mm  # noqa: E402

COMMANDS = ("channel", "neuron", "class", "examples", "microscope", "explain")


def _try(fn: Callable[[], Any], seconds: dict[str, float], command: str) -> str | None:
    """``None`` when ``fn`` runs, else its one-line reason; its wall and CPU time go in
    ``seconds`` (CPU time as ``command cpu``: on a shared machine the wall time says little)."""
    start, cpu = time.perf_counter(), time.process_time()
    try:
        fn()
    except Exception as err:  # a table row, not a crash: every failure is reported
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
    finally:
        seconds[command] = time.perf_counter() - start
        seconds[f"{command} cpu"] = time.process_time() - cpu
    return None


def run(case: mm.Case, folder: Path) -> dict[str, Any]:
    """One row: the description and each command's failure (``None``: it ran)."""
    start, cpu = time.perf_counter(), time.process_time()
    p = mm.prepare(case)
    adapter, info, size, layer = p.adapter, p.info, p.size, p.layer
    seconds = {"load": time.perf_counter() - start, "load cpu": time.process_time() - cpu}
    failed = {
        "channel": _try(lambda: mm.render(adapter, p.channel, size), seconds, "channel"),
        "neuron": _try(lambda: mm.render(adapter, p.neuron, size), seconds, "neuron"),
        "class": _try(lambda: mm.render(adapter, "logits:1", size), seconds, "class"),
        "examples": _try(lambda: mm.examples(adapter, layer, size), seconds, "examples"),
        "microscope": _try(lambda: mm.microscope(adapter, layer, folder / case.id, size), seconds, "microscope"),
        "explain": _try(lambda: mm.explain(adapter, size), seconds, "explain"),
    }
    seconds["total"] = time.perf_counter() - start
    seconds["total cpu"] = time.process_time() - cpu
    return {"case": case, "info": info, "sizes": (size, p.side), "failed": failed, "seconds": seconds}


def table(rows: list[dict[str, Any]]) -> str:
    head = "| model | library | input | default Microscope layers | layouts | " + " | ".join(COMMANDS) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        case, info = row["case"], row["info"]
        size = f"{info['input_size']}" + (" fixed" if info["fixed_size"] else f" (min {info['min_size']})")
        layers = ", ".join(f"`{n}`" for n in info["microscope_layers"]) or "-"
        kinds = sorted(set(info["layouts"].values())) or ["-"]
        marks = " | ".join("✗" if row["failed"][c] else "✓" for c in COMMANDS)
        name = f"`{case.id}`" + (f" ({case.note})" if case.note else "")
        lines.append(f"| {name} | {case.library} | {size} | {layers} | {', '.join(kinds)} | {marks} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated model ids (default: all)")
    parser.add_argument("--errors", action="store_true", help="list each failure's reason under the table")
    args = parser.parse_args()
    wanted = {s for s in args.only.split(",") if s}
    cases = [c for c in mm.CASES if not wanted or c.id in wanted or c.name in wanted]
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            rows.append(run(case, Path(tmp)))
            parts = ", ".join(f"{k} {v:.1f}" for k, v in rows[-1]["seconds"].items())
            print(f"{case.name}: {parts} s", file=sys.stderr, flush=True)
    print(table(rows))
    print(f"\n{len(rows)} models, {time.perf_counter() - start:.0f} s, {torch.get_num_threads()} torch threads")
    if args.errors:
        print()
        for row in rows:
            for command, reason in row["failed"].items():
                if reason:
                    print(f"- `{row['case'].id}` {command}: {reason}")


if __name__ == "__main__":
    main()

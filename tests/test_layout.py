"""The package's layering, read from its imports: each layer imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import featviz

SRC = Path(featviz.__file__).parent
CORE = {"models", "data"}
BASE = CORE | {"optvis", "io"}
# What each layer may import from featviz (besides itself and errors), bottom to top: the
# model and data layers, the optimization, files, the tools that make images, the analyses
# (examples, attribution, trust, groups), the Microscope and explain built on them, and what
# gathers everything (the package, the CLI). Every package of featviz belongs to one of them:
# a new one must be placed here.
ALLOWED = {
    "errors": set(),
    "models": set(),
    "data": set(),
    "optvis": CORE,
    "io": CORE | {"optvis"},
    "tools": BASE,
    "analysis": BASE | {"tools"},
    "microscope": BASE | {"tools", "analysis"},
    "explain": BASE | {"tools", "analysis", "microscope"},
    **dict.fromkeys(
        ("featviz", "cli", "__main__"), BASE | {"tools", "analysis", "microscope", "explain", "cli", "featviz"}
    ),
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(["featviz", *[p for p in parts if p != "__init__"]])


def _imports() -> dict[str, set[str]]:
    """Module -> featviz modules it imports anywhere in its code (lazy imports included)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("featviz"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("featviz")}
        graph[_module(path)] = found
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "featviz"


def test_each_layer_imports_only_the_layers_below_it():
    for module, imported in _imports().items():
        layer = _layer(module)
        assert layer in ALLOWED, f"{module} is in no layer: place {layer!r} in ALLOWED"
        allowed = ALLOWED[layer] | {layer, "errors"}
        bad = sorted(m for m in imported if _layer(m) not in allowed)
        assert not bad, f"{module} imports {bad}"


def test_no_import_cycle_between_modules():
    graph = _imports()
    # A module importing a package imports its __init__; keep only edges between modules.
    edges = {m: {i for i in imported if i in graph and i != m} for m, imported in graph.items()}
    edges = {m: {i for i in out if not m.startswith(i + ".")} for m, out in edges.items()}  # a package's own parts
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in edges[m]:
            assert state.get(n) != 1, "import cycle: " + " -> ".join([*path, m, n])
            if n not in state:
                visit(n, [*path, m])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])


def test_one_optimization_loop():
    """One place steps an optimization (the render loop). Gradients for analysis (receptive
    fields, attribution) are taken with ``autograd.grad`` by the analysis tools, never by the
    optimization pieces or the tools that make images."""

    def hits(pattern: str) -> list[str]:
        return [
            f"{p.relative_to(SRC)}:{i}"
            for p in SRC.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern in line
        ]

    backward = hits(".backward(")
    assert len(backward) == 1 and backward[0].startswith("optvis/render.py"), backward
    makers = ("optvis/", "dream.py", "zoom.py", "atlas.py", "diverse.py", "models/")
    assert not [h for h in hits("autograd.grad(") if h.startswith(makers)]


def test_results_do_not_write_themselves():
    from featviz.tools.atlas import AtlasResult
    from featviz.tools.dream import DreamResult
    from featviz.tools.zoom import ZoomResult

    for cls in (featviz.RenderResult, DreamResult, ZoomResult, AtlasResult):
        assert not hasattr(cls, "save"), cls

"""The documentation: the site builds without a warning, its examples run, the README's command
lines parse, and the README stays a front door.

Code blocks of README.md and of the pages under docs/ (docs/benchmarks.md left out: its
commands are benchmarks, run by hand):

- Every ```python block runs: the blocks of one file in order, in one fresh namespace, in a
  temporary working directory, on the CPU. Every featviz entry point a block calls
  (``ENTRY_POINTS``) gets ``device="cpu"`` and ``progress=False``.
- ``<!-- test-with: steps=4, size=64 -->`` on the line right before a block: the block runs
  with those keyword arguments (Python literals) given to every entry point it calls that
  takes them, in place of the block's own values. A page shows the real call (384 steps at
  224 px) and the test runs a small one.
- ``<!-- no-test: REASON -->`` on the line right before a block: the block is not run. Only
  for what a test cannot do (a download, a GPU, files of the reader's own, minutes of work),
  with the reason.
- Every line of a ```bash or ```text block of the README that begins with ``featviz `` names a
  command whose ``--help`` exits 0; a ```bash line's arguments must also parse.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import os
import re
import shlex
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import torch
from click.testing import CliRunner

import featviz
import featviz.microscope
from featviz.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(p for p in DOCS.rglob("*.md") if p.name != "benchmarks.md")]

#: What a docs example may call that renders, loads or computes: (module, name).
ENTRY_POINTS = [
    (featviz, "render"),
    (featviz, "replay"),
    (featviz, "atlas"),
    (featviz, "diverse"),
    (featviz, "dream"),
    (featviz, "zoom"),
    (featviz, "examples"),
    (featviz, "explain"),
    (featviz, "across_checkpoints"),
    (featviz.microscope, "build"),
]
ORIGINALS = {(module.__name__, name): getattr(module, name) for module, name in ENTRY_POINTS}


@dataclass
class Block:
    path: Path
    line: int  # of the block's first line of code
    language: str
    code: str
    marker: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        return self.marker.startswith("<!-- no-test")

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file with a language, and the marker line before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = re.match(r"^```(\w+)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        marker = lines[i - 1].strip() if i > 0 and lines[i - 1].strip().startswith("<!--") else ""
        block = Block(path, i + 2, opening[1], "\n".join(lines[i + 1 : end]), marker)
        block.overrides = _overrides(block)
        found.append(block)
        i = end + 1
    return found


def _overrides(block: Block) -> dict[str, Any]:
    marker = re.fullmatch(r"<!--\s*(test-with|no-test):(.*?)-->", block.marker)
    if marker is None:
        return {}
    if marker[1] == "no-test":
        assert marker[2].strip(), f"{block.where()}: a no-test marker says why (<!-- no-test: REASON -->)"
        return {}
    call = ast.parse(f"f({marker[2]})", mode="eval").body
    assert isinstance(call, ast.Call) and not call.args, f"{block.where()}: expected name=value pairs"
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def _accepted(name: str, fn: Callable[..., Any]) -> set[str]:
    """Keyword arguments ``fn`` takes by name (``diverse`` passes render's on; ``replay`` takes
    ``device`` and ``progress`` among its objects)."""
    params = {p.name for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD}
    for p in inspect.signature(fn).parameters.values():  # **overrides: Unpack[SomeTypedDict] names its keys
        if p.kind is p.VAR_KEYWORD:
            hint = typing.get_type_hints(fn, include_extras=True).get(p.name)
            for arg in typing.get_args(hint):
                params |= set(getattr(arg, "__annotations__", {}))
    if name == "diverse":
        params |= _accepted("render", ORIGINALS[("featviz", "render")])
    if name == "replay":
        params |= {"device", "progress"}
    return params


@contextlib.contextmanager
def entry_points(overrides: dict[str, Any]) -> Iterator[None]:
    """Every entry point wrapped for the block: on the CPU, quiet, with ``overrides``."""
    forced = {"device": "cpu", "progress": False, **overrides}
    try:
        for module, name in ENTRY_POINTS:
            original = ORIGINALS[(module.__name__, name)]
            given = {k: v for k, v in forced.items() if k in _accepted(name, original)}

            def wrapper(*args: Any, _fn: Any = original, _given: Any = given, **kwargs: Any) -> Any:
                return _fn(*args, **{**kwargs, **_given})

            setattr(module, name, functools.wraps(original)(wrapper))
        yield
    finally:
        for module, name in ENTRY_POINTS:
            setattr(module, name, ORIGINALS[(module.__name__, name)])


def _files_with_examples() -> list[Path]:
    return [p for p in PAGES if any(b.language == "python" and not b.skipped for b in code_blocks(p))]


# -- the site ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_site_builds_strict(tmp_path: Path) -> None:
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs is missing: pip install -e '.[docs]' (the test extra has it)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    reference = (site / "reference" / "featviz.html").read_text(encoding="utf-8")
    assert 'id="featviz.render"' in reference
    cli = (site / "guide" / "cli.html").read_text(encoding="utf-8")
    assert "featviz microscope serve" in cli and "--redirect-relu" in cli  # every command's --help


def _resolve(path: str) -> Any:
    """The object a dotted path names, through modules first (``featviz.atlas.atlas``: the
    function of the module ``featviz.atlas``, which ``featviz.atlas`` itself names)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise AssertionError(f"{path}: no such module")


def test_api_reference_documents_every_public_name() -> None:
    """Every name of ``featviz.__all__`` is rendered somewhere in docs/reference/."""
    documented: set[int] = set()
    for page in (DOCS / "reference").glob("*.md"):
        text = page.read_text(encoding="utf-8")
        for directive in re.finditer(r"^::: ([\w.]+)\n((?:    .*\n?)*)", text, flags=re.M):
            obj = _resolve(directive[1])
            options = directive[2]
            if "members: false" in options:
                continue
            members = re.findall(r"^\s+- (\w+)$", options, flags=re.M)
            documented.add(id(obj))
            if inspect.ismodule(obj):
                names = members or getattr(obj, "__all__", [])
                documented |= {id(getattr(obj, n)) for n in names}
    missing = [n for n in featviz.__all__ if id(getattr(featviz, n)) not in documented]
    assert not missing, f"add these to docs/reference/: {missing}"


# -- the examples --------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("path", _files_with_examples(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in code_blocks(path):
        if block.language != "python" or block.skipped:
            continue
        # Blank lines first, so that a traceback's line numbers are the file's.
        code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
        with entry_points(block.overrides):
            exec(code, namespace)


# -- the README ----------------------------------------------------------------------------------
def _command_lines() -> list[tuple[Block, list[str]]]:
    lines = []
    for block in code_blocks(README):
        if block.language not in ("bash", "text"):
            continue
        for line in block.code.replace("\\\n", " ").splitlines():
            if line.startswith("featviz "):
                lines.append((block, shlex.split(line, comments=True)[1:]))
    return lines


def _command(args: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The command the arguments name, its path and the rest of the arguments."""
    cmd: click.Command = main
    path: list[str] = []
    rest = list(args)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd), rest[0])
        assert sub is not None, f"featviz {' '.join(path + rest[:1])}: no such command"
        cmd, path, rest = sub, [*path, rest[0]], rest[1:]
    return cmd, path, rest


def test_readme_commands_parse() -> None:
    lines = _command_lines()
    assert len(lines) >= 8
    runner = CliRunner()
    for path in sorted({tuple(_command(args)[1]) for _, args in lines}):
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, f"featviz {' '.join(path)} --help: {result.output}"
    for block, args in lines:
        if block.language != "bash":
            continue  # usage synopses: the command's --help is enough
        cmd, path, rest = _command(args)
        try:
            cmd.make_context(f"featviz {' '.join(path)}", rest)
        except click.ClickException as err:
            pytest.fail(f"README: featviz {shlex.join(args)}: {err.format_message()}")


def test_readme_is_a_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    # .ci/run runs the first line starting with "python3 " after the marker: one line.
    after = text.split("<!-- test-command -->", 1)[1].splitlines()
    command = next(line for line in after if line.startswith("python3 "))
    assert '".[test]"' in command and "pytest" in command
    for target in re.findall(r'\]\(([^)#\s]+)[^)]*\)|src="([^"]+)"', text):
        link = next(t for t in target if t)
        if not re.match(r"\w+:", link):
            assert (ROOT / link).exists(), f"README links to {link}, which does not exist"

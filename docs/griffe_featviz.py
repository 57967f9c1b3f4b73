"""A griffe extension that reads featviz's docstrings for the API reference (mkdocs.yml).

The docstrings are written for ``help()`` and doctests: Sphinx roles (:func:`render`),
``double backticks``, ``>>>`` examples and ``::`` literal blocks. Markdown needs two of
these turned into its own forms, which this does as each docstring is loaded:

- a role becomes a cross-reference that links when the target is on the site and stays
  plain code when it is not (``~a.b.c`` shows ``c``; a bare name is looked up in the
  object's own module first);
- a ``>>>`` example, or an indented block after ``::``, becomes a fenced code block.

It also loads the subpackages that have no ``__init__.py`` (``featviz.optvis`` is a
namespace package inside the regular package ``featviz``, which Python imports but griffe
skips), so that the public names re-exported from them resolve. Nothing in ``src/`` is
changed.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|attr|data|exc|obj|const):`(~?)([^`<>]+?)(\(\))?`")


def _module_path(obj: griffe.Object) -> str:
    while obj.parent is not None and not obj.is_module:
        obj = obj.parent
    return obj.path


def _roles(text: str, obj: griffe.Object) -> str:
    module = _module_path(obj)
    owner = obj if obj.is_class else obj.parent

    def replace(match: re.Match[str]) -> str:
        kind, short, target = match[1], match[2], match[3].strip()
        shown = target.rsplit(".", 1)[-1] if short else target
        if kind in ("func", "meth"):
            shown += "()"
        if target.startswith("featviz"):
            identifier = target
        elif kind == "meth" and "." not in target and owner is not None and owner.is_class:
            identifier = f"{owner.path}.{target}"
        else:
            identifier = f"{module}.{target}"
        return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'

    return _ROLE.sub(replace, text)


def _fence(lines: list[str]) -> list[str]:
    body = textwrap.dedent("\n".join(lines)).strip("\n").splitlines()
    language = "pycon" if body and body[0].lstrip().startswith(">>>") else "python"
    return [f"```{language}", *body, "```"]


def _blocks(text: str) -> str:
    """``::`` literal blocks and ``>>>`` examples as fenced code; other lines as they are."""
    lines = text.splitlines()
    out: list[str] = []
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append(line)
            i += 1
            continue
        if fenced:
            out.append(line)
            i += 1
            continue
        if line.rstrip().endswith("::") and i + 2 < len(lines) and not lines[i + 1].strip():
            indent = len(line) - len(line.lstrip())
            j = i + 2
            block: list[str] = []
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                block.append(lines[j])
                j += 1
            if block and any(b.strip() for b in block):
                head = line.rstrip()[:-1]
                out += [head if head.rstrip() != "" else "", "", *_fence(block), ""]
                i = j
                continue
        if line.lstrip().startswith(">>>"):
            j = i
            block = []
            while j < len(lines) and lines[j].strip():
                block.append(lines[j])
                j += 1
            if out and out[-1].strip():
                out.append("")
            out += [*_fence(block), ""]
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _load_namespace(folder: Path, parent: griffe.Module, loader: griffe.GriffeLoader) -> None:
    """Load ``folder`` (a package, or a folder without ``__init__.py``) into ``parent``."""
    init = folder / "__init__.py"
    if init.exists():
        module = _visit(folder.name, init, parent, loader)
    else:
        module = griffe.Module(folder.name, filepath=folder, parent=parent)
        parent.set_member(folder.name, module)
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path.name != "__pycache__" and any(path.rglob("*.py")):
            _load_namespace(path, module, loader)
        elif path.suffix == ".py" and path.name != "__init__.py":
            _visit(path.stem, path, module, loader)


def _visit(name: str, path: Path, parent: griffe.Module, loader: griffe.GriffeLoader) -> griffe.Module:
    module = griffe.visit(
        name,
        path,
        path.read_text(encoding="utf-8"),
        extensions=loader.extensions,
        parent=parent,
        docstring_parser=loader.docstring_parser,
        docstring_options=loader.docstring_options,
        lines_collection=loader.lines_collection,
        modules_collection=loader.modules_collection,
    )
    loader.lines_collection[path] = path.read_text(encoding="utf-8").splitlines()
    parent.set_member(name, module)
    return module


class FeatvizDocstrings(griffe.Extension):
    """Rewrite roles and examples in every docstring as it is loaded; load the namespace
    subpackages griffe leaves out."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "featviz" or pkg.filepath is None or isinstance(pkg.filepath, list):
            return
        root = Path(pkg.filepath).parent
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and folder.name not in pkg.members and any(folder.glob("*.py")):
                _load_namespace(folder, pkg, loader)

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _roles(_blocks(obj.docstring.value), obj)

"""The compact unit syntax of the CLI and the string shorthand of the API.

==========================  ===========================================================
``blocks.5:51``             channel 51 of ``blocks.5`` (mean over positions)
``blocks.5:51@3,4``         neuron: channel 51 at x=3, y=4 (``blocks.5:51@`` is the centre)
``blocks.5``                the whole layer (DeepDream: mean of squares)
``logits:hen``, ``logits:8``  class logit, before softmax
``probs:hen``               class probability (softmax)
``blocks.6/concepts:3``     concept 3 of the dictionary loaded for ``blocks.6`` (a direction
                            over its channels; see :data:`CONCEPTS`)
==========================  ===========================================================

Units combine into expressions with numbers, ``+ - * /``, unary minus and parentheses,
with Python's precedence and spacing as you like: ``"blocks.5:51 + blocks.5:12"``,
``"logits:hen-logits:cock"``, ``"2 * (blocks.5:3 - 0.5 * blocks.5:4)"``. Class names keep
their spaces and hyphens (``logits:sports car``, ``logits:black-and-tan coonhound``); a
hyphen inside a class name is a minus only when a space, a digit, ``(`` or another unit
(``logits:``, ``probs:``) stands beside it.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import torch

from featviz.errors import UnitError
from featviz.errors import shorten as _short
from featviz.models.adapter import LOGITS, ModelAdapter
from featviz.optvis import objectives as obj

_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_UNIT_CHAR = re.compile(r"[^\s+\-*/()]")
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "pos": 3}
MAX_LENGTH = 10_000  # characters in one expression
MAX_DEPTH = 100  # nested parentheses and unary signs
CONCEPTS_SUFFIX = "/concepts"  # LAYER/concepts:N
#: The concept dictionaries that ``LAYER/concepts:N`` units read, by (model name, layer name):
#: ``[k, C]`` unit-length directions over the layer's channels. A unit cannot learn a
#: dictionary, so one is put here first: :func:`featviz.analysis.concepts.use`.
CONCEPTS: dict[tuple[str, str], torch.Tensor] = {}
#: The cosine weighting of a concept's objective (as neuron groups' visualizations use):
#: it favours the concept's mix of channels over turning every channel up.
CONCEPT_COSSIM_POW = 1.0


def parse_unit(text: str, adapter: ModelAdapter | None = None, *, batch: int | None = None) -> obj.Objective:
    """One unit (no operators) as an objective; validated against ``adapter`` when given.

    >>> parse_unit("blocks.5:51@3,4")
    neuron('blocks.5', 51, 3, 4)
    >>> parse_unit("logits:hen")
    class_logit('hen')
    """
    text = text.strip()
    if not text:
        raise UnitError("empty unit: expected LAYER, LAYER:CHANNEL, LAYER:CHANNEL@X,Y or logits:CLASS")
    layer, sep, rest = text.partition(":")
    if layer.endswith(CONCEPTS_SUFFIX):
        return _concept(text, layer[: -len(CONCEPTS_SUFFIX)], sep, rest, adapter, batch)
    if layer in (LOGITS, "probs"):
        if not sep or not rest.strip():
            raise UnitError(f"{_short(text)}: expected {layer}:CLASS with a class name or index, e.g. {layer}:hen")
        cls: int | str = int(rest) if rest.strip().isdigit() else rest.strip()
        if adapter is not None:
            adapter.class_index(cls)
        return (obj.class_logit if layer == LOGITS else obj.class_probability)(cls, batch=batch)
    if not layer:
        raise UnitError(f"{_short(text)} has no layer before ':': expected LAYER:CHANNEL or logits:CLASS")
    if adapter is not None:
        layer = _layer(adapter, layer)
    if not sep:
        return obj.layer(layer, batch=batch)
    chan_text, at, pos = rest.partition("@")
    try:
        chan = int(chan_text)
    except ValueError:
        raise UnitError(f"{_short(text)}: expected an integer channel after ':', got {_short(chan_text)}") from None
    if not at:
        return obj.channel(layer, chan, batch=batch)
    if not pos.strip():
        return obj.neuron(layer, chan, batch=batch)
    try:
        x, y = (int(v) for v in pos.split(","))
    except ValueError:
        raise UnitError(f"{_short(text)}: expected a position X,Y after '@', got {_short(pos)}") from None
    grid = _grid(adapter, layer) if adapter is not None else None
    return obj.neuron(layer, chan, x, y, grid=grid, batch=batch)


def _concept(
    text: str, layer: str, sep: str, rest: str, adapter: ModelAdapter | None, batch: int | None
) -> obj.Objective:
    """``LAYER/concepts:N``: the direction of concept ``N`` of the dictionary loaded for the layer."""
    if not layer:
        raise UnitError(f"{_short(text)} has no layer before '{CONCEPTS_SUFFIX}': expected LAYER/concepts:N")
    if not sep or not rest.strip().isdigit():
        raise UnitError(f"{_short(text)}: expected LAYER/concepts:N with a concept index N, e.g. blocks.6/concepts:3")
    if adapter is not None:
        layer = _layer(adapter, layer)
    model = adapter.name if adapter is not None else None
    directions = concept_directions(layer, model)
    index = int(rest)
    if index >= len(directions):
        raise UnitError(
            f"{_short(text)}: expected a concept index from 0 to {len(directions) - 1} "
            f"(the dictionary of {layer!r} has {len(directions)} concepts), got {index}"
        )
    return obj.direction(layer, directions[index], cossim_pow=CONCEPT_COSSIM_POW, batch=batch)


def concept_directions(layer: str, model: str | None = None) -> torch.Tensor:
    """The ``[k, C]`` directions loaded for ``layer`` of ``model`` (any model when ``None`` and
    only one has a dictionary for the layer), or an error that says how to make one."""
    found = [(m, d) for (m, name), d in CONCEPTS.items() if name == layer and model in (None, m)]
    if len(found) == 1:
        return found[0][1]
    if found:
        models = ", ".join(sorted(m for m, _ in found))
        raise UnitError(f"concept dictionaries of {layer!r} are loaded for {models}: parse the unit with its model")
    shown = model or "MODEL"
    raise UnitError(
        f"no concept dictionary is loaded for {layer!r} of {shown}: learn one with "
        f"result = featviz.concepts({shown!r}, {layer!r}, k), then featviz.analysis.concepts.use(result) "
        "(or use(path) with a file featviz.analysis.concepts.save_concepts wrote); on the command line, "
        f"featviz concepts {shown} {layer} writes the file that featviz render then reads"
    )


def names_concepts(unit: str | list[str]) -> bool:
    """Whether a unit expression (or any of a list) reads a concept dictionary."""
    return any(CONCEPTS_SUFFIX + ":" in u for u in ([unit] if isinstance(unit, str) else unit))


def _layer(adapter: ModelAdapter, name: str) -> str:
    """The layer's name, or an error that also says when the name is a class."""
    from featviz.errors import UnknownLayerError

    try:
        return adapter.layer_name(name)
    except UnknownLayerError as err:
        if adapter.labels is not None and name.lower() in (n.lower() for n in adapter.labels.names):
            raise UnknownLayerError(f"{err} '{name}' is a class: did you mean {LOGITS}:{name}?") from None
        raise


def _grid(adapter: ModelAdapter, layer: str) -> tuple[int, int]:
    """The layer's grid at the model's input size: what ``featviz layers`` shows."""
    from featviz.models.layers import output_shape

    cache = adapter.__dict__.setdefault("_grids", {})
    if layer not in cache:
        shape = output_shape(adapter, layer, adapter.input_size)
        if len(shape) == 3:
            cache[layer] = (shape[1], shape[2])
        elif len(shape) == 2:  # tokens: the square grid they are laid out on (prefix tokens dropped)
            side = int((shape[0] - (adapter.prefix_tokens or 0)) ** 0.5)
            cache[layer] = (side, side)
        else:
            raise UnitError(f"{layer!r} has no spatial grid (output shape {shape}): a neuron needs one")
    return cache[layer]  # type: ignore[no-any-return]


def parse_objective(expr: str, adapter: ModelAdapter | None = None, *, batch: int | None = None) -> obj.Objective:
    """A unit expression: units and numbers with ``+ - * /``, unary minus and parentheses.

    Parsed without recursion (a long expression is no problem); an error names the column.

    >>> parse_objective("logits:hen - 0.5 * logits:cock")
    class_logit('hen') - 0.5 * class_logit('cock')
    >>> parse_objective("-(blocks.5:1+blocks.5:2)/2")
    -(channel('blocks.5', 1) + channel('blocks.5', 2)) / 2.0
    """
    if not isinstance(expr, str):
        raise UnitError(f"expected a unit expression (a string), got {type(expr).__name__}")
    if len(expr) > MAX_LENGTH:
        raise UnitError(f"the expression {_short(expr)} has {len(expr)} characters: at most {MAX_LENGTH}")
    values: list[tuple[obj.Objective | float, int]] = []  # value, column of its first character
    ops: list[tuple[str, int]] = []  # operator or "(", column
    expect_operand, depth = True, 0
    for kind, text, col in _tokens(expr):
        if expect_operand:
            if kind == "number":
                values.append((float(text), col))
            elif kind == "unit":
                values.append((_unit(text, col, adapter, batch), col))
            elif kind == "op" and text in "+-":
                ops.append(("neg" if text == "-" else "pos", col))
                depth += 1
            elif kind == "(":
                ops.append(("(", col))
                depth += 1
            else:
                raise UnitError(
                    f"expected a unit, a number or '(' at column {col}, got {_short(text)} in {_short(expr)}"
                )
            if depth > MAX_DEPTH:
                raise UnitError(f"{_short(expr)} nests more than {MAX_DEPTH} parentheses and signs deep")
            expect_operand = kind in ("op", "(")
            continue
        if kind == "op":
            while ops and ops[-1][0] != "(" and _PREC[ops[-1][0]] >= _PREC[text]:
                depth -= _apply(ops.pop(), values, expr)
            ops.append((text, col))
            expect_operand = True
        elif kind == ")":
            while ops and ops[-1][0] != "(":
                depth -= _apply(ops.pop(), values, expr)
            if not ops:
                raise UnitError(f"unmatched ')' at column {col} in {_short(expr)}")
            ops.pop()
            depth -= 1
        else:
            raise UnitError(f"expected an operator or ')' at column {col}, got {_short(text)} in {_short(expr)}")
    if expect_operand:
        if not ops:
            raise UnitError("empty unit: expected LAYER, LAYER:CHANNEL, LAYER:CHANNEL@X,Y or logits:CLASS")
        op, col = ops[-1]
        shown = {"neg": "-", "pos": "+"}.get(op, op)
        raise UnitError(f"expected a unit or number after {shown!r} at column {col} in {_short(expr)}")
    while ops:
        if ops[-1][0] == "(":
            raise UnitError(f"'(' at column {ops[-1][1]} is never closed in {_short(expr)}")
        _apply(ops.pop(), values, expr)
    result = values[0][0]
    if not isinstance(result, obj.Objective):
        raise UnitError(f"{_short(expr)} has no unit in it: expected at least one LAYER[:CHANNEL] or logits:CLASS")
    return result


def _apply(op: tuple[str, int], values: list[tuple[obj.Objective | float, int]], expr: str) -> int:
    """Apply ``op`` to the value stack; returns how much it nested (1 for a unary sign)."""
    name, col = op
    if name in ("neg", "pos"):
        value, vcol = values.pop()
        values.append((-value if name == "neg" else value, col))
        return 1
    (b, _), (a, acol) = values.pop(), values.pop()
    if name == "/" and isinstance(b, float) and b == 0:
        raise UnitError(f"division by zero at column {col} in {_short(expr)}")
    result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b}[name]()
    values.append((result, acol))
    return 0


def _tokens(expr: str) -> Any:
    """(kind, text, 1-based column) for numbers, units, operators and parentheses."""
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
            continue
        if c in "()":
            yield c, c, i + 1
            i += 1
            continue
        if c in "+-*/":
            yield "op", c, i + 1
            i += 1
            continue
        number = _NUMBER.match(expr, i)
        end = number.end() if number else 0
        if number and not (
            end < n and (expr[end] in ":.@_" or expr[end].isalpha() or expr.startswith(CONCEPTS_SUFFIX + ":", end))
        ):
            yield "number", number.group(), i + 1
            i = number.end()
            continue
        end = _unit_end(expr, i)
        if end == i:
            raise UnitError(f"unexpected {c!r} at column {i + 1} in {_short(expr)}")
        yield "unit", expr[i:end].rstrip(), i + 1
        i = end


def _unit_end(expr: str, start: int) -> int:
    """Where the unit starting at ``start`` ends. A class name (after ``logits:`` / ``probs:``)
    may hold spaces and hyphens; a hyphen is a minus next to a space, a digit, ``(`` or a unit."""
    i, n = start, len(expr)
    while i < n and _UNIT_CHAR.match(expr[i]) and expr[i] != ":":
        i += 1
    if expr.startswith(CONCEPTS_SUFFIX + ":", i):  # LAYER/concepts:N is one unit, not a division
        i += len(CONCEPTS_SUFFIX)
    if i >= n or expr[i] != ":":
        return i
    if expr[start:i] not in (LOGITS, "probs"):
        i += 1
        while i < n and _UNIT_CHAR.match(expr[i]):
            i += 1
        return i
    i += 1
    while i < n:
        c = expr[i]
        if c in "()+*/":
            break
        if c == "-" and _minus(expr, i):
            break
        if c.isspace() and _operator_follows(expr, i):
            break
        i += 1
    return i


def _minus(expr: str, i: int) -> bool:
    after = expr[i + 1 : i + 8]
    return (
        (i > 0 and expr[i - 1].isspace())
        or after[:1].isspace()
        or after[:1].isdigit()
        or after[:1] in ("(", ".", "")
        or after.startswith((f"{LOGITS}:", "probs:"))
    )


def _operator_follows(expr: str, i: int) -> bool:
    j = i
    while j < len(expr) and expr[j].isspace():
        j += 1
    return j >= len(expr) or expr[j] in "+-*/()"


def _unit(text: str, col: int, adapter: ModelAdapter | None, batch: int | None) -> obj.Objective:
    try:
        return parse_unit(text, adapter, batch=batch)
    except UnitError as err:
        raise type(err)(f"{err} (column {col})") from None
    except (KeyError, ValueError) as err:  # unknown layer / class, which carry their own message
        raise type(err)(f"{err} (column {col})") from None


# The constructors an objective's repr may call, with the arguments a repr writes.
_CONSTRUCTORS: dict[str, Any] = {
    "channel": obj.channel,
    "neuron": obj.neuron,
    "layer": obj.layer,
    "class_logit": obj.class_logit,
    "class_probability": obj.class_probability,
    "channels": obj.channels,
    "direction": obj.direction,
    "diversity": obj.diversity,
    "l1": obj.l1,
    "l2": obj.l2,
    "total_variation": obj.total_variation,
}


def objective_from_repr(text: str) -> obj.Objective:
    """Read back an objective's ``repr`` (what run records keep of objectives built in Python).

    Only the constructors' calls with literal arguments, numbers, ``+ - * /``, unary minus and
    parentheses are read; nothing is evaluated.

    >>> o = obj.channel("blocks.5", 51) - 0.05 * obj.l2() + 10.0 * obj.diversity("blocks.3")
    >>> objective_from_repr(repr(o))
    channel('blocks.5', 51) - 0.05 * l2() + 10.0 * diversity('blocks.3')
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise UnitError(f"cannot read the objective {_short(text)}: {err.msg}") from None
    result = _evaluate(tree.body, text)
    if not isinstance(result, obj.Objective):
        raise UnitError(f"{_short(text)} has no objective in it")
    return result


def _evaluate(node: ast.AST, text: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _evaluate(node.left, text), _evaluate(node.right, text)
        ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b, ast.Div: lambda: a / b}
        return ops[type(node.op)]()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "batched":
        if len(node.args) != 1 or not isinstance(node.args[0], ast.List):
            raise UnitError(f"{_short(text)}: batched() takes one list of objectives")
        return obj.batched([_evaluate(e, text) for e in node.args[0].elts])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CONSTRUCTORS:
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
            return _CONSTRUCTORS[node.func.id](*args, **kwargs)
        except (ValueError, TypeError, SyntaxError) as err:
            raise UnitError(f"{_short(text)}: cannot read {ast.unparse(node)} ({err})") from None
    raise UnitError(
        f"cannot read {ast.unparse(node)!r} in the objective {_short(text)}: expected calls of "
        f"{', '.join(_CONSTRUCTORS)} with literal arguments, numbers and + - * /"
    )

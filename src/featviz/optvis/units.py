"""The compact unit syntax of the CLI and the string shorthand of the API.

==========================  ===========================================================
``blocks.5:51``             channel 51 of ``blocks.5`` (mean over positions)
``blocks.5:51@3,4``         neuron: channel 51 at x=3, y=4 (``blocks.5:51@`` is the centre)
``blocks.5``                the whole layer (DeepDream: mean of squares)
``logits:hen``, ``logits:8``  class logit, before softmax
``probs:hen``               class probability (softmax)
==========================  ===========================================================

Units combine into expressions with spaced operators and numbers:
``"blocks.5:51 + blocks.5:12"``, ``"logits:hen - logits:cock"``, ``"2 * blocks.5:3"``.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from featviz.errors import UnitError
from featviz.models.adapter import LOGITS, ModelAdapter
from featviz.optvis import objectives as obj

_OPERATOR = re.compile(r"\s+([+\-*/])\s+")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


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
    if layer in (LOGITS, "probs"):
        if not sep or not rest.strip():
            raise UnitError(f"{text!r}: expected {layer}:CLASS with a class name or index, e.g. {layer}:hen")
        cls: int | str = int(rest) if rest.strip().isdigit() else rest.strip()
        if adapter is not None:
            adapter.class_index(cls)
        return (obj.class_logit if layer == LOGITS else obj.class_probability)(cls, batch=batch)
    if adapter is not None:
        layer = adapter.layer_name(layer)
    if not sep:
        return obj.layer(layer, batch=batch)
    chan_text, at, pos = rest.partition("@")
    try:
        chan = int(chan_text)
    except ValueError:
        raise UnitError(f"{text!r}: expected an integer channel after ':', got {chan_text!r}") from None
    if not at:
        return obj.channel(layer, chan, batch=batch)
    if not pos.strip():
        return obj.neuron(layer, chan, batch=batch)
    try:
        x, y = (int(v) for v in pos.split(","))
    except ValueError:
        raise UnitError(f"{text!r}: expected a position X,Y after '@', got {pos!r}") from None
    return obj.neuron(layer, chan, x, y, batch=batch)


def parse_objective(expr: str, adapter: ModelAdapter | None = None, *, batch: int | None = None) -> obj.Objective:
    """A unit expression: units and numbers joined by spaced ``+ - * /`` (usual precedence).

    >>> parse_objective("logits:hen - 0.5 * logits:cock")
    class_logit('hen') - 0.5 * class_logit('cock')
    """
    parts = _OPERATOR.split(expr.strip())
    terms, ops = parts[0::2], parts[1::2]
    values = [_term(t, adapter, batch) for t in terms]
    # Products first, then sums, left to right.
    sums: list[obj.Objective | float] = [values[0]]
    sum_ops: list[str] = []
    for op, value in zip(ops, values[1:], strict=False):
        if op in "*/":
            left = sums[-1]
            sums[-1] = left * value if op == "*" else left / value  # type: ignore[operator]
        else:
            sums.append(value)
            sum_ops.append(op)
    result = sums[0]
    for op, value in zip(sum_ops, sums[1:], strict=False):
        result = result + value if op == "+" else result - value  # type: ignore[operator]
    if not isinstance(result, obj.Objective):
        raise UnitError(f"{expr!r} has no unit in it: expected at least one LAYER[:CHANNEL] or logits:CLASS")
    return result


def _term(text: str, adapter: ModelAdapter | None, batch: int | None) -> obj.Objective | float:
    text = text.strip()
    if _NUMBER.match(text):
        return float(text)
    if text.startswith("-"):
        return -parse_unit(text[1:], adapter, batch=batch)
    return parse_unit(text, adapter, batch=batch)


# The constructors an objective's repr may call, with the arguments a repr writes.
_CONSTRUCTORS: dict[str, Any] = {
    "channel": obj.channel,
    "neuron": obj.neuron,
    "layer": obj.layer,
    "class_logit": obj.class_logit,
    "class_probability": obj.class_probability,
    "channels": obj.channels,
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


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")

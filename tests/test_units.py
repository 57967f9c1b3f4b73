from __future__ import annotations

import pytest
import torch

import featviz
from featviz.optvis.units import parse_objective, parse_unit


def test_unit_syntax():
    assert repr(parse_unit("blocks.5:51")) == "channel('blocks.5', 51)"
    assert repr(parse_unit("blocks.5:51@3,4")) == "neuron('blocks.5', 51, 3, 4)"
    assert repr(parse_unit("blocks.5:51@")) == "neuron('blocks.5', 51)"
    assert repr(parse_unit("blocks.5")) == "layer('blocks.5')"
    assert repr(parse_unit("logits:hen")) == "class_logit('hen')"
    assert repr(parse_unit("logits:8")) == "class_logit(8)"
    assert repr(parse_unit("probs:Egyptian cat")) == "class_probability('Egyptian cat')"


def test_expressions():
    assert repr(parse_objective("blocks.5:51 + blocks.5:12")) == "channel('blocks.5', 51) + channel('blocks.5', 12)"
    assert repr(parse_objective("logits:hen - 0.5 * logits:cock")) == "class_logit('hen') - 0.5 * class_logit('cock')"
    assert repr(parse_objective("-logits:hen")) == "-class_logit('hen')"


def test_validation_against_the_model(lite0):
    with pytest.raises(featviz.UnknownLayerError, match="blocks.5"):
        parse_unit("blocks.55:1", lite0)
    with pytest.raises(featviz.UnknownClassError, match="hen"):
        parse_unit("logits:hne", lite0)
    with pytest.raises(featviz.UnitError, match="integer channel"):
        parse_unit("blocks.5:x", lite0)
    with pytest.raises(featviz.UnitError, match="X,Y"):
        parse_unit("blocks.5:1@3", lite0)


# -- the grammar, property-tested ---------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from featviz.models.hooks import Activations  # noqa: E402
from featviz.optvis.units import objective_from_repr  # noqa: E402

_SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_VALUES = {"a:0": 1.5, "a:1": -2.0, "a:2": 0.25, "b:0": 3.0, "b:1": 0.75}  # channel means of the fake layers


def _acts() -> Activations:
    a = torch.tensor([1.5, -2.0, 0.25]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    b = torch.tensor([3.0, 0.75]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    return Activations(None, {"a": a, "b": b})  # type: ignore[arg-type]


_number = st.sampled_from(["2", "0.5", "3", "1e-1", ".25", "10"])
_unit = st.sampled_from(sorted(_VALUES))
_space = st.sampled_from(["", " ", "  "])


@st.composite
def _expression(draw, depth=0):
    kind = draw(st.sampled_from(["unit", "number", "binary", "neg", "paren"] if depth < 4 else ["unit", "number"]))
    if kind == "unit":
        return draw(_unit)
    if kind == "number":
        return draw(_number)
    if kind == "neg":
        return f"-{draw(_space)}{draw(_expression(depth + 1))}"
    if kind == "paren":
        return f"({draw(_space)}{draw(_expression(depth + 1))}{draw(_space)})"
    op = draw(st.sampled_from("+-*/"))
    return f"{draw(_expression(depth + 1))}{draw(_space)}{op}{draw(_space)}{draw(_expression(depth + 1))}"


@_SETTINGS
@given(st.text(max_size=60) | st.text(alphabet="ablogitsprobhen:.@,0123456789+-*/() ", max_size=60))
def test_any_string_is_an_objective_or_a_featviz_error(text):
    try:
        assert isinstance(parse_objective(text), featviz.Objective)
    except featviz.FeatvizError:
        pass


@_SETTINGS
@given(_expression())
def test_expressions_follow_python_and_print_and_read_back(text):
    expected_text = text
    for unit, value in _VALUES.items():
        expected_text = expected_text.replace(unit, f"({value})")
    try:
        expected = eval(expected_text)  # the same expression over plain numbers: Python's precedence
    except ZeroDivisionError:
        return
    try:
        obj = parse_objective(text)
    except featviz.UnitError as err:
        assert "no unit" in str(err) or "division by zero" in str(err)
        return
    assert float(obj(_acts())) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    again = objective_from_repr(repr(obj))
    assert repr(again) == repr(obj)
    assert float(again(_acts())) == pytest.approx(float(obj(_acts())), rel=1e-6, abs=1e-9)
    assert repr(parse_objective(text.replace(" ", ""))) == repr(obj)  # spacing does not matter

from __future__ import annotations

import pytest

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

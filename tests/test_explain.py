"""Explaining a prediction on the real embedded model: the class, the channels, the circuit,
the faithfulness checks, the report in a real browser, and bad input."""

from __future__ import annotations

import json

import pytest
import torch
from browser import chromium, images_loaded, watch
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.explain import explain
from featviz.models.hooks import hook_count

pytestmark = pytest.mark.slow


def test_the_top_channels_matter_more_than_random_ones_on_chelsea(chelsea, lite0):
    e = chelsea
    assert e.target == (285, "Egyptian cat") and e.versus is None and e.layer == "blocks.6"
    assert [i for i, _, _ in e.top][:3] == [285, 282, 281]  # Egyptian cat, tiger cat, tabby
    a = e.ablation
    assert a["top_drop"] >= 2 * a["random_mean"], a  # the faithfulness check the report prints
    assert len(a["random_drops"]) >= 20 and a["k"] == 8
    contributions = [ch.contribution for ch in e.positive]
    assert contributions == sorted(contributions, reverse=True) and contributions[-1] > 0
    assert all(ch.contribution < 0 for ch in e.negative)
    assert {ch.layer for ch in e.feeders} == {"blocks.5"} and len(e.circuit) == 4 * 3
    assert {c for _, c, _ in e.circuit} == {ch.channel for ch in e.positive[:4]}
    assert e.gradcam.shape == e.integrated.shape == (224, 224) and e.gradcam.max() > 0
    assert hook_count(lite0.module) == 0 and not lite0.module.training


def test_the_top_channels_matter_more_than_random_ones_on_coffee(lite0):
    e = explain(lite0, "skimage:coffee", render_images=False)
    assert e.target == (967, "espresso")
    assert e.ablation["top_drop"] >= 2 * e.ablation["random_mean"], e.ablation


def test_ablating_the_top_channels_really_changes_the_logit(chelsea, lite0):
    """The reported drop is what zeroing those channels does to the logit, computed here
    without the library's ablation code."""
    from featviz.data.photos import resize

    x = resize(chelsea.photo, 224)[None]
    channels = [ch.channel for ch in chelsea.positive]

    def zero(module, inputs, output):
        output = output.clone()
        output[:, channels] = 0
        return output

    handle = lite0.get_module("blocks.6").register_forward_hook(zero)
    try:
        with torch.no_grad():
            ablated = float(lite0(x)[0, 285])
    finally:
        handle.remove()
    with torch.no_grad():
        whole = float(lite0(x)[0, 285])
    assert abs((whole - ablated) - chelsea.ablation["zero"]["top_drop"]) < 1e-3  # the zeroing figure


def test_another_class_is_explained_against_the_top_one(lite0):
    e = explain(lite0, "skimage:chelsea", target="tiger cat", top=4, render_images=False)
    assert e.target == (282, "tiger cat") and e.versus == (285, "Egyptian cat")
    assert e.ablation["score"] < 0  # the logit difference explained: tiger cat trails Egyptian cat


def test_the_report_opens_in_chromium_with_maps_channels_and_circuit(tmp_path):
    out = tmp_path / "chelsea.html"
    result = CliRunner().invoke(
        main, ["explain", "skimage:chelsea", "--out", str(out), "--size", "64", "--steps", "4", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "Egyptian cat (285)" in result.output
    numbers = json.loads(out.with_suffix(".json").read_text())
    assert numbers["target"] == {"class": 285, "name": "Egyptian cat"} and len(numbers["positive"]) == 8
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "src='http" not in out.read_text() and "src='/" not in out.read_text()  # self-contained
    with chromium() as browser:
        page = browser.new_page()
        errors = watch(page)
        page.goto(out.as_uri())
        assert images_loaded(page, errors) >= 3 + 2 * 16 and not errors, errors
        assert "Egyptian cat" in page.title()
        assert page.locator("#maps img").count() == 2
        cards = page.locator("h2:text-is('Channels for it') + p + .row figure.unit")
        assert cards.count() == 8
        for i in range(8):
            assert cards.nth(i).locator("img").count() == 2  # its visualization and its activation map
        assert page.locator("#circuit image").count() >= 4 + 3 and page.locator("#circuit line").count() == 12
        assert page.locator("#deletion polyline").count() == 3
        assert "drops the score by" in page.inner_text("#ablation")


def test_bad_input_to_explain_is_one_line(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    runner = CliRunner()
    for args, expected in (
        (["skimage:chelsea", "--class", "flying spaghetti"], "unknown class"),
        (["skimage:chelsea", "--layer", "classifier"], "no spatial output"),
        (["skimage:chelsea", "--layer", "blocks.66"], "unknown layer"),
        ([str(text)], "not an image"),
        ([str(tmp_path / "missing.png")], "not found"),
        (["skimage:chelsea", "--out", str(tmp_path / "x.pdf")], "expected the report as an .html file"),
        (["skimage:chelsea", "--top", "0"], "--top"),
    ):
        out = [] if "--out" in args else ["--out", str(tmp_path / "r.html")]
        result = runner.invoke(main, ["explain", *args, *out])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and expected in lines[0], (args, result.output)


def test_visualizations_and_examples_come_from_a_microscope_where_it_has_them(lite0, tmp_path):
    from featviz.explain.core import Channel, _from_microscope
    from featviz.microscope import build

    small = {"units_per_layer": 2, "batch": 2, "size": 64, "steps": 4, "k": 2, "examples_limit": 12}
    build(lite0, tmp_path, layers=["blocks.5", "blocks.6"], progress=False, **small)
    empty = torch.zeros(7, 7)
    channels = [
        Channel("blocks.6", 1, 0.5, empty),
        Channel("blocks.5", 0, 0.2, empty),
        Channel("blocks.6", 9, 0.1, empty),
    ]
    _from_microscope(lite0, channels, tmp_path)
    assert [ch.source for ch in channels] == ["microscope", "microscope", "rendered"]
    assert channels[0].image is not None and channels[0].image.shape == (3, 64, 64)
    assert channels[0].examples == tmp_path / "units" / "blocks.6" / "1" / "examples_top.png"
    assert channels[2].image is None and channels[2].examples is None  # left for the batch render
    with pytest.raises(featviz.FeatvizError, match="holds no catalog.sqlite"):
        _from_microscope(lite0, channels, tmp_path / "nothing")

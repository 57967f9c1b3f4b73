"""Explaining a prediction on the real embedded model: the class, the channels, the circuit,
the neuron groups and their grid, the faithfulness checks, the report in a real browser, and
bad input."""

from __future__ import annotations

import copy
import dataclasses
import io
import json

import pytest
import torch
from browser import chromium, images_loaded, watch
from click.testing import CliRunner
from PIL import Image

import featviz
from featviz.cli import main
from featviz.data.photos import resize
from featviz.explain import explain, numbers, report_html, summary_png
from featviz.models.hooks import capture, hook_count

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
    assert numbers["kind"] == "explain" and numbers["status"] == "done" and "torch" in numbers["versions"]
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


def _between(page: str, start: str, end: str) -> str:
    part = page[page.index(start) :]
    return part[: part.index(end)]


def test_chelsea_has_neuron_groups_of_both_layers_their_grid_and_the_top_group_check(chelsea, lite0):
    g = chelsea.groups
    assert g is not None and chelsea.settings["groups"] == 4
    for found, layer in ((g.layer, "blocks.6"), (g.earlier, "blocks.5")):
        assert found.layer == layer and len(found.directions) == 4 and found.maps.shape == (4, 7, 7)
        assert found.images is None  # render_images=False
        n = found.numbers
        assert float(found.attributions.sum()) + n["unassigned"] == pytest.approx(n["total"], rel=1e-9)
    assert (g.layer.attributions > 0).all()  # every group of the last stage speaks for the cat
    grid = g.grid
    assert (grid.layer, grid.earlier) == ("blocks.6", "blocks.5") and grid.weights.shape == (4, 4)
    assert torch.isfinite(grid.weights).all() and (grid.weights > 0).all()
    assert torch.allclose(grid.weights.sum(1) + grid.unassigned, grid.total, rtol=1e-9)  # the documented sum
    assert (grid.unassigned.abs() < 0.01 * grid.total).all()  # the earlier groups cover nearly all of it

    # group 1's row total, recomputed here with plain autograd instead of captum
    x = resize(chelsea.photo, 224)[None]
    with capture(lite0, ["blocks.5", "blocks.6"]) as cap:
        acts = cap(x)
        score = (acts["blocks.6"][0].clamp(min=0) * g.layer.directions[0].float()[:, None, None]).sum()
        (grad,) = torch.autograd.grad(score, acts["blocks.5"])
    a5 = acts["blocks.5"][0].detach()
    assert float(grid.total[0]) == pytest.approx(float((grad[0] * a5.clamp(min=0)).sum()), rel=1e-4)
    assert float(grid.negative[0]) == pytest.approx(float((grad[0] * a5.clamp(max=0)).sum()), rel=1e-4)

    a = g.ablation
    assert a["group"] == 1 and a["holds"] and a["ratio"] >= 2 and a["top_drop"] >= 2 * a["random_mean"], a
    page = report_html(chelsea).decode()
    section = _between(page, "<h2>Neuron groups</h2>", "<h2>Building blocks</h2>")
    assert section.count("<figure class='group'>") == 4 and section.count("<img") == 4  # maps only: no renders
    text = _between(page, "<p id='group-ablation'>", "</p>")
    assert f"lowers “Egyptian cat” by <b>{a['top_drop']:.2f}</b>" in text and f"{a['ratio']:.1f}x" in text
    svg = _between(page, "id='group-grid'", "</svg>")
    assert svg.count("<line") == 16 and svg.count("<image") == 2 * 8  # 4 + 4 nodes, each a picture and a map
    assert _between(page, "<table id='group-weights'>", "</table>").count("<tr>") == 1 + 4
    data = json.loads(json.dumps(numbers(chelsea)))
    assert len(data["groups"]["grid"]["weights"]) == 4 and data["groups"]["ablation"]["ratio"] == a["ratio"]
    assert hook_count(lite0.module) == 0


def test_group_visualizations_join_the_channels_batch_and_the_report(chelsea, lite0):
    from featviz.explain.core import _visualize

    found = copy.deepcopy(chelsea.groups)  # the session's explanation stays as it is
    channels = [dataclasses.replace(ch, image=None) for ch in chelsea.positive[:2]]
    _visualize(lite0, channels, None, 64, 8, 0, False, found)
    assert found.layer.images.shape == found.earlier.images.shape == (4, 3, 64, 64)
    assert all(ch.image is not None and ch.image.shape == (3, 64, 64) for ch in channels)
    grey = torch.full((1, 3, 64, 64), 0.5)
    for groups in (found.layer, found.earlier):
        with torch.no_grad(), capture(lite0, [groups.layer]) as cap:
            acts, flat = cap(groups.images), cap(grey)
        for g, d in enumerate(groups.directions):  # each image is about its direction, not grey or noise
            objective = featviz.direction(groups.layer, d.float(), cossim_pow=1.0)
            assert float(objective(acts)[g]) > float(objective(flat)[0]), (groups.layer, g)
    e = dataclasses.replace(chelsea, positive=channels, negative=[], feeders=[], circuit=[], groups=found)
    page = report_html(e).decode()
    assert _between(page, "<h2>Neuron groups</h2>", "<h2>Building blocks</h2>").count("<img") == 4 * 2
    height = Image.open(io.BytesIO(summary_png(e))).height
    assert height > Image.open(io.BytesIO(summary_png(dataclasses.replace(e, groups=None)))).height


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 2 groups of 3 hand-built channels
def test_without_groups_explain_has_none_and_bad_counts_are_refused(two_convs, two_convs_photo):
    e = explain(two_convs, two_convs_photo, layer="conv2", earlier="conv1", top=1, groups=0, render_images=False)
    assert e.groups is None and e.settings["groups"] == 0 and "groups" not in e.seconds
    page = report_html(e).decode()
    assert "Neuron groups" not in page and "group-grid" not in page and numbers(e)["groups"] is None
    e = explain(two_convs, two_convs_photo, layer="conv2", earlier="conv1", top=1, groups=2, render_images=False)
    assert e.groups is not None and e.groups.grid.weights.shape == (2, 2)
    assert "<h2>Neuron groups</h2>" in report_html(e).decode()
    for k, expected in ((-1, "expected --groups of at least 0"), (3, r"expected --groups from 1 to 2 \(conv2 has 2 ")):
        with pytest.raises(featviz.FeatvizError, match=expected):
            explain(two_convs, two_convs_photo, layer="conv2", earlier="conv1", groups=k, render_images=False)

"""Every command on every architecture of the matrix (``tests/matrix_models.py``: timm and
torchvision CNNs, ViTs with class, distillation and register tokens, a CLIP tower, Swin,
Mixer, LeViT and a classifier of one's own), random weights, at the smallest sizes the
models allow: render a channel, a neuron and a class, dataset examples, a Microscope of two
units, explain. Each model is built once (a module-scoped fixture, one model alive at a
time); ``bench/matrix.py`` prints the same runs as the models table of docs/guide/models.md."""

from __future__ import annotations

import math

import matrix_models as mm
import pytest
import torch
from PIL import Image

import featviz
from featviz.data.photos import resize
from featviz.models.hooks import capture

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=mm.CASES, ids=lambda c: c.id)
def built(request, tmp_path_factory) -> mm.Prepared:
    return mm.prepare(request.param)


def _model_input(adapter: featviz.ModelAdapter, images: torch.Tensor) -> torch.Tensor:
    """What the model sees of ``images``: a fixed-size model gets them resampled to its size."""
    return resize(images, adapter.input_size) if adapter.fixed_size else images


def test_the_model_is_described_as_its_library_builds_it(built):
    info, case = built.info, built.case
    assert (info["input_size"], info["fixed_size"]) == case.expect, info
    a = built.adapter
    with torch.no_grad():  # it runs at its own size, and one that takes any size at its smallest
        logits = a(torch.full((1, 3, info["input_size"], info["input_size"]), 0.5))
        if not info["fixed_size"]:
            a(torch.full((1, 3, info["min_size"], info["min_size"]), 0.5))
    assert info["classes"] == logits.shape[-1]
    assert len(info["stages"]) >= 3 and len(info["microscope_layers"]) >= 2, info
    assert len(info["explain_layers"]) == 2, info
    if case.name == "custom":
        assert info["stages"] == ["stem", "stage1", "stage2", "stage3"]
        assert a.labels is not None and [a.labels.name(i) for i in range(10)] == mm.CIFAR10


@pytest.mark.parametrize("kind", ["channel", "neuron", "class"])
def test_render_raises_the_objective(built, kind):
    a, layer = built.adapter, built.layer
    unit = {"channel": built.channel, "neuron": built.neuron, "class": "logits:1"}[kind]
    result = mm.render(a, unit, built.size)
    assert result.images.shape == (1, 3, built.size, built.size)
    assert result.curve.shape[0] == mm.STEPS and torch.isfinite(result.final).all()
    assert float(result.final[0]) > float(result.curve[0].mean()), (result.curve, result.final)
    x = _model_input(a, result.images)
    with torch.no_grad():
        if kind == "class":  # the score is logit 1 of what the model sees
            assert torch.allclose(result.final, a(x)[:, 1], rtol=1e-3, atol=1e-3)
        elif kind == "channel":  # and the channel's mean, read where the layer keeps its channels
            with capture(a, [layer]) as cap:
                raw = cap(x)[layer]
            c = int(built.channel.rpartition(":")[2])
            assert torch.allclose(result.final, mm.positions(a, layer, raw)[..., c].mean(1), rtol=1e-3, atol=1e-3)


def test_examples_rank_the_shipped_photos(built):
    from featviz.data.sources import read

    a, layer = built.adapter, built.layer
    found = mm.examples(a, layer, built.size)
    ex = found.layers[layer]
    assert len(found.items) == mm.EXAMPLES and ex.count == mm.EXAMPLES
    assert ex.top.index.shape == (ex.channels, 2) and ex.top.index.max() < mm.EXAMPLES
    assert (ex.top.values[:, 0] >= ex.bottom.values[:, 0]).all()
    images = torch.stack([read(item, found.size) for item in found.items])
    with torch.no_grad(), capture(a, [layer]) as cap:
        peak = mm.positions(a, layer, cap(_model_input(a, images))[layer])[..., 0].amax(1)
    # channel 0's best photo and its peak, found again without the examples' machinery
    assert math.isclose(float(peak.max()), float(ex.top.values[0, 0]), rel_tol=1e-3, abs_tol=1e-4)
    assert float(peak[int(ex.top.index[0, 0])]) == pytest.approx(float(peak.max()), rel=1e-3, abs=1e-4)
    patch = found.patch(layer, 0, 0)
    assert patch.shape[0] == 3 and 0 < patch.shape[1] <= found.size


def test_a_microscope_of_two_units(built, tmp_path):
    from featviz.microscope import Catalog

    out = tmp_path / "microscope"
    report = mm.microscope(built.adapter, built.layer, out, built.size)
    assert report.units == 2 and report.rendered == 2
    catalog = Catalog(out / "catalog.sqlite", readonly=True)
    try:
        units = catalog.units(built.layer)
    finally:
        catalog.close()
    assert [u["channel"] for u in units] == [0, 1]
    for unit in units:
        assert math.isfinite(unit["figures"]["score"])
        for path in unit["files"].values():
            with Image.open(out / path) as image:
                image.load()  # decodes
                assert image.size[0] > 0
        raises = unit["figures"]["drives"]["raises"]
        names = [name for _, name, _ in raises]
        assert len(names) == min(5, built.info["classes"])
        if built.case.name == "custom":
            assert set(names) <= set(mm.CIFAR10)
    pages = ["index.html", f"layers/{built.layer}.html", f"units/{built.layer}/0.html", f"units/{built.layer}/1.html"]
    for page in pages:
        assert (out / page).is_file(), page
    assert "random weights" in (out / f"units/{built.layer}/0.html").read_text() or built.case.name == "custom"


def test_explain_a_photo(built):
    a = built.adapter
    report = mm.explain(a, built.size)
    assert report.layer == built.info["explain_layers"][0]
    assert report.photo.shape == (3, built.side, built.side) and report.gradcam.shape == (built.side, built.side)
    names = [name for _, name, _ in report.top]
    assert report.target[1] == names[0]
    if built.case.name == "custom":
        assert set(names) <= set(mm.CIFAR10) and len(names) == 5
    ablation = report.ablation
    for how in ("mean", "zero", "image_mean"):
        numbers = [ablation[how]["top_drop"], ablation[how]["random_mean"], ablation[how]["random_std"]]
        assert all(isinstance(v, float) and math.isfinite(v) for v in numbers), ablation[how]
    assert math.isfinite(ablation["score"]) and isinstance(ablation["holds"], bool)
    assert len(report.positive) == len(report.negative) == 3 and report.feeders
    for channel in [*report.positive, *report.negative, *report.feeders]:
        assert channel.image is not None and channel.image.shape == (3, built.size, built.size)
        assert math.isfinite(channel.contribution)

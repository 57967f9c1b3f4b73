"""No silent wrong answers from ``explain``: a model with random weights says so in every output
(the HTML report, opened in a real browser, the PNG summary and the JSON), a trained one does
not, and the ablation the verdict reads replaces channels by their mean over reference photos
(beside zeroing and each channel's own mean over the photo), checked by hand on a tiny model
and without the library's ablation code on the real embedded one."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch
from browser import chromium, images_loaded, watch
from PIL import Image

import featviz
from featviz.data.photos import natural_images, resize
from featviz.explain import explain, report_html, write_report
from featviz.models.zoo import RandomWeightsWarning

WAYS = ("mean", "zero", "image_mean")


@pytest.fixture(scope="module")
def random_resnet() -> featviz.ModelAdapter:
    with pytest.warns(RandomWeightsWarning):
        adapter = featviz.load_model("torchvision:resnet18")  # no weights: random, built offline
    adapter.input_size = 64  # a small photo keeps the test fast; the report is the same
    return adapter


def _top_left_rgb(png: bytes) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[4, 4])


@pytest.mark.slow
def test_a_report_of_random_weights_says_so_above_everything_and_in_every_file(random_resnet, tmp_path):
    e = explain(random_resnet, "skimage:chelsea", top=2, render_images=False)
    html_file, png_file, json_file = write_report(e, tmp_path / "random.html")
    numbers = json.loads(json_file.read_text())
    assert numbers["trained"] is False and numbers["warning"] == random_resnet.untrained_note
    assert "random weights" in numbers["warning"]
    assert _top_left_rgb(png_file.read_bytes()) == (197, 34, 31)  # the red band on top of the summary
    with chromium() as browser:
        page = browser.new_page()
        errors = watch(page)
        page.goto(html_file.as_uri())
        images_loaded(page, errors)
        banner = page.locator("#untrained")
        assert banner.is_visible() and not errors, errors
        text = banner.inner_text()
        assert "Random weights: this model was not trained" in text and "has random weights" in text
        assert banner.bounding_box()["y"] < page.locator("h1").bounding_box()["y"]  # above the title
        assert banner.evaluate("b => getComputedStyle(b).backgroundColor") != "rgba(0, 0, 0, 0)"
        # the verdicts carry the caveat too, whatever they say
        assert "nothing about a trained model" in page.inner_text("#ablation")
        assert "see the banner" in page.inner_text("#deletion-verdict")


@pytest.mark.slow
def test_a_report_of_the_trained_embedded_model_has_no_banner(chelsea, tmp_path):
    html_file, png_file, json_file = write_report(chelsea, tmp_path / "chelsea.html")
    numbers = json.loads(json_file.read_text())
    assert numbers["trained"] is True and "warning" not in numbers
    assert _top_left_rgb(png_file.read_bytes()) != (197, 34, 31)  # the summary starts with the photo
    with chromium() as browser:
        page = browser.new_page()
        errors = watch(page)
        page.goto(html_file.as_uri())
        images_loaded(page, errors)
        assert page.locator("#untrained").count() == 0 and page.locator(".banner").count() == 0
        assert "random" not in page.inner_text("h1").lower() and not errors, errors
        assert "trained model" not in page.inner_text("#ablation")


@pytest.mark.slow
def test_chelsea_reports_three_ablations_and_the_verdict_reads_the_reference_mean(chelsea, lite0):
    a = chelsea.ablation
    assert a["method"] == "mean" and a["k"] == 8 and a["draws"] == 50 and a["reference_photos"] == len(natural_images())
    for how in WAYS:
        assert len(a[how]["random_drops"]) == a["draws"], how  # the same number of random sets for each
    for key in ("top_drop", "random_mean", "random_std", "random_drops", "ratio"):
        assert a[key] == a["mean"][key], key  # the headline keys are the verdict's
    assert a["holds"] == (a["mean"]["top_drop"] >= 2 * a["mean"]["random_mean"])
    assert abs(a["mean"]["top_drop"] - a["zero"]["top_drop"]) > 0.01
    assert a["image_mean"]["top_drop"] < 0.5 * a["mean"]["top_drop"]  # keeping each channel's level keeps most

    # the mean ablation recomputed here, without the library's ablation code
    layer = lite0.get_module("blocks.6")
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, out: seen.append(out))
    try:
        with torch.no_grad():
            lite0(torch.stack([resize(p, 224) for p in natural_images().values()]))
    finally:
        handle.remove()
    means = seen[0].mean((0, 2, 3))
    channels = [ch.channel for ch in chelsea.positive]

    def replace(module, inputs, output):
        output = output.clone()
        output[:, channels] = means[channels, None, None]
        return output

    x = resize(chelsea.photo, 224)[None]
    handle = layer.register_forward_hook(replace)
    try:
        with torch.no_grad():
            replaced = float(lite0(x)[0, 285])
    finally:
        handle.remove()
    with torch.no_grad():
        whole = float(lite0(x)[0, 285])
    assert abs((whole - replaced) - a["mean"]["top_drop"]) < 1e-3


class Linear(torch.nn.Module):
    """Two 1x1 convolutions, a global average pool and a linear head: no nonlinearity, so
    every ablation's effect on a logit is a sum over channels of weight x mean activation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 3, 1, bias=False)
        self.conv2 = torch.nn.Conv2d(3, 4, 1, bias=False)
        self.fc = torch.nn.Linear(4, 3, bias=False)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.conv2.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]).view(4, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[2.0, 1, 1, 1], [0, 0, 1, 0], [0, 1, 0, 0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv2(self.conv1(x)).mean((2, 3)))


def test_the_three_ablations_on_a_tiny_linear_model_are_what_the_hand_computes():
    adapter = featviz.load_model(
        Linear(), mean=(0, 0, 0), std=(1, 1, 1), input_size=32, labels=featviz.Labels(["a", "b", "c"])
    )
    photo = torch.empty(3, 32, 32)
    photo[:, :, :16] = torch.tensor([0.9, 0.1, 0.5])[:, None, None]
    photo[:, :, 16:] = torch.tensor([0.7, 0.3, 0.1])[:, None, None]  # mean colour (0.8, 0.2, 0.3)
    reference = torch.stack([torch.full((3, 32, 32), 0.6), torch.full((3, 32, 32), 0.2)])
    reference[1, 2] = 0.4  # mean colour of the reference: (0.4, 0.4, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomWeightsWarning)  # a module passed in: nothing to say
        e = explain(
            adapter, photo, layer="conv2", earlier="conv1", top=2, groups=0, render_images=False, reference=reference
        )  # groups=0: this checks the channels alone
    # channels of conv2 on the photo: means m = (0.8, 0.2, 0.3, 1.3), on the reference r = (0.4, 0.4, 0.5, 1.3);
    # class a = 2 m0 + m1 + m2 + m3 = 3.4 leads; contributions 2 m0, m1, m2, m3: the top 2 are channels 0 and 3
    assert e.target == (0, "a") and [ch.channel for ch in e.positive] == [0, 3] and e.weights == {"trained": None}
    a = e.ablation
    assert a["score"] == pytest.approx(3.4, abs=1e-5) and a["reference_photos"] == 2
    assert a["zero"]["top_drop"] == pytest.approx(2 * 0.8 + 1.3, abs=1e-5)  # w (m - 0)
    assert a["mean"]["top_drop"] == pytest.approx(2 * (0.8 - 0.4) + (1.3 - 1.3), abs=1e-5)  # w (m - r)
    assert a["image_mean"]["top_drop"] == pytest.approx(0.0, abs=1e-5)  # the pooled head sees the same means
    # every random set is a pair of channels, the same pairs for each ablation: find each pair from its
    # zeroing drop (the six pair sums differ) and check the other two drops against the hand's
    zero = {0: 1.6, 1: 0.2, 2: 0.3, 3: 1.3}
    mean = {0: 0.8, 1: -0.2, 2: -0.2, 3: 0.0}
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    for m, z, flat in zip(*(a[how]["random_drops"] for how in WAYS), strict=True):  # WAYS: mean, zero, image_mean
        i, j = min(pairs, key=lambda p: abs(zero[p[0]] + zero[p[1]] - z))
        assert z == pytest.approx(zero[i] + zero[j], abs=1e-3) and m == pytest.approx(mean[i] + mean[j], abs=1e-3)
        assert flat == pytest.approx(0.0, abs=1e-3)
    # zeroing alone would call the attribution weak; the verdict reads the mean over the reference
    assert a["zero"]["top_drop"] < 2 * a["zero"]["random_mean"]
    assert (
        a["mean"]["top_drop"] >= 2 * a["mean"]["random_mean"] and a["holds"] and a["top_drop"] == a["mean"]["top_drop"]
    )
    assert "the channel attribution holds" in report_html(e).decode()

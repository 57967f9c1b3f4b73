"""Diversity sets: the penalty makes the images of one unit differ from each other."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.data.photos import load_image
from featviz.models.hooks import capture
from featviz.tools.diverse import diversity_layer


def _gram_similarity(adapter, layer, images):
    """Mean cosine similarity of the images' Gram matrices at ``layer``, over all pairs."""
    with capture(adapter, [layer]) as cap, torch.no_grad():
        act = cap(images)[layer].flatten(2)
    gram = torch.nn.functional.normalize((act @ act.transpose(1, 2)).flatten(1), dim=1)
    sim = gram @ gram.T
    n = images.shape[0]
    return ((sim.sum() - sim.diagonal().sum()) / (n * (n - 1))).item()


def _channel(adapter, images, layer="blocks.4", index=17):
    with capture(adapter, [layer]) as cap, torch.no_grad():
        return cap(images)[layer][:, index].mean(dim=(1, 2))


@pytest.mark.slow
def test_diversity_penalty_makes_images_differ(lite0):
    kw = dict(steps=32, size=96, seed=2, progress=False)
    plain = featviz.render(lite0, "blocks.4:17", batch=3, **kw)
    varied = featviz.diverse(lite0, "blocks.4:17", 3, **kw)
    assert varied.images.shape == (3, 3, 96, 96)
    # Less alike at the unit's layer (what the term optimizes) and at an earlier one it does not see.
    for layer in ("blocks.4", "blocks.2"):
        s_plain, s_varied = (_gram_similarity(lite0, layer, r.images) for r in (plain, varied))
        assert s_varied < s_plain - 0.1, (layer, s_plain, s_varied)
    # Each image still drives the unit, far above a grey image.
    grey = _channel(lite0, torch.full((1, 3, 96, 96), 0.5))
    assert (_channel(lite0, varied.images) > grey + 5).all()


def test_diversity_layer_defaults():
    adapter = featviz.load_model("efficientnet_lite0")
    assert diversity_layer(adapter, featviz.parse_objective("blocks.5:3", adapter)) == "blocks.5"
    assert diversity_layer(adapter, featviz.parse_objective("logits:hen", adapter)) == "blocks.3"


def test_cli_diversity_writes_a_grid_and_each_image(tmp_path):
    target = tmp_path / "set.png"
    args = ["render", "efficientnet_lite0", "blocks.2:3", "--diversity", "3", "--steps", "3", "--size", "64"]
    out = CliRunner().invoke(main, [*args, "--out", str(target), "--quiet"])
    assert out.exit_code == 0, out.output
    grid = load_image(target)
    assert grid.shape[-1] > 3 * 64 and grid.shape[-2] > 64  # one row of three tiles, labelled
    for i in range(3):
        assert load_image(tmp_path / f"set_{i}.png").shape == (3, 64, 64)
    out = CliRunner().invoke(main, [*args[:3], "--diversity", "1"])
    assert out.exit_code == 2

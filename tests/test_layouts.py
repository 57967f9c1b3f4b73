"""Layouts are found by looking at how a model computes a layer, never from its rank: a Swin
stage's [H, W, C] is channels last, and channel c of it is really channel c."""

from __future__ import annotations

import warnings

import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.models.hooks import capture
from featviz.models.layers import layer_table, output_shape


def _random(name: str) -> featviz.ModelAdapter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return featviz.load_model(name)


@pytest.fixture(scope="module")
def swin() -> featviz.ModelAdapter:
    return _random("torchvision:swin_t")


def test_each_family_s_layers_get_their_own_layout(swin, lite0):
    kinds = {(r.name): (r.layout, r.channels) for r in layer_table(swin)}
    stages = {f"features.{i}": kinds[f"features.{i}"] for i in range(8)}
    assert stages == {
        "features.0": ("NHWC", 96),  # a convolution, then torchvision's Permute, then a LayerNorm
        "features.1": ("NHWC", 96),
        "features.2": ("NHWC", 192),
        "features.3": ("NHWC", 192),
        "features.4": ("NHWC", 384),
        "features.5": ("NHWC", 384),
        "features.6": ("NHWC", 768),
        "features.7": ("NHWC", 768),
    }
    assert kinds["features.0.0"] == ("NCHW", 96) and kinds["permute"] == ("NCHW", 768)
    assert kinds["head"] == ("vector", 1000)
    convnext = {r.name: r.layout for r in layer_table(_random("timm:convnext_atto"))}
    # timm's LayerNorm2d normalizes channels first: its stem and stages stay NCHW
    assert convnext["stem.1"] == convnext["stages.2"] == convnext["stages.2.blocks.0"] == "NCHW"
    tv_convnext = {r.name: r.layout for r in layer_table(_random("torchvision:convnext_tiny"))}
    # inside torchvision's block: permute -> LayerNorm -> Linear run channels last, then back
    assert tv_convnext["features.1.0.block.2"] == "NHWC" and tv_convnext["features.1.0"] == "NCHW"
    vit = {r.name: (r.layout, r.channels) for r in layer_table(_random("timm:vit_tiny_patch16_224"))}
    assert vit["blocks.3"] == ("tokens", 192) and vit["patch_embed.proj"] == ("NCHW", 192)
    lite = {r.layout for r in layer_table(lite0) if r.name.startswith("blocks")}
    assert lite == {"NCHW"}


def test_a_channel_of_a_channels_last_stage_is_that_channel(swin):
    assert output_shape(swin, "features.5", 224) == (384, 14, 14)
    assert swin.fixed_size  # torchvision's metadata: a render is resampled to 224 px for the model
    result = featviz.render(swin, "features.5:3", steps=2, size=224, progress=False)
    with torch.no_grad(), capture(swin, ["features.5"]) as cap:
        raw = cap(result.images)["features.5"]  # [1, 14, 14, 384]
    assert raw.shape[-1] == 384
    assert torch.allclose(result.final, raw[..., 3].mean((1, 2)), atol=1e-5)
    assert not torch.allclose(raw[..., 3].mean(), raw[:, 3].mean())  # what reading H as channels gave
    neuron = featviz.render(swin, "features.5:3@1,2", steps=1, size=224, progress=False)
    with torch.no_grad(), capture(swin, ["features.5"]) as cap:
        raw = cap(neuron.images)["features.5"]
    assert torch.allclose(neuron.final, raw[:, 2, 1, 3], atol=1e-5)  # y=2, x=1 of the 14x14 grid


def test_layers_prints_the_layout_and_a_microscope_refuses_a_layer_without_positions(tmp_path):
    shown = CliRunner().invoke(main, ["layers", "torchvision:swin_t", "--grep", "features.5", "--depth", "1"])
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.output.splitlines() if line.startswith("features.5 "))
    assert row.split()[-3:] == ["NHWC", "384", "stage"], row
    built = CliRunner().invoke(
        main, ["microscope", "build", "torchvision:swin_t", "--out", str(tmp_path / "ms"), "--layers", "flatten"]
    )
    assert built.exit_code == 2 and "has no channels at positions" in built.output, built.output
    assert not (tmp_path / "ms").exists()

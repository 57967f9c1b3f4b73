"""Exact algebra on a tiny hand-built model, where every activation is known."""

from __future__ import annotations

import pytest
import torch

import featviz
from featviz.models.hooks import capture
from featviz.optvis import objectives as O


def run(adapter, objective, images):
    with capture(adapter, objective.layers) as cap:
        acts = cap(images)
        acts["input"] = images
        return objective(acts)


@pytest.fixture()
def images():
    torch.manual_seed(0)
    return torch.rand(2, 3, 8, 8)


def test_atoms_compute_known_values(tiny, images):
    red, green = images[:, 0], images[:, 1]
    assert torch.allclose(run(tiny, O.channel("conv", 0), images), red.mean((1, 2)))
    assert torch.allclose(run(tiny, O.neuron("conv", 1, 2, 3), images), green[:, 3, 2])
    assert torch.allclose(run(tiny, O.neuron("conv", 1), images), green[:, 4, 4])  # centre
    assert torch.allclose(run(tiny, O.layer("conv"), images), torch.stack([red, green], 1).pow(2).mean((1, 2, 3)))
    logits = torch.stack([red.mean((1, 2)), green.mean((1, 2)), (red + green).mean((1, 2))], 1)
    assert torch.allclose(run(tiny, O.class_logit("c"), images), logits[:, 2])
    assert torch.allclose(run(tiny, O.class_probability(1), images), logits.softmax(1)[:, 1])
    assert torch.allclose(
        run(tiny, O.channels("conv", {0: 2.0, 1: -1.0}), images), 2 * red.mean((1, 2)) - green.mean((1, 2))
    )
    assert torch.allclose(run(tiny, O.direction("conv", [1.0, 1.0]), images), (red + green).mean((1, 2)))
    assert torch.allclose(run(tiny, O.l2(), images), (images - 0.5).pow(2).mean((1, 2, 3)).sqrt())
    assert torch.allclose(run(tiny, O.l1(0.0), images), images.abs().mean((1, 2, 3)))


def test_algebra_is_exact(tiny, images):
    a, b = O.channel("conv", 0), O.channel("conv", 1)
    va, vb = run(tiny, a, images), run(tiny, b, images)
    assert torch.allclose(run(tiny, a + b, images), va + vb)
    assert torch.allclose(run(tiny, a - 2 * b, images), va - 2 * vb)
    assert torch.allclose(run(tiny, a * b / 4, images), va * vb / 4)
    assert torch.allclose(run(tiny, 1 - a, images), 1 - va)
    assert torch.allclose(run(tiny, 2 / a, images), 2 / va)
    assert torch.allclose(run(tiny, -a, images), -va)
    assert torch.allclose(run(tiny, sum([a, b, a]), images), 2 * va + vb)


def test_batch_selector_and_batched(tiny, images):
    a = O.channel("conv", 0, batch=1)
    out = run(tiny, a, images)
    assert out[0] == 0 and out[1] == images[1, 0].mean()
    both = O.batched([O.channel("conv", 0), O.channel("conv", 1)])
    assert torch.allclose(run(tiny, both, images), torch.stack([images[0, 0].mean(), images[1, 1].mean()]))
    with pytest.raises(featviz.UnitError, match="batch index 5"):
        run(tiny, O.channel("conv", 0, batch=5), images)


def test_repr_reads_like_the_code():
    obj = O.channel("blocks.5", 51) - 0.05 * O.l2()
    assert repr(obj) == "channel('blocks.5', 51) - 0.05 * l2()"
    assert (
        repr(O.channel("a", 1) - (O.channel("a", 2) + O.channel("a", 3)))
        == "channel('a', 1) - (channel('a', 2) + channel('a', 3))"
    )
    assert repr(-(O.layer("a") + 1)) == "-(layer('a') + 1)"
    assert obj.layers == ("blocks.5", "input")


def test_objectives_are_immutable():
    obj = O.channel("conv", 0)
    with pytest.raises(AttributeError):
        obj.name = "x"
    combined = obj + O.channel("conv", 1)
    assert repr(obj) == "channel('conv', 0)" and combined is not obj


def test_diversity_rewards_different_images(tiny):
    same = torch.rand(1, 3, 8, 8).repeat(3, 1, 1, 1)
    different = torch.rand(3, 3, 8, 8)
    different[0, 1] = 0  # images with different channel mixes
    different[1, 0] = 0
    d_same = run(tiny, O.diversity("conv"), same)
    d_diff = run(tiny, O.diversity("conv"), different)
    assert torch.allclose(d_same, torch.full((3,), -1.0), atol=1e-5)
    assert (d_diff > d_same).all()


def test_channel_out_of_range_gives_count(tiny, images):
    with pytest.raises(featviz.UnitError, match="2 channels"):
        run(tiny, O.channel("conv", 7), images)


def test_token_layers_of_a_vit_get_channel_and_neuron_objectives():
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, depth=2)
    adapter = featviz.load_model(vit)
    x = torch.rand(1, 3, 64, 64)
    with capture(adapter, ["blocks.1"]) as cap:
        tokens = cap(x)["blocks.1"]  # [1, 1 + 16, 192]
        acts = cap(x)
    assert tokens.shape == (1, 17, 192)
    grid = tokens[:, 1:, :].reshape(1, 4, 4, 192)  # class token excluded, row-major grid
    assert torch.allclose(O.channel("blocks.1", 5)(acts), grid[..., 5].mean((1, 2)))
    assert torch.allclose(O.neuron("blocks.1", 5, 3, 1)(acts), grid[:, 1, 3, 5])
    result = featviz.render(adapter, "blocks.1:5", recipe="lucid", steps=24, size=64, progress=False)
    assert result.curve[-1, 0] > result.curve[0, 0]

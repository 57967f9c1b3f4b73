"""ReLU gradient redirection: exact rules on hand-built inputs, then the real model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import featviz
from featviz.models.hooks import hook_count
from featviz.optvis.redirect import redirect_relus


def _grad(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    module(x + 0).backward(upstream)  # + 0: an in-place activation may not write to a leaf
    assert x.grad is not None
    return x.grad


def test_dead_image_gets_the_gradient_that_moves_it_back_into_range():
    relu6 = nn.ReLU6(inplace=True)
    x = torch.tensor([[-1.0, -2.0, 7.0, 8.0], [1.0, -1.0, 2.0, 7.0]]).view(2, 4, 1, 1)
    # Minimizing: a negative gradient raises the input, a positive one lowers it.
    g = torch.tensor([[-1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]]).view(2, 4, 1, 1)
    plain = _grad(relu6, x, g)
    assert torch.equal(plain[0].flatten(), torch.zeros(4))  # image 0 is dead: no gradient at all
    with redirect_relus(nn.Sequential(relu6)) as r:
        assert r.count == 1 and not relu6.inplace
        redirected = _grad(relu6, x, g)
    # Image 0: pass what raises -1 and what lowers 7 back into range, block the rest.
    assert redirected[0].flatten().tolist() == [-1.0, 0.0, 1.0, 0.0]
    # Image 1 already gets a gradient: it keeps the ordinary one.
    assert torch.equal(redirected[1], plain[1])
    assert relu6.inplace and hook_count(relu6) == 0  # restored on exit
    assert torch.equal(relu6(x.clone()), x.clamp(0, 6))  # forward values never change


def test_plain_relu_has_no_upper_limit():
    relu = nn.ReLU()
    x = torch.tensor([-1.0, -1.0, -1.0]).view(1, 3)
    g = torch.tensor([-2.0, 3.0, -1.0]).view(1, 3)
    with redirect_relus(relu):
        assert _grad(relu, x, g).flatten().tolist() == [-2.0, 0.0, -1.0]


@pytest.mark.slow
def test_dead_unit_stays_grey_without_redirection_and_rises_with_it(lite0):
    acts = [m for m in lite0.module.modules() if isinstance(m, nn.ReLU6)]
    flags = [m.inplace for m in acts]
    before = hook_count(lite0.module)
    unit = "blocks.4.2.bn2:0"  # every ReLU6 on its path is below zero for seed 0's start
    dead = featviz.render(lite0, unit, steps=24, size=128, progress=False)
    assert dead.curve.abs().max() == 0 and dead.images.std() < 0.01  # a grey square
    woken = featviz.render(lite0, unit, redirect_relu=16, steps=24, size=128, progress=False)
    curve = woken.curve[:, 0]
    assert curve[-4:].mean() > curve[:2].mean() + 0.3 and woken.final[0] > 0.2
    assert woken.images.std() > 5 * dead.images.std(), (woken.images.std(), dead.images.std())
    assert woken.record["recipe"]["redirect_relu"] == 16
    assert hook_count(lite0.module) == before
    assert [m.inplace for m in acts] == flags
    again = featviz.render(lite0, unit, redirect_relu=16, steps=24, size=128, progress=False)
    assert torch.equal(woken.images, again.images)  # the same seed, the same pixels

"""A user's own pieces are first-class: a transform, a parameterization and an objective
registered by name are recorded by name and arguments and replay to the same pixels; a
plain function of the activations is an objective, any function or module of a batch a
transform, and torch.optim's optimizers (class or instance) run and replay."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import torch

import featviz
from featviz.optvis import objectives as O
from featviz.optvis.param import Parameterization
from featviz.optvis.transforms import Compose, RandomRoll, Transform


@featviz.register("transform", "user_shift")
class Shift(Transform):
    """Rolls the batch ``pixels`` to the right (no ``settings``: its arguments are recorded)."""

    def __init__(self, pixels: int = 2) -> None:
        super().__init__()
        self.pixels = pixels

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return images.roll(self.pixels, dims=-1)


@featviz.register("param", "user_sigmoid")
class SigmoidPixels(Parameterization):
    """Pixels as the sigmoid of free logits, a random start of ``scale``."""

    def __init__(self, size: int, batch: int = 1, generator: torch.Generator | None = None, scale: float = 0.1) -> None:
        super().__init__(size, batch)
        g = generator or torch.Generator().manual_seed(0)
        self.logits = torch.nn.Parameter(scale * torch.randn(self.batch, 3, self.height, self.width, generator=g))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


@featviz.register("objective")
def centre_and_mean(layer: str, index: int) -> O.Objective:
    return O.neuron(layer, index) + 0.5 * O.channel(layer, index)


def _again(result: featviz.RenderResult, **objects: object) -> featviz.RenderResult:
    return featviz.replay(json.loads(json.dumps(result.record)), progress=False, **objects)


def test_registered_pieces_are_recorded_by_name_and_replay(lite0):
    param = SigmoidPixels(64, 1, generator=torch.Generator().manual_seed(4), scale=0.2)
    objective = centre_and_mean("blocks.2", 5) - 0.01 * O.l2()
    tfm = Compose([Shift(3), RandomRoll(4)])
    result = featviz.render(lite0, objective, param=param, transforms=tfm, steps=4, progress=False)
    rec = result.record
    assert rec["unit"] == "centre_and_mean('blocks.2', 5) - 0.01 * l2()" and rec["needs"] == []
    assert rec["recipe"]["param"] == "user_sigmoid" and rec["recipe"]["param_kwargs"] == {"scale": 0.2}
    assert rec["recipe"]["transforms"] == [["user_shift", {"pixels": 3}], ["roll", {"pixels": 4}]]
    assert rec["param_seed"] == 4 and result.curve[-1, 0] > result.curve[0, 0]
    assert torch.equal(_again(result).images, result.images)
    # and in a recipe, by name, like featviz's own
    recipe = featviz.get_recipe("default").replace(transforms=(("user_shift", {"pixels": 1}),), param="user_sigmoid")
    by_name = featviz.render(lite0, "blocks.2:5", recipe=recipe, steps=3, size=64, progress=False)
    assert torch.equal(_again(by_name).images, by_name.images)


def test_a_plain_function_is_an_objective(lite0):
    def fifth_channel(acts):
        return acts["blocks.2"][:, 5].mean((1, 2))

    result = featviz.render(lite0, fifth_channel, steps=4, size=64, progress=False)
    assert result.record["unit"] == "<function test_a_plain_function_is_an_objective.<locals>.fifth_channel>"
    assert result.record["needs"] == ["objective"] and result.curve[-1, 0] > result.curve[0, 0]
    same = featviz.render(lite0, O.channel("blocks.2", 5), steps=4, size=64, progress=False)
    assert torch.equal(result.images, same.images)  # the same score, the same layers captured
    with pytest.raises(featviz.FeatvizError, match="pass objective=... to replay"):
        _again(result)
    assert torch.equal(_again(result, objective=fifth_channel).images, result.images)
    with pytest.raises(featviz.FeatvizError, match="blocks.22"):
        featviz.render(lite0, lambda acts: acts["blocks.22"].mean(), steps=1, progress=False)


def test_torch_optimizers_and_plain_transforms(lite0):
    by_class = featviz.render(lite0, "blocks.2:5", optimizer=torch.optim.SGD, lr=0.5, steps=3, size=64, progress=False)
    assert by_class.record["recipe"]["optimizer"] == "torch.SGD" and by_class.record["needs"] == []
    assert torch.equal(_again(by_class).images, by_class.images)

    param = featviz.FourierImage(64, 1, generator=torch.Generator().manual_seed(0))
    sgd = torch.optim.SGD(param.parameters(), lr=0.3, momentum=0.9)
    by_instance = featviz.render(lite0, "blocks.2:5", param=param, optimizer=sgd, steps=3, progress=False)
    rec = by_instance.record["recipe"]
    assert (rec["optimizer"], rec["lr"], rec["optimizer_kwargs"]) == ("torch.SGD", 0.3, {"momentum": 0.9})
    assert torch.equal(_again(by_instance).images, by_instance.images)
    with pytest.raises(featviz.FeatvizError, match="must hold the tensors of the param= passed with it"):
        featviz.render(lite0, "blocks.2:5", optimizer=sgd, steps=1, size=64, progress=False)

    flip = featviz.render(lite0, "blocks.2:5", transforms=[torch.nn.Identity(), lambda x: x.flip(-1)], steps=3, size=64)
    assert flip.record["needs"] == ["transforms"] and flip.curve[-1, 0] > flip.curve[0, 0]


def test_render_takes_a_recipe_and_overrides(lite0):
    params = list(inspect.signature(featviz.render).parameters.values())
    assert [p.name for p in params] == ["model", "objective", "recipe", "overrides"]
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD

    recipe = featviz.RECIPES["fast"].replace(steps=3, size=48)
    result = featviz.render(
        lite0, "blocks.2:5", recipe, lr_schedule="constant", penalties=[(0.05, "tv")], progress=False
    )
    rec = result.record["recipe"]
    assert (rec["steps"], rec["size"], rec["lr_schedule"], rec["penalties"]) == (3, 48, "constant", [[0.05, "tv"]])
    assert torch.equal(_again(result).images, result.images)
    with pytest.raises(featviz.FeatvizError, match="render takes no stepz.*Did you mean: 'steps'"):
        featviz.render(lite0, "blocks.2:5", recipe, stepz=3)


def test_the_built_in_optimizers_are_torch_optims_that_leave_dynamo_unimported():
    """adam, sgd, nadam, adamw and normalized are torch.optim.Optimizer subclasses
    (``isinstance`` of torch's own class) whose steps do not import torch._dynamo (~3 s)."""
    code = (
        "import sys, torch, featviz\n"
        "from featviz.optvis.optim import OPTIMIZERS\n"
        "r = featviz.render('efficientnet_lite0', 'blocks.1:3', steps=2, size=64, optimizer='adam',"
        " lr_schedule='cosine', progress=False)\n"
        "for name, cls in OPTIMIZERS.items():\n"
        "    p = torch.nn.Parameter(torch.ones(3)); o = cls([p], lr=0.1); p.sum().backward(); o.step(); o.zero_grad()\n"
        "    assert isinstance(o, torch.optim.Optimizer), name\n"
        "assert isinstance(OPTIMIZERS['adam']([torch.nn.Parameter(torch.ones(1))], lr=1), torch.optim.Adam)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_taken_name_or_an_unknown_kind_is_refused():
    with pytest.raises(featviz.FeatvizError, match="'roll' is taken"):
        featviz.register("transform", "roll")(Shift)
    with pytest.raises(featviz.FeatvizError, match="unknown kind of component 'loss'"):
        featviz.register("loss")
    with pytest.raises(featviz.FeatvizError, match="subclass of Transform"):
        featviz.register("transform", "not_a_transform")(lambda x: x)

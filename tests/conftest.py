from __future__ import annotations

from pathlib import Path

import pytest
import torch

import featviz
from featviz.data.photos import natural_images, resize
from featviz.microscope import Catalog, build

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def lite0() -> featviz.ModelAdapter:
    return featviz.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def chelsea(lite0):
    """The explanation of scikit-image's chelsea on the embedded model (no visualizations)."""
    from featviz.explain import explain

    return explain(lite0, "skimage:chelsea", render_images=False)


@pytest.fixture(scope="session")
def photos() -> torch.Tensor:
    """The natural photos shipped with scikit-image / scikit-learn, 128 px."""
    return torch.stack([resize(img, 128) for img in natural_images().values()])


@pytest.fixture(scope="session")
def photos224() -> torch.Tensor:
    return torch.stack([resize(img, 224) for img in natural_images().values()])


class Tiny(torch.nn.Module):
    """A hand-built two-layer model whose activations are known exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).view(2, 3, 1, 1))
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(2, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [1.0, 1.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(1))


@pytest.fixture()
def tiny() -> featviz.ModelAdapter:
    return featviz.load_model(
        Tiny(), mean=(0, 0, 0), std=(1, 1, 1), input_size=8, labels=featviz.Labels(["a", "b", "c"])
    )


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """A small Microscope of the embedded model (2 units of blocks.1 and blocks.3, 4 steps at 64 px),
    built once; a test that writes into it works on a copy."""
    out = tmp_path_factory.mktemp("microscope")
    small = {"units_per_layer": 2, "batch": 2, "size": 64, "steps": 4, "k": 2, "examples_limit": 12}
    adapter = featviz.load_model("efficientnet_lite0")
    build(adapter, out, layers=["blocks.1", "blocks.3"], progress=False, **small)
    # the unit of blocks.1 that drives blocks.3:0 most, so that the walk can follow the link
    cat = Catalog(out / "catalog.sqlite", readonly=True)
    top = cat.units("blocks.3")[0]["figures"]["inputs"][0][0]
    cat.close()
    if top > 1:
        featviz.microscope.render_units(adapter, out, "blocks.1", [top])
        featviz.microscope.write_site(out)
    return out


class TwoConvs(torch.nn.Module):
    """Two hand-built 1x1 convolutions, a mean pool and a linear head: conv1 gives
    ``(x0, x1, x0 - x1)`` (negative where x1 > x0), conv2 ``(3 x0 - x1, x0 + x1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 3, 1, bias=False)
        self.conv2 = torch.nn.Conv2d(3, 2, 1, bias=False)
        self.fc = torch.nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, -1, 0]]).view(3, 3, 1, 1))
            self.conv2.weight.copy_(torch.tensor([[2.0, 0, 1], [0, 2, 1]]).view(2, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 0], [0, 1], [1, 1]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv2(self.conv1(x)).mean((2, 3)))


@pytest.fixture()
def two_convs() -> featviz.ModelAdapter:
    return featviz.load_model(
        TwoConvs(), mean=(0, 0, 0), std=(1, 1, 1), input_size=32, labels=featviz.Labels(["a", "b", "c"])
    )


@pytest.fixture()
def two_convs_photo() -> torch.Tensor:
    """A ``[3, 32, 32]`` photo on which ``two_convs``' conv2 is above 0 everywhere (x0 >= 0.4,
    x1 <= 0.6) and conv1's third channel changes sign."""
    photo = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    photo[0] = 0.4 + 0.6 * photo[0]
    photo[1] = 0.6 * photo[1]
    return photo

from __future__ import annotations

import pytest
import torch

import featviz
from featviz.data.photos import natural_images, resize

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def lite0() -> featviz.ModelAdapter:
    return featviz.load_model("efficientnet_lite0")


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

"""A model's inputs described from what its library knows: timm's pretrained_cfg and
torchvision's weights metadata (no download), else found by trying."""

from __future__ import annotations

import warnings

import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.models.zoo import smallest_input


def _random(name: str) -> featviz.ModelAdapter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return featviz.load_model(name)


@pytest.mark.parametrize(
    ("name", "size", "smallest", "fixed"),
    [
        ("torchvision:inception_v3", 299, 75, False),  # the weights' metadata: crop 299, min_size 75
        ("torchvision:vit_b_16", 224, None, True),  # its smallest size is its crop
        ("torchvision:googlenet", 224, 15, False),
        ("timm:mixer_s16_224", 224, None, True),  # pretrained_cfg's fixed_input_size
        ("timm:levit_128s", 224, None, True),
        ("timm:swin_tiny_patch4_window7_224", 224, None, True),
        ("timm:resnet18", 224, 32, False),
    ],
)
def test_input_sizes_come_from_the_library(name, size, smallest, fixed):
    adapter = _random(name)
    assert (adapter.input_size, adapter.fixed_size) == (size, fixed)
    if smallest is not None:
        assert adapter.min_size == smallest


def test_an_inception_s_smallest_input_is_found_by_trying():
    import timm

    module = timm.create_model("inception_v3").eval()
    assert smallest_input(module, 299) == 75  # what torchvision's metadata says of its own
    with torch.no_grad():
        module(torch.zeros(1, 3, 75, 75))
        with pytest.raises(RuntimeError):
            module(torch.zeros(1, 3, 74, 74))


def test_fixed_size_models_render_at_any_size_and_see_their_own(tmp_path):
    mixer = _random("timm:mixer_s16_224")
    seen = []
    handle = mixer.module.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        result = featviz.render(mixer, "blocks.3:0", steps=2, size=64, progress=False)
    finally:
        handle.remove()
    assert result.images.shape[-2:] == (64, 64) and set(seen) == {(224, 224)}
    refused = CliRunner().invoke(
        main, ["render", "torchvision:inception_v3", "Mixed_6a:0", "--size", "64", "-o", f"{tmp_path}/i.png"]
    )
    assert refused.exit_code == 2 and "expected at least 75x75 pixels" in refused.output, refused.output


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("efficientnet_lite0", [f"blocks.{i}" for i in range(7)]),  # its own feature_info: every block group
        ("timm:resnet18", ["act1", "layer1", "layer2", "layer3", "layer4"]),  # timm's feature_info
        ("torchvision:resnet18", ["relu", "layer1", "layer2", "layer3", "layer4"]),  # found by looking
        ("torchvision:vgg16", ["features.3", "features.8", "features.15", "features.22", "features.29"]),
        ("torchvision:googlenet", ["conv1", "conv3", "inception3b", "inception4e", "inception5b"]),
        ("torchvision:swin_t", ["features.1", "features.3", "features.5", "features.7"]),
        ("torchvision:vit_b_16", [f"encoder.layers.encoder_layer_{i}" for i in range(12)]),
    ],
)
def test_stages_come_from_the_library_or_from_how_the_model_narrows(name, expected):
    from featviz.models.layers import stages

    assert stages(_random(name)) == expected


class TenClasses(torch.nn.Module):
    """A classifier of one's own: 10 classes, 32 px inputs, a Hugging Face style output."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> object:
        logits = self.head(self.features(x).mean((2, 3)))
        return type("Output", (), {"logits": logits})()


def test_a_classifier_of_one_s_own_names_its_classes_from_a_file(tmp_path):
    names = [f"part {i}" for i in range(10)]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    torch.manual_seed(0)
    model = featviz.load_model(TenClasses(), input_size=32, labels=tmp_path / "labels.txt")
    assert model.labels is not None and model.labels.name(3) == "part 3"
    top = model.predict(torch.rand(2, 3, 32, 32), k=3)
    assert all(name.startswith("part ") for row in top for _, name, _ in row)
    result = featviz.render(model, "logits:part 3", steps=4, size=32, progress=False)
    with torch.no_grad():
        assert torch.allclose(result.final, model(result.images)[:, 3], atol=1e-5)  # .logits read
    unnamed = featviz.load_model(TenClasses(), input_size=32)
    assert unnamed.labels is None and len(unnamed.predict(torch.rand(1, 3, 32, 32), k=20)[0]) == 10
    (tmp_path / "nine.txt").write_text("\n".join(names[:9]))
    with pytest.raises(featviz.FeatvizError, match="9 class names .* which has 10 outputs"):
        featviz.load_model(TenClasses(), input_size=32, labels=tmp_path / "nine.txt")


def test_labels_on_the_command_line_are_checked_and_shown(tmp_path):
    names = [f"thing {i}" for i in range(1000)]
    (tmp_path / "labels.txt").write_text("\n".join(names))
    shown = CliRunner().invoke(main, ["predict", "skimage:coffee", "--labels", str(tmp_path / "labels.txt")])
    assert shown.exit_code == 0 and "thing 967" in shown.output, shown.output  # espresso, renamed
    (tmp_path / "short.txt").write_text("a\nb\n")
    refused = CliRunner().invoke(main, ["predict", "skimage:coffee", "--labels", str(tmp_path / "short.txt")])
    assert refused.exit_code == 2 and "2 class names for efficientnet_lite0, which has 1000 outputs" in refused.output


def test_one_command_renders_a_unit_across_checkpoints(tmp_path):
    import json

    import imageio.v3 as iio
    import torchvision

    files = []
    for seed in (0, 1):
        torch.manual_seed(seed)  # two "checkpoints": the same architecture, other weights
        files.append(tmp_path / f"step{seed}.pth")
        torch.save(torchvision.models.squeezenet1_1().state_dict(), files[-1])
    out, gif = tmp_path / "strip.png", tmp_path / "strip.gif"
    args = ["checkpoints", "torchvision:squeezenet1_1", "features.3:5", str(files[0]), str(files[1]), str(files[0])]
    result = CliRunner().invoke(
        main, [*args, "--steps", "4", "--size", "64", "-o", str(out), "--animate", str(gif), "-q"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert [c["path"] for c in record["checkpoints"]] == [str(files[0]), str(files[1]), str(files[0])]
    assert record["checkpoints"][0]["sha256"] != record["checkpoints"][1]["sha256"]
    assert len(record["renders"]) == 3 and all(r["trained"] for r in record["renders"])
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 3
    assert (frames[0] == frames[2]).all() and not (frames[0] == frames[1]).all()  # same weights, same image
    assert record["scores"][0] == record["scores"][2]
    missing = CliRunner().invoke(main, [*args[:3], str(tmp_path / "nope.pth"), "-o", str(tmp_path / "x.png")])
    assert missing.exit_code == 2 and "checkpoint files not found" in missing.output


class NeedsText(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.conv(images).mean((2, 3)) + text


def test_a_forward_that_needs_more_than_an_image_is_one_clear_error():
    model = featviz.load_model(NeedsText(), input_size=32)
    with pytest.raises(featviz.RenderError, match="cannot run on an image batch alone .* wrap the model"):
        featviz.render(model, "conv:0", steps=2, size=32, progress=False)

"""A model loaded with a weights file and a labels file is loaded the same way again by
everything that reads its record: a render's replay and the Microscope server's on-demand
renders use the weights and names the run used, and a weights file changed since is
refused."""

from __future__ import annotations

import json
import time
import warnings

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import featviz
from featviz.cli import main
from featviz.microscope import Catalog, build
from featviz.microscope.serve import Renderer
from featviz.models.zoo import RandomWeightsWarning

pytestmark = pytest.mark.slow


def _own_weights(path, seed: int) -> None:
    """A ResNet-18 state dict of one's own (seeded random weights, a 'training run')."""
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18().state_dict(), path)


@pytest.fixture
def own(tmp_path):
    _own_weights(tmp_path / "mine.pt", seed=1)
    (tmp_path / "labels.txt").write_text("\n".join(f"kind {i}" for i in range(1000)))
    return tmp_path / "mine.pt", tmp_path / "labels.txt"


def test_a_render_made_with_weights_and_labels_files_replays_with_them(own, tmp_path, monkeypatch):
    weights, labels = own
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(
        main,
        ["render", "torchvision:resnet18", "logits:kind 7", "--labels", str(labels)]
        + ["--weights", str(weights), "--steps", "3", "--size", "48", "-o", "a.png", "-q"],
    )
    assert made.exit_code == 0 and "sees 'kind " in made.output, made.output  # the user's names
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["load"]["weights"] == str(weights.resolve()) and len(record["load"]["weights_sha256"]) == 64
    assert record["load"]["labels"] == str(labels.resolve()) and record["unit"] == "logits:kind 7"
    again = CliRunner().invoke(main, ["render", "--from", "a.json", "-o", "b.png", "-q"])
    assert again.exit_code == 0 and "sees 'kind " in again.output, again.output
    with Image.open("a.png") as a, Image.open("b.png") as b:
        assert a.tobytes() == b.tobytes()  # the file's weights, not fresh random ones
    replayed = featviz.replay(record, progress=False)  # the library's replay reads the same record
    assert replayed.record["load"] == record["load"]
    assert replayed.final.tolist() == json.loads((tmp_path / "b.json").read_text())["final_score"]

    _own_weights(weights, seed=2)  # the file is overwritten by another run
    refused = CliRunner().invoke(main, ["render", "--from", "a.json", "-o", "c.png", "-q"])
    assert refused.exit_code == 2 and "changed since torchvision:resnet18 was loaded from it" in refused.output
    assert not (tmp_path / "c.png").exists()
    weights.unlink()
    with pytest.raises(featviz.FeatvizError, match="weights file .* is gone"):
        featviz.replay(record, progress=False)


def test_the_server_renders_a_skipped_unit_with_the_build_s_weights(own, tmp_path):
    weights, labels = own
    small = {"layers": ["layer2"], "batch": 1, "size": 32, "steps": 2, "k": 2, "examples_limit": 8, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        model = featviz.load_model("torchvision:resnet18", weights=str(weights), labels=str(labels))
    build(model, tmp_path / "whole", units_per_layer=2, **small)  # unit 1 as the build renders it
    build(model, tmp_path / "served", units_per_layer=1, **small)  # unit 1 left to the server

    renderer = Renderer(tmp_path / "served", device="cpu")
    try:
        renderer.ask("layer2", 1)
        deadline = time.monotonic() + 300
        while renderer.state("layer2", 1)["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        renderer.close()
    files = {}
    for name in ("whole", "served"):
        catalog = Catalog(tmp_path / name / "catalog.sqlite", readonly=True)
        try:
            (unit,) = [u for u in catalog.units("layer2") if u["channel"] == 1]
        finally:
            catalog.close()
        files[name] = unit
    assert files["served"]["files"] == files["whole"]["files"]
    for path in files["whole"]["files"].values():
        if path.endswith(".png"):
            with Image.open(tmp_path / "whole" / path) as a, Image.open(tmp_path / "served" / path) as b:
                assert a.tobytes() == b.tobytes(), path
    names = [name for _, name, _ in files["served"]["figures"]["drives"]["raises"]]
    assert names and all(n.startswith("kind ") for n in names)  # the build's labels


CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_a_resnet_fine_tuned_on_ten_classes_shows_their_names_everywhere(tmp_path):
    """A torchvision ResNet-18 fine-tuned on CIFAR-10 (its own 10-class classifier in the
    file), with a labels file: predict, explain and the Microscope name the user's classes."""
    import torchvision

    torch.manual_seed(3)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "cifar.pt")
    (tmp_path / "cifar.txt").write_text("\n".join(CIFAR10))
    own = [
        "-m",
        "torchvision:resnet18",
        "--weights",
        str(tmp_path / "cifar.pt"),
        "--labels",
        str(tmp_path / "cifar.txt"),
    ]

    said = CliRunner().invoke(main, ["predict", "skimage:chelsea", *own])
    assert said.exit_code == 0, said.output
    named = [n for n in CIFAR10 if n in said.output]
    assert len(named) == 5, said.output  # the top-5, each by the user's name

    report = tmp_path / "chelsea.html"
    explained = CliRunner().invoke(
        main,
        ["explain", "skimage:chelsea", *own, "--top", "2", "--size", "32", "--steps", "2", "-o", str(report), "-q"],
    )
    assert explained.exit_code == 0, explained.output
    data = json.loads(report.with_suffix(".json").read_text())
    top = [row[1] if isinstance(row, list) else row["name"] for row in data["top"]]
    assert set(top) <= set(CIFAR10) and len(top) == 5, top
    assert any(n in report.read_text() for n in CIFAR10)

    out = tmp_path / "ms"
    small = ["--layers", "layer3", "--units-per-layer", "1", "--size", "32", "--steps", "2", "-k", "2"]
    built = CliRunner().invoke(
        main,
        [
            "microscope",
            "build",
            "torchvision:resnet18",
            "--out",
            str(out),
            *own[2:],
            *small,
            "--examples-limit",
            "8",
            "-q",
        ],
    )
    assert built.exit_code == 0, built.output
    catalog = Catalog(out / "catalog.sqlite", readonly=True)
    try:
        (unit,) = catalog.units("layer3")
    finally:
        catalog.close()
    drives = [name for _, name, _ in unit["figures"]["drives"]["raises"]]
    assert set(drives) <= set(CIFAR10) and len(drives) == 5, drives
    page = (out / "units" / "layer3" / "0.html").read_text()
    assert all(n in page for n in drives)

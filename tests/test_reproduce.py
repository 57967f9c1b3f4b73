"""A Microscope page says how to make each image again, and that command makes the same
pixels; a Microscope of a model with random weights says so on every page."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
from browser import chromium
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.microscope import build

pytestmark = pytest.mark.slow

SMALL = {"units_per_layer": 1, "batch": 1, "size": 64, "steps": 2, "k": 2, "examples_limit": 12}


def test_the_reproduce_commands_of_a_unit_page_make_the_same_images(built, tmp_path, monkeypatch):
    out = tmp_path / "ms"
    shutil.copytree(built, out)  # built with 4 steps at 64 px, 2 units per batch
    page = (out / "units" / "blocks.3" / "1.html").read_text()
    commands = re.findall(r"<code>(featviz render --from [^<]+)</code>", page)
    assert len(commands) == 4, page  # channel, negative, neuron, diversity
    # the build's overrides, said; the channel, negative and neuron images of 2 units are one batch
    assert "4 steps, 64 px, seed 0, image 1 of a batch of 6" in page
    monkeypatch.chdir(out)  # the page's commands run in the Microscope's folder
    for command in commands:
        args = command.split()[1:]
        result = CliRunner().invoke(main, [*args, "-q"])
        assert result.exit_code == 0, (command, result.output)
        made = Path(args[args.index("--out") + 1])
        kind = made.stem
        pairs = (
            [(made, f"{kind}.png")] if kind != "diversity" else [(Path(f"diversity_{j}.png"),) * 2 for j in range(4)]
        )
        for mine, theirs in pairs:
            built = out / "units" / "blocks.3" / "1" / Path(theirs).name
            assert (out / mine).read_bytes() == built.read_bytes(), (command, mine)
        if kind != "diversity":
            index = {"channel": 1, "negative": 3, "neuron": 5}[kind]
            assert json.loads((out / made).with_suffix(".json").read_text())["index"] == index


def test_a_microscope_of_random_weights_says_so_on_every_page(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapter = featviz.load_model("torchvision:resnet18")
    assert adapter.trained is False and "random weights" in (adapter.untrained_note or "")
    out = tmp_path / "ms"
    build(adapter, out, layers=["layer2"], progress=False, **SMALL)
    record = json.loads((out / "units" / "layer2" / "0" / "channel.json").read_text())
    assert record["trained"] is False and "random weights" in record["warning"]
    from starlette.testclient import TestClient

    from featviz.microscope.serve import Renderer, create_app

    renderer = Renderer(out)
    try:  # the page of a unit being rendered on demand says it too
        pending = TestClient(create_app(out, renderer)).get("/units/layer2/5.html")
    finally:
        renderer.close()  # the render it started is abandoned
    assert pending.status_code == 202 and "has random weights (not trained)" in pending.text
    pages = ["index.html", "layers/layer2.html", "units/layer2/0.html", "search.html"]
    with chromium() as browser:
        tab = browser.new_page()
        for name in pages:
            tab.goto((out / name).as_uri())
            banner = tab.get_by_role("alert")
            assert banner.is_visible(), name
            assert "torchvision:resnet18 has random weights (not trained)" in banner.inner_text(), name
            box = banner.bounding_box()
            assert box is not None and box["y"] < 120, (name, box)  # above the fold, before the content


def test_a_trained_model_s_pages_have_no_banner(built):
    for page in ("index.html", "layers/blocks.3.html", "units/blocks.3/0.html"):
        assert "role='alert'" not in (built / page).read_text()
    assert json.loads((built / "units" / "blocks.3" / "0" / "channel.json").read_text())["trained"] is True

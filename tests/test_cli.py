from __future__ import annotations

import json

from click.testing import CliRunner
from PIL import Image
from skimage import data

from featviz.cli import main


def test_predict_chelsea_says_egyptian_cat(tmp_path):
    path = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    out = CliRunner().invoke(main, ["predict", str(path)])
    assert out.exit_code == 0, out.output
    first = out.output.splitlines()[1].split()
    assert first[0] == "285" and "Egyptian cat" in out.output.splitlines()[1]


def test_render_writes_png_and_record(tmp_path):
    target = tmp_path / "unit.png"
    out = CliRunner().invoke(
        main,
        [
            "render",
            "efficientnet_lite0",
            "blocks.2:3",
            "--steps",
            "4",
            "--size",
            "64",
            "--out",
            str(target),
            "--quiet",
        ],
    )
    assert out.exit_code == 0, out.output
    assert Image.open(target).size == (64, 64)
    assert json.loads(target.with_suffix(".json").read_text())["unit"] == "blocks.2:3"


def test_layers_and_classes():
    out = CliRunner().invoke(main, ["layers", "efficientnet_lite0", "--depth", "1"])
    assert out.exit_code == 0
    row = next(line for line in out.output.splitlines() if line.startswith("blocks.1 "))
    assert "24x56x56" in row and row.split()[-3:] == ["NCHW", "24", "stage"]
    head = next(line for line in out.output.splitlines() if line.startswith("conv_head "))
    assert head.split()[-2:] == ["NCHW", "1280"]  # not a stage
    out = CliRunner().invoke(main, ["classes", "hen"])
    assert "   8  hen" in out.output


def test_bad_input_is_one_clear_line(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["render", "efficientnet_lite0", "blocks.9:1", "-q"])
    assert out.exit_code == 2 and "unknown layer 'blocks.9'" in out.output and "blocks.6" in out.output
    out = runner.invoke(main, ["render", "efficientnet_lite0", "blocks.1:300", "-q", "--steps", "1", "--size", "64"])
    assert out.exit_code == 2 and "24 channels" in out.output
    bogus = tmp_path / "notes.png"
    bogus.write_text("not an image")
    out = runner.invoke(main, ["predict", str(bogus)])
    assert out.exit_code == 2 and "not an image" in out.output
    out = runner.invoke(main, ["classes", "hne"])
    assert out.exit_code == 2 and "'hen'" in out.output
    out = runner.invoke(main, ["render", "efficientnet_lit0", "logits:hen"])
    assert out.exit_code == 2 and "efficientnet_lite0" in out.output

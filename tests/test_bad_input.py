"""Bad input, tried as a new user would: each is one line and exit status 2, before any step."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.cli import main

LONG_UNIT = "blocks.5:" + "7" * 10_000
SUM_500 = " + ".join(["blocks.2:1"] * 500)


@pytest.fixture
def no_steps(monkeypatch):
    """Fail the test if the render loop is entered: checks must come before the work."""
    import featviz.optvis.render as render_module

    def loop(*args, **kwargs):
        raise AssertionError("the render loop ran")

    monkeypatch.setattr(render_module, "_loop", loop)


def _existing(tmp_path):
    """An image of another run, with its record."""
    taken = tmp_path / "taken.png"
    featviz.save(featviz.RenderResult(torch.rand(1, 3, 8, 8), torch.zeros(1, 1), torch.zeros(1), _RECORD), taken)
    return str(taken)


_RECORD = {"kind": "render", "model": "efficientnet_lite0", "unit": "blocks.2:3", "seed": 0}


CASES = {
    "unwritable out": (["render", "blocks.5:51", "-o", "/proc/x.png"], "cannot write /proc/x.png"),
    "unknown image suffix": (["render", "blocks.5:51", "-o", "{tmp}/out.xyz"], "cannot write an image named out.xyz"),
    "animation suffix": (["render", "blocks.5:51", "-o", "{tmp}/a.png", "--animate", "{tmp}/x.avi"], "x.avi"),
    "unwritable animation": (["render", "blocks.5:51", "-o", "{tmp}/a.png", "--animate", "/proc/x.gif"], "/proc"),
    "dream unwritable": (["dream", "skimage:coffee", "blocks.4", "-o", "/proc/x.png"], "cannot write"),
    "zoom unwritable": (["zoom", "efficientnet_lite0", "blocks.4:1", "-o", "/proc/x.gif"], "cannot write"),
    "zoom unknown suffix": (["zoom", "efficientnet_lite0", "blocks.4:1", "-o", "{tmp}/z.avi"], ".gif, .mp4"),
    "atlas unwritable": (["atlas", "efficientnet_lite0", "blocks.1", "-o", "/proc/a.png"], "cannot write"),
    "existing output": (["render", "blocks.5:51", "-o", "{taken}"], "--overwrite"),
    "size too large": (["render", "efficientnet_lite0", "logits:hen", "--size", "100000"], "largest size that fits"),
    "dream size too large": (["dream", "skimage:coffee", "blocks.4", "--size", "100000"], "largest size that fits"),
    "size zero": (["render", "logits:hen", "--size", "0"], "too small"),
    "neuron outside the grid": (["render", "blocks.5:51@7,3", "-o", "{tmp}/n.png"], "outside the 7x7 grid"),
    "unclosed parenthesis": (["render", "(logits:hen", "-o", "{tmp}/e.png"], "never closed"),
    "trailing operator": (["render", "logits:hen +", "-o", "{tmp}/e.png"], "after '+' at column 12"),
    "layer that is a class": (["render", "hen+logits:cock", "-o", "{tmp}/e.png"], "did you mean logits:hen"),
    "no layer before colon": (["render", ":3", "-o", "{tmp}/e.png"], "no layer before ':'"),
    "very long unit": (["render", LONG_UNIT, "-o", "{tmp}/e.png"], "..."),
    "negative learning rate": (["render", "logits:hen", "--lr", "-1", "-o", "{tmp}/e.png"], "must be positive"),
    "unknown device": (["render", "logits:hen", "--device", "banana", "-o", "{tmp}/e.png"], "unknown device"),
    "top too large": (["predict", "skimage:coffee", "--top", "5000"], "--top 5000"),
    "folder as image": (["predict", "{tmp}"], "is a folder"),
    "folder as init": (["render", "logits:hen", "--init", "{tmp}", "-o", "{tmp}/e.png"], "is a folder"),
    "folder as dream photo": (["dream", "{tmp}", "blocks.4", "-o", "{tmp}/d.png"], "is a folder"),
    "weights for the embedded model": (["render", "logits:hen", "--weights", "DEFAULT"], "torchvision:NAME"),
    "empty unit": (["render", "efficientnet_lite0", ""], "the UNIT is empty"),
    "empty unit alone": (["render", " "], "the UNIT is empty"),
    "out is a folder": (["render", "logits:hen", "-o", "{tmp}"], "is a folder: expected an image file name"),
    "dream out is a folder": (["dream", "skimage:coffee", "blocks.4", "-o", "{tmp}"], "is a folder"),
    "weights file missing": (["render", "timm:resnet18", "layer1:0", "--weights", "{tmp}/no.pth"], "not found"),
    "atlas steps zero": (["atlas", "efficientnet_lite0", "blocks.4", "--steps", "0", "-o", "{tmp}/at/a.png"], "steps"),
    "atlas channels reversed": (
        ["atlas", "efficientnet_lite0", "blocks.4", "--channels", "60:50", "-o", "{tmp}/at/a.png"],
        "selects no channel",
    ),
    "examples from an empty folder": (
        ["examples", "efficientnet_lite0", "blocks.4", "--data", "{tmp}", "-o", "{tmp}/ex"],
        "holds no image files",
    ),
}
_BUILD = ["microscope", "build", "efficientnet_lite0", "--out", "{tmp}/ms"]
CASES.update(
    {
        "build steps zero": ([*_BUILD, "--steps", "0"], "steps must be at least 1, got 0"),
        "build no units": ([*_BUILD, "--units-per-layer", "0"], "units_per_layer must be an integer of at least 1"),
        "build negative units": ([*_BUILD, "--units-per-layer", "-3"], "got -3"),
        "build unknown layer": ([*_BUILD, "--layers", "blocks.99"], "unknown layer 'blocks.99'"),
        "build k zero": ([*_BUILD, "-k", "0"], "k must be an integer of at least 1"),
        "build batch zero": ([*_BUILD, "--batch", "0"], "batch must be an integer of at least 1"),
        "build size 7": ([*_BUILD, "--size", "7"], "too small"),
        "build empty data": ([*_BUILD, "--data", "{tmp}"], "holds no image files"),
        "build no examples": ([*_BUILD, "--examples-limit", "0"], "examples_limit"),
    }
)
if not torch.cuda.is_available():
    CASES["cuda without CUDA"] = (["render", "logits:hen", "--device", "cuda", "-o", "{tmp}/e.png"], "not available")


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_before_any_step(name, tmp_path, no_steps):
    args, expected = CASES[name]
    taken = _existing(tmp_path) if any("{taken}" in a for a in args) else ""
    args = [a.replace("{tmp}", str(tmp_path)).replace("{taken}", taken) for a in args]
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(main, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    assert expected in lines[0] and len(lines[0]) < 600, lines[0]
    assert sorted(tmp_path.rglob("*")) == before, "a refused command left files or folders behind"


def test_video_without_its_writer_is_refused_before_the_work(tmp_path, no_steps, monkeypatch):
    import featviz.io.video as video

    monkeypatch.setattr(video, "has_video_writer", lambda: False)
    for args in (
        ["render", "blocks.5:51", "-o", f"{tmp_path}/a.png", "--animate", f"{tmp_path}/a.mp4"],
        ["zoom", "efficientnet_lite0", "blocks.4:1", "-o", f"{tmp_path}/z.mp4"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "imageio-ffmpeg" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


def test_default_name_is_a_file_name_and_reruns_replace_their_own_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["render", "efficientnet_lite0", "blocks.5:51", "--size", "64", "--steps", "4", "-q"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    png = tmp_path / "efficientnet_lite0_blocks_5_51.png"
    assert featviz.load_image(png).shape == (3, 64, 64)
    assert json.loads(png.with_suffix(".json").read_text())["unit"] == "blocks.5:51"
    again = CliRunner().invoke(main, args)  # the same command again: its own output, replaced
    assert again.exit_code == 0, again.output
    other = CliRunner().invoke(main, [*args[:-1], "--seed", "1", "-o", str(png)])
    assert other.exit_code == 2 and "--overwrite" in other.output
    forced = CliRunner().invoke(main, [*args, "--seed", "1", "-o", str(png), "--overwrite"])
    assert forced.exit_code == 0, forced.output


def test_unit_with_a_leading_minus_and_long_sums_need_no_tricks(tmp_path):
    result = CliRunner().invoke(
        main, ["render", "-blocks.2:1", "--size", "48", "--steps", "2", "-q", "-o", f"{tmp_path}/m"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["objective"] == "-channel('blocks.2', 1)"
    obj = featviz.parse_objective(SUM_500)
    assert len(obj.layers) == 1 and repr(obj).count("+") == 499


def test_huge_size_fails_fast_with_little_memory():
    code = (
        "import re, sys, time; t = time.time()\n"
        "from click.testing import CliRunner\nfrom featviz.cli import main\n"
        "r = CliRunner().invoke(main, ['render', 'efficientnet_lite0', 'logits:hen', '--size', '100000'])\n"
        "peak = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1]\n"
        "print(r.exit_code, round(time.time() - t, 2), peak)\n"
        "print(r.output)"
    )
    # the peak of this process's own memory (VmHWM): getrusage's ru_maxrss of a child would also
    # count the test process it was spawned from, which Linux carries over the exec
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - start
    code_, seconds, peak_kib = out.stdout.split("\n")[0].split()
    assert code_ == "2" and "largest size that fits is about" in out.stdout, out.stdout + out.stderr
    # from the command's start, imports included (3.4-4.5 s on a quiet 2-core machine): an
    # answer in seconds, where going ahead would allocate terabytes or run for hours
    assert float(seconds) < 8, (seconds, wall)
    assert int(peak_kib) < 1.5 * 2**20, peak_kib  # KiB: under 1.5 GiB


@pytest.fixture(scope="module")
def hen_record(tmp_path_factory):
    """A real render's record (3 steps at 48 px), to be edited."""
    out = tmp_path_factory.mktemp("record") / "hen.png"
    result = CliRunner().invoke(main, ["render", "logits:hen", "--steps", "3", "--size", "48", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.with_suffix(".json").read_text())


def _without(record, key):
    edited = json.loads(json.dumps(record))
    del edited["recipe"][key]
    return edited


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: _without(r, "lr"), "the record has no recipe.lr"),
        (lambda r: _without(r, "steps"), "the record has no recipe.steps"),
        (lambda r: dict(r, seed="0"), "run.seed is '0' (str): expected an integer"),
        (lambda r: dict(r, batch=1.5), "run.batch is 1.5 (float): expected an integer"),
        (lambda r: dict(r, recipe=dict(r["recipe"], lr="fast")), "recipe.lr is 'fast' (str): expected a number"),
        (lambda r: dict(r, recipe=dict(r["recipe"], transforms="crop")), "recipe.transforms"),
        (lambda r: dict(r, recipe=dict(r["recipe"], penalties=[1.0])), "expected a list of pairs"),
        (lambda r: dict(r, recipe=[]), "run.recipe is [] (list): expected an object"),
        (lambda r: dict(r, unit=5), "run.unit is 5 (int)"),
        (lambda r: dict(r, size=[48]), "expected an integer or [height, width]"),
        (lambda r: dict(r, callbacks=[{"class": "Nope"}]), "expected one of BlurEvery, RecordFrames"),
        (lambda r: dict(r, init={"digest": "x"}), "expected an object with its photo's source"),
        (lambda r: {k: v for k, v in r.items() if k != "model"}, "the record has no run.model"),
        (lambda r: dict(r, index=9), "the record's index is 9"),
    ],
)
def test_an_edited_record_is_refused_in_one_line_naming_the_field(hen_record, edit, expected, tmp_path, no_steps):
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(edit(hen_record)))
    result = CliRunner().invoke(main, ["render", "--from", str(path), "-q"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert expected in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.json"]


@pytest.mark.parametrize(
    "args",
    [
        ["render", "torchvision:resnet18", "layer1:0", "--weights", "DEFAULT"],
        ["predict", "skimage:coffee", "--model", "timm:resnet18", "--pretrained"],
    ],
)
def test_weights_that_cannot_be_downloaded_are_one_line_in_seconds(args, tmp_path, monkeypatch, no_steps):
    # an empty cache, and a network that cannot reach the weights' host (this machine has none;
    # elsewhere the offline switch that both hubs honour says the same)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HUB_OFFLINE", "1")
    start = time.monotonic()
    result = CliRunner().invoke(main, args)
    seconds = time.monotonic() - start
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "cannot download the weights" in lines[0] and "--weights FILE" in lines[0], lines[0]
    assert seconds < 10, seconds  # timm's hub retried for 52 s before


def test_a_weights_file_is_read_as_tensors_and_makes_the_model_trained(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    save_file(reference.state_dict(), str(tmp_path / "r18.safetensors"))
    photo = featviz.load_image("skimage:coffee", 224)[None]
    with torch.no_grad():
        expected = reference.eval()(featviz.load_model(reference).normalize(photo))
    for name in ("r18.pth", "r18.safetensors"):
        for model in ("torchvision:resnet18", "timm:resnet18"):
            adapter = featviz.load_model(model, weights=str(tmp_path / name))
            assert adapter.trained is True and adapter.untrained_note is None
            with torch.no_grad():
                assert torch.allclose(adapter(photo), expected, atol=1e-4), (name, model)
    (tmp_path / "evil.pth").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")  # a pickle that runs code
    with pytest.raises(featviz.FeatvizError, match="not a weights file featviz can read as tensors"):
        featviz.load_model("torchvision:resnet18", weights=str(tmp_path / "evil.pth"))
    assert not (tmp_path / "pwned").exists()

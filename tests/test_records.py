"""Run records say what ran, replay to the same pixels, and survive Ctrl-C."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.optvis.param import PixelImage
from featviz.optvis.transforms import Compose, RandomRoll
from featviz.optvis.units import objective_from_repr


def test_passed_objects_are_recorded_as_what_ran_and_replay_exactly(lite0):
    param = PixelImage(48, init="gray", generator=torch.Generator().manual_seed(3))
    result = featviz.render(
        lite0, "blocks.2:5", optimizer="sgd", lr=0.5, param=param, transforms=Compose([]), steps=6, progress=False
    )
    rec = result.record
    assert rec["recipe"]["optimizer"] == "sgd" and rec["recipe"]["lr"] == 0.5
    assert rec["recipe"]["param"] == "pixel" and rec["recipe"]["param_kwargs"] == {"init": "gray"}
    assert rec["param"] == {"class": "PixelImage", "size": [48, 48], "batch": 1, "init": "gray"}
    assert rec["recipe"]["transforms"] == [] and rec["param_seed"] == 3 and rec["needs"] == []
    # Not the default recipe's values: the record describes this run, not the recipe.
    assert "fourier" not in json.dumps(rec["recipe"]) and "crops" not in json.dumps(rec["recipe"])
    assert rec["recipe"]["description"].startswith("default with ")
    again = featviz.replay(json.loads(json.dumps(rec)), progress=False)
    assert torch.equal(again.images, result.images)
    assert again.record["recipe"] == rec["recipe"] and again.record["param"] == rec["param"]


def test_a_direction_objective_is_recorded_whole_and_replays(lite0):
    """A direction in activation space (a random one of blocks.4's 112 channels) keeps every
    value in its record, exactly, so the record replays to the same pixels."""
    vector = torch.randn(112, generator=torch.Generator().manual_seed(0))
    objective = featviz.direction("blocks.4", vector, cossim_pow=1.0) - 0.05 * featviz.l2()
    result = featviz.render(lite0, objective, steps=3, size=64, progress=False)
    rec = json.loads(json.dumps(result.record))
    assert rec["unit_form"] == "repr" and rec["unit"].startswith("direction('blocks.4', [")
    read = objective_from_repr(rec["unit"])
    assert repr(read) == repr(objective)  # float32 values printed and read back exactly
    assert float(result.curve[-1].mean()) > float(result.curve[0].mean())
    again = featviz.replay(rec, progress=False)
    assert torch.equal(again.images, result.images)


def test_transforms_and_callbacks_passed_in_are_recorded_and_replayed(lite0):
    from featviz.optvis.callbacks import BlurEvery

    obj = featviz.channel("blocks.2", 5) - 0.05 * featviz.l2()
    result = featviz.render(
        lite0,
        obj,
        param=PixelImage(48, 2, init="uniform", generator=torch.Generator().manual_seed(1)),
        transforms=Compose([RandomRoll(4)]),
        callbacks=[BlurEvery(every=3, sigma=0.5)],
        steps=6,
        progress=False,
    )
    rec = result.record
    assert rec["unit_form"] == "repr" and rec["unit"] == repr(obj)
    assert rec["recipe"]["transforms"] == [["roll", {"pixels": 4}]]
    assert rec["callbacks"] == [{"class": "BlurEvery", "every": 3, "sigma": 0.5}]
    assert rec["param"]["class"] == "PixelImage" and rec["batch"] == 2
    again = featviz.replay(json.loads(json.dumps(rec)), progress=False)
    assert torch.equal(again.images, result.images)


def test_a_list_of_units_and_a_photo_start_replay(lite0):
    result = featviz.render(
        lite0, ["blocks.2:1", "blocks.2:2"], init="skimage:coffee", size=48, steps=4, progress=False
    )
    assert result.record["init"]["source"] == "skimage:coffee" and result.record["needs"] == []
    assert torch.equal(featviz.replay(result.record, progress=False).images, result.images)


def test_replay_asks_for_what_the_record_cannot_rebuild(lite0):
    photo = torch.rand(3, 40, 40)
    result = featviz.render(lite0, "blocks.2:1", init=photo, size=48, steps=3, progress=False)
    assert result.record["needs"] == ["init"] and result.record["init"]["photo"] == [3, 40, 40]
    with pytest.raises(featviz.FeatvizError, match=r"init=\.\.\."):
        featviz.replay(result.record)
    assert torch.equal(featviz.replay(result.record, init=photo, progress=False).images, result.images)
    custom = featviz.render(
        lite0, "blocks.2:1", optimizer=lambda ps: torch.optim.SGD(ps, lr=1.0), size=48, steps=2, progress=False
    )
    assert custom.record["recipe"]["optimizer"].startswith("custom:") and custom.record["needs"] == ["optimizer"]
    with pytest.raises(featviz.FeatvizError, match="optimizer"):
        featviz.replay(custom.record)
    with pytest.raises(featviz.FeatvizError, match="kind 'dream'"):
        featviz.replay({"kind": "dream"})


def test_cli_render_from_a_record_reproduces_the_png_byte_for_byte(tmp_path):
    runner = CliRunner()
    first = tmp_path / "x.png"
    out = runner.invoke(main, ["render", "blocks.3:7", "--size", "64", "--steps", "12", "-q", "-o", str(first)])
    assert out.exit_code == 0, out.output
    again = runner.invoke(main, ["render", "--from", str(first.with_suffix(".json")), "-q", "-o", str(tmp_path / "y")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "y.png").read_bytes() == first.read_bytes()
    assert (
        json.loads((tmp_path / "y.json").read_text())["recipe"]
        == json.loads(first.with_suffix(".json").read_text())["recipe"]
    )


def test_interrupted_render_keeps_the_image_reached_so_far(lite0):
    class StopAt:
        def __call__(self, state):
            if state.step == 4:
                raise KeyboardInterrupt

    # lucid: a constant learning rate, so 5 steps of a 50-step run are a 5-step run.
    stopped = featviz.render(
        lite0, "blocks.2:5", recipe="lucid", size=48, steps=50, callbacks=[StopAt()], progress=False
    )
    short = featviz.render(lite0, "blocks.2:5", recipe="lucid", size=48, steps=5, progress=False)
    assert stopped.interrupted and stopped.record["status"] == "interrupted" and stopped.record["steps_done"] == 5
    assert torch.equal(stopped.images, short.images) and len(stopped.curve) == 5


def test_ctrl_c_landing_in_a_finalizer_still_stops_the_render(lite0):
    """Python swallows a KeyboardInterrupt raised inside ``__del__`` ("Exception ignored in"),
    so a Ctrl-C whose signal lands there was lost and the render went on. The loop now turns
    SIGINT into a request checked between steps, and puts Python's handler back after."""

    class Finalizer:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)

    def ctrl_c_at_step_4(state):
        if state.step == 4:
            Finalizer()  # dropped at once: the signal's handler runs inside __del__

    # Python's own handler, as in a terminal (a shell started in the background hands SIGINT ignored).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stopped = featviz.render(
            lite0, "blocks.2:5", recipe="lucid", size=48, steps=50, callbacks=[ctrl_c_at_step_4], progress=False
        )
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):  # outside a render, Ctrl-C is Python's again
            signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, inherited)
    short = featviz.render(lite0, "blocks.2:5", recipe="lucid", size=48, steps=5, progress=False)
    assert stopped.interrupted and stopped.record["steps_done"] == 5
    assert torch.equal(stopped.images, short.images)


@pytest.mark.slow
def test_ctrl_c_in_the_cli_writes_the_image_and_an_interrupted_record(tmp_path):
    target = tmp_path / "stopped.png"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "featviz",
        "render",
        "blocks.2:5",
        "--size",
        "64",
        "--steps",
        "100000",
        "-o",
        str(target),
    ]
    # A shell started in the background (no job control) hands its children SIGINT ignored, and
    # Python then leaves it ignored; a terminal's Ctrl-C reaches a command with the default.
    default_sigint = functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, preexec_fn=default_sigint)
    assert proc.stderr is not None
    seen, deadline = b"", time.monotonic() + 120
    while b"transformed copies" not in seen and time.monotonic() < deadline:  # the bar's score, after 16 steps
        seen += os.read(proc.stderr.fileno(), 4096)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("Ctrl-C did not stop the render: " + proc.communicate()[1][-2000:].decode()) from None
    assert proc.returncode == 130, (seen + err).decode()
    record = json.loads(target.with_suffix(".json").read_text())
    assert record["status"] == "interrupted" and 16 <= record["steps_done"] < 100000
    assert featviz.load_image(target).std() > 0.01  # an image, not a grey square
    assert b"Traceback" not in err and b"interrupted after" in err

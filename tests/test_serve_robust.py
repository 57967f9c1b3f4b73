"""``featviz microscope serve`` when things go wrong or take time: Ctrl-C while a unit renders
on demand, a folder that is not a Microscope, a busy port, the render's real progress (API and
page); and the build's progress bar over its units.

``bench/microscope.py serve-ctrl-c`` does the Ctrl-C run 5 times over (the test does it 2 times,
and once more after the progress checks, to stay fast on 2 cores)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from browser import chromium, watch
from click.testing import CliRunner
from conftest import Tiny
from servers import Server, free_port

import featviz
from featviz.cli import main
from featviz.microscope import Catalog, build
from featviz.microscope.build import diversity_steps

UNIT = ("blocks.1", 1)  # not built: the build below makes channel 0 only
# The channel, negative and neuron render's steps (the diversity set's: 120): a served render of
# a few seconds, long enough for the page's half-second polls to see it move.
STEPS = 160

TOTAL = STEPS + diversity_steps(STEPS)


@pytest.fixture(scope="module")
def built(tmp_path_factory, lite0) -> Path:
    out = tmp_path_factory.mktemp("microscope")
    small = {"units_per_layer": 1, "batch": 1, "size": 128, "steps": STEPS, "k": 2, "examples_limit": 12}
    build(lite0, out, layers=["blocks.1"], progress=False, **small)
    return out


class Served(Server):
    """The server of a folder whose unit ``UNIT`` is not built: its state, its render's steps
    and Ctrl-C."""

    def state(self) -> dict:
        status, body = self.get(f"/api/units/{UNIT[0]}/{UNIT[1]}")
        assert status == 200, (status, body)
        return json.loads(body)

    def wait_for_step(self, at_least: int, timeout: float = 180) -> dict:
        """The unit's state once its render has reached step ``at_least``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state["status"] == "rendering" and state["step"] >= at_least:
                return state
            assert state["status"] in ("queued", "rendering"), state
            time.sleep(0.1)
        raise AssertionError(f"the render did not reach step {at_least}: {self.state()}")

    def ctrl_c(self) -> tuple[int, str, float]:
        """Ctrl-C; the exit status, stderr and seconds it took to exit."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"Ctrl-C did not stop the server: {self.proc.communicate()}") from None
        return self.proc.returncode, out + err, time.monotonic() - start


def _check_stopped_cleanly(folder: Path, code: int, output: str, finished_ok: bool = False) -> None:
    """Exit 0 or 130 without a C++ abort; the catalog whole; nothing of the abandoned unit, or
    (``finished_ok``: the render may have ended before Ctrl-C) all of it."""
    assert code in (0, 130) and "terminate called" not in output and "Traceback" not in output, (code, output)
    db = sqlite3.connect(folder / "catalog.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = db.execute("SELECT layer, channel, files FROM units ORDER BY channel").fetchall()
    finally:
        db.close()
    assert not list(folder.rglob("*.tmp"))
    if finished_ok and len(rows) == 2:
        assert rows[1][:2] == UNIT and all((folder / f).is_file() for f in json.loads(rows[1][2]).values()), rows
        return
    assert [r[:2] for r in rows] == [("blocks.1", 0)], rows
    assert not (folder / "units" / UNIT[0] / str(UNIT[1])).exists()


def _ask(server: Served) -> None:
    status, body = server.get(f"/units/{UNIT[0]}/{UNIT[1]}.html")
    assert status == 202, (status, body)


@pytest.mark.slow
def test_ctrl_c_during_an_on_demand_render_stops_cleanly(built, tmp_path):
    for attempt in range(2):
        folder = tmp_path / f"served{attempt}"
        shutil.copytree(built, folder)
        server = Served(folder)
        try:
            _ask(server)
            server.wait_for_step(1)  # between steps of the first image
            code, output, seconds = server.ctrl_c()
        finally:
            server.kill()
        _check_stopped_cleanly(folder, code, output)
        assert seconds < 60, seconds


@pytest.mark.slow
def test_a_render_reports_its_steps_to_the_api_and_the_page(built, tmp_path):
    folder = tmp_path / "served"
    shutil.copytree(built, folder)
    server = Served(folder)
    try:
        with chromium() as browser:
            page = browser.new_page()
            errors = watch(page)
            page.goto(f"{server.url}/units/{UNIT[0]}/{UNIT[1]}.html")  # asks for the render
            steps, widths, said = [], [], []
            deadline = time.monotonic() + 180
            while len(set(widths)) < 3 and time.monotonic() < deadline:
                state = server.state()
                if state["status"] == "done":  # the page has reloaded to the unit's own
                    break
                if state["status"] == "rendering" and state.get("steps"):
                    steps.append(state["step"])
                    assert state["steps"] == TOTAL and state["progress"] == state["step"] / state["steps"]
                    width = page.evaluate("() => document.querySelector('.progress div').getBoundingClientRect().width")
                    text = re.match(rf"rendering: step (\d+) of {TOTAL}", page.inner_text("#status"))
                    if width > 0 and text:
                        widths.append(width)
                        said.append(int(text[1]))
                time.sleep(0.1)
            assert len(set(widths)) >= 3 and len(set(steps)) >= 3, (steps, widths, said, server.state())
            assert widths == sorted(widths) and steps == sorted(steps) and said == sorted(said), (widths, steps, said)
            assert not errors, errors
            page.close()
        code, output, _ = server.ctrl_c()  # a third Ctrl-C, further into the render
    finally:
        server.kill()
    _check_stopped_cleanly(folder, code, output, finished_ok=True)


def _microscope_catalog(folder: Path) -> None:
    """A catalog that names a model and a layer, as a build's does (no render needed)."""
    cat = Catalog(folder / "catalog.sqlite")
    cat.check_or_set_meta({"model": "efficientnet_lite0"})
    cat.put_layer("blocks.1", 0, [24, 32, 32], [0])
    cat.close()


def _serve(folder: Path, port: int) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["microscope", "serve", str(folder), "--port", str(port)])
    return result.exit_code, result.stdout, result.stderr


def test_a_folder_that_is_no_microscope_or_a_busy_port_is_one_line_before_serving(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "catalog.sqlite").write_bytes(b"not a database" * 100)
    blank = tmp_path / "blank"  # a database with no build in it
    Catalog(blank / "catalog.sqlite").close()
    cases = {
        empty: "holds no catalog.sqlite",
        tmp_path / "missing": "holds no catalog.sqlite",
        garbage: "cannot read",
        blank: "names no model or layers",
    }
    for folder, expected in cases.items():
        code, out, err = _serve(folder, free_port())
        assert code == 2 and not out and len(err.splitlines()) == 1 and expected in err, (folder, code, out, err)
    good = tmp_path / "good"
    _microscope_catalog(good)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, out, err = _serve(good, busy.getsockname()[1])
    assert code == 2 and not out and len(err.splitlines()) == 1 and "choose another --port" in err, (code, out, err)
    assert not (good / "index.html").exists()  # nothing written before the checks


def test_a_build_shows_one_bar_over_its_units(tmp_path, capsys):
    tiny = featviz.load_model(Tiny(), mean=(0, 0, 0), std=(1, 1, 1), input_size=8)
    small = {"layers": ["conv"], "units_per_layer": 2, "batch": 1, "size": 16, "steps": 3, "k": 2, "examples_limit": 4}
    report = build(tiny, tmp_path, progress=True, **small)
    assert report.rendered == 2
    bars = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.startswith("units:")]
    assert "0/2" in bars[0] and "2/2" in bars[-1], bars
    assert "conv:1, step 5 of 5" in bars[-1], bars  # 3 steps and the diversity set's 2, the last slice's
    # the step callback is not the run's: the records name no callback that replay would need
    cat = Catalog(tmp_path / "catalog.sqlite", readonly=True)
    records = [r for unit in cat.units() for r in unit["records"].values()]
    cat.close()
    assert records and all(r["callbacks"] == [] and "callbacks" not in r["needs"] for r in records)
    build(tiny, tmp_path, progress=False, **small)  # resumed: nothing to render, and no bar
    assert "units:" not in capsys.readouterr().err

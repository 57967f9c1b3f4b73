"""Microscope builds on the real embedded model: what a unit gets, resuming after SIGKILL,
two torchrun ranks, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.analysis.examples import load_examples
from featviz.cli import main
from featviz.microscope import Catalog, build

SMALL = ["--size", "64", "--steps", "4", "--examples-limit", "12", "-k", "2", "-q"]


def _cli(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "featviz",
        "microscope",
        "build",
        "efficientnet_lite0",
        "--out",
        str(out),
        *SMALL,
        *extra,
    ]


def _small(lite0, out):
    small = {"units_per_layer": 2, "batch": 2, "size": 64, "steps": 4, "k": 2, "examples_limit": 12}
    return build(lite0, out, layers=["blocks.1", "blocks.3"], progress=False, **small)


def test_a_small_build_has_every_part_of_a_unit(lite0, tmp_path):
    report = _small(lite0, tmp_path)
    assert report.units == 4 and report.rendered == 4
    cat = Catalog(tmp_path / "catalog.sqlite")
    assert cat.integrity() == "ok" and cat.meta()["model"] == "efficientnet_lite0"
    layers = cat.layers()
    assert [l["name"] for l in layers] == ["blocks.1", "blocks.3"] and layers[1]["shape"] == [80, 14, 14]
    assert featviz.load_image(tmp_path / layers[0]["dream"]).shape[0] == 3
    units = cat.units()
    assert [(u["layer"], u["channel"]) for u in units] == [
        ("blocks.1", 0),
        ("blocks.1", 1),
        ("blocks.3", 0),
        ("blocks.3", 1),
    ]
    unit = units[3]
    kinds = {"channel", "negative", "neuron", "diversity_0", "diversity_3", "examples_top", "examples_bottom"}
    assert kinds <= set(unit["files"])
    for path in unit["files"].values():
        assert featviz.load_image(tmp_path / path).std() > 0.005, path
    fig = unit["figures"]
    assert len(fig["drives"]["raises"]) == 5 and isinstance(fig["drives"]["raises"][0][1], str)
    assert len(fig["inputs"]) == 8 and all(0 <= c < 24 for c, _ in fig["inputs"])  # channels of blocks.1
    assert -1 <= fig["rank_correlation_below"] <= 1 and fig["below"] == "blocks.1"
    # blocks.3:1's best example has a negative mean: a multiple of it would mean nothing
    assert fig["examples"]["top_mean"][0]["value"] < 0 and fig["activation_vs_best_example"] is None
    assert units[2]["figures"]["activation_vs_best_example"] > 1  # the visualization beats the best photo
    assert len(fig["examples"]["top"]) == 2 and sum(fig["examples"]["hist"]) == 12
    assert unit["records"]["negative"]["unit"][unit["records"]["negative"]["index"]] == "-blocks.3:1"
    # the diversity set takes three quarters of the steps, and its record says so (replay needs it)
    assert [unit["records"][k]["recipe"]["steps"] for k in ("channel", "diversity")] == [4, 3]
    cat.close()
    again = _small(lite0, tmp_path)
    assert again.rendered == 0 and again.skipped == 4
    _check_site(tmp_path, units=4)


def _check_site(folder: Path, units: int) -> None:
    """Every page of the static site exists, and every link and image it names is a file."""
    import re

    pages = [
        folder / "index.html",
        folder / "search.html",
        *sorted((folder / "layers").glob("*.html")),
        *sorted((folder / "units").rglob("*.html")),
    ]
    assert len(pages) == 2 + 2 + units
    for page in pages:
        text = page.read_text()
        targets = [t for t in re.findall(r"(?<![-\w])(?:src|href)='([^']+)'", text) if not t.startswith("data:")]
        assert targets, page
        for target in targets:
            assert (page.parent / target).resolve().is_file(), (page, target)
    unit = (folder / "units" / "blocks.3" / "1.html").read_text()
    assert "blocks.1:" in unit and "Classes it drives" in unit
    assert "featviz render --from units/blocks.3/1/channel.json" in unit


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*.png"))}


@pytest.mark.slow
def test_a_build_killed_with_sigkill_resumes_to_the_same_pixels(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    extra = ["--layers", "blocks.2", "--units-per-layer", "6", "--batch", "2"]
    proc = subprocess.Popen(_cli(killed, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(killed / "catalog.sqlite") as db:
                if db.execute("SELECT COUNT(*) FROM units").fetchone()[0] >= 2:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _snapshot(killed / "units")
    with sqlite3.connect(killed / "catalog.sqlite") as db:
        first = db.execute("SELECT COUNT(*) FROM units").fetchone()[0]
    assert 2 <= first < 6, first
    subprocess.run(_cli(killed, *extra), check=True, capture_output=True, timeout=600)
    subprocess.run(_cli(whole, *extra), check=True, capture_output=True, timeout=600)
    cat = Catalog(killed / "catalog.sqlite")
    assert cat.integrity() == "ok"
    assert sorted(u["channel"] for u in cat.units()) == [0, 1, 2, 3, 4, 5]  # each unit once
    after = _snapshot(killed / "units")
    for name, (mtime, data) in before.items():  # finished units were not rendered again
        assert after[name] == (mtime, data), name
    assert not list(killed.rglob("*.tmp")) or all(p.stat().st_size == 0 for p in killed.rglob("*.tmp"))
    for path in (killed / "units").rglob("*.png"):
        assert featviz.load_image(path).shape[0] == 3
        assert path.read_bytes() == (whole / path.relative_to(killed)).read_bytes(), path


@pytest.mark.slow
def test_two_torchrun_ranks_share_the_units_and_merge_the_examples(tmp_path):
    pair, single = tmp_path / "pair", tmp_path / "single"
    extra = ["--layers", "blocks.2", "--units-per-layer", "4", "--batch", "2", "--device", "cpu"]
    extra += ["--examples-limit", "40"]  # two batches of examples: one per rank
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", *_cli(pair, *extra)[1:]]  # -m featviz ...
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rank 0 of 2" in done.stdout and "rank 1 of 2" in done.stdout
    subprocess.run(_cli(single, *extra), check=True, capture_output=True, timeout=600, env=env)
    cat = Catalog(pair / "catalog.sqlite")
    units = cat.units()
    assert sorted(u["channel"] for u in units) == [0, 1, 2, 3] and cat.integrity() == "ok"
    ranks = {r for (r,) in cat.db.execute("SELECT rank FROM units")}
    assert ranks == {0, 1}  # both ranks rendered
    a = load_examples(pair / "examples.safetensors")[0].layers["blocks.2"]
    b = load_examples(single / "examples.safetensors")[0].layers["blocks.2"]
    assert torch.equal(a.top.index, b.top.index) and torch.equal(a.bottom.index, b.bottom.index)
    assert torch.allclose(a.top.values, b.top.values, atol=1e-4) and a.count == b.count == 40
    # the histograms of the two shards share their bins: merged, they are the single pass's
    assert torch.equal(a.edges, b.edges) and torch.equal(a.hist, b.hist) and int(a.hist.sum(1)[0]) == 40
    for u in units:
        for path in u["files"].values():
            assert (pair / path).exists()


def test_bad_input_to_a_build_is_one_line(tmp_path):
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    Catalog(tmp_path / "other" / "catalog.sqlite").check_or_set_meta({"model": "efficientnet_lite1"})
    for args, expected in (
        (["--out", str(tmp_path / "a"), "--layers", "blocks.66"], "unknown layer 'blocks.66'"),
        (
            ["--out", str(tmp_path / "b"), "--layers", "blocks.2", "--data", str(tmp_path / "empty")],
            "holds no image files",
        ),
        (["--out", str(tmp_path / "other"), "--layers", "blocks.2"], "was built for efficientnet_lite1"),
        (["--out", str(tmp_path / "c"), "--layers", "conv_head.weight"], "unknown layer"),
        (["--out", "/proc/x", "--layers", "blocks.2"], "cannot write"),
    ):
        result = runner.invoke(main, ["microscope", "build", "efficientnet_lite0", *args, *SMALL])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and expected in lines[0], result.output
    shutil.rmtree(tmp_path / "other")
    assert json.dumps({"ok": True})


class _Planted:
    """A pickle that runs code when read: it writes the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.write_text, (self.marker, "ran"))  # type: ignore[return-value]


@pytest.mark.slow
def test_a_folder_with_a_planted_pickle_is_refused_and_runs_nothing(built, lite0, tmp_path):
    folder, marker = tmp_path / "sent", tmp_path / "ran.txt"
    shutil.copytree(built, folder)
    torch.save({"key": None, "result": _Planted(marker)}, folder / "examples.pt")
    with pytest.raises(featviz.FeatvizError, match=r"examples.pt is a pickle, which can run code when read"):
        featviz.microscope.render_units(lite0, folder, "blocks.3", [5])  # what the server runs on demand
    resumed = CliRunner().invoke(main, ["microscope", "build", "efficientnet_lite0", "--out", str(folder), *SMALL])
    assert resumed.exit_code == 2 and "featviz does not read it" in resumed.output, resumed.output
    assert len(resumed.output.strip().splitlines()) == 1 and "Traceback" not in resumed.output
    assert not marker.exists()  # nothing of it ran
    (folder / "examples.pt").unlink()  # without it, the folder resumes from its own examples
    assert not (folder / "units" / "blocks.3" / "5.html").exists()
    featviz.microscope.render_units(lite0, folder, "blocks.3", [5])
    assert (folder / "units" / "blocks.3" / "5").is_dir()

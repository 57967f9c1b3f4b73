"""Layer atlases on the real embedded model: batches, saved tiles, resuming after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.data.photos import load_image
from featviz.io.grid import make_grid
from featviz.models.hooks import capture
from featviz.tools.atlas import parse_channels


def _channel_means(adapter, layer, images):
    with capture(adapter, [layer]) as cap, torch.no_grad():
        return cap(images)[layer].mean(dim=(2, 3))  # [images, channels]


def test_each_tile_drives_its_own_channel_and_reruns_load_from_disk(lite0, tmp_path):
    kw = dict(batch=2, steps=24, size=64, progress=False, out_dir=tmp_path)
    result = featviz.atlas(lite0, "blocks.3", "4:8", **kw)
    assert result.channels == [4, 5, 6, 7] and result.rendered == [4, 5, 6, 7] and result.loaded == []
    tiles = torch.stack([result.tiles[c] for c in result.channels])
    acts = _channel_means(lite0, "blocks.3", tiles)[:, 4:8]
    # Tile i was optimized for channel 4 + i: of the four tiles it drives that channel most.
    assert acts.argmax(0).tolist() == [0, 1, 2, 3], acts
    record = json.loads((tmp_path / "tiles" / "6.json").read_text())
    assert record["unit"] == "blocks.3:6" and record["batch_units"] == ["blocks.3:6", "blocks.3:7"]
    assert record["channel"] == 6 and record["seed"] == 0 and record["steps"] == 24
    assert load_image(tmp_path / "tiles" / "6.png").shape == (3, 64, 64)
    assert not list((tmp_path / "tiles").glob(".*"))  # no temporary files left

    again = featviz.atlas(lite0, "blocks.3", "4:8", **kw)
    assert again.rendered == [] and again.loaded == [4, 5, 6, 7]
    assert (again.tiles[5] - result.tiles[5]).abs().max() <= 0.5 / 255 + 1e-6  # the PNG, not a new render
    # Other settings do not reuse the tiles.
    other = featviz.atlas(lite0, "blocks.3", "4:6", **dict(kw, steps=3))
    assert other.rendered == [4, 5] and other.loaded == []


def test_grid_has_a_label_under_every_tile_and_crops_borders():
    tiles = torch.full((5, 3, 40, 40), 0.5)
    grid = make_grid(tiles, [str(i) for i in range(5)], columns=3, crop=4, pad=2)
    assert grid.shape[0] == 3 and grid.shape[2] == 3 * 32 + 4 * 2  # 3 columns of 32-px tiles
    row_h = (grid.shape[1] - 2) // 2
    caption = grid[:, 2 + 32 : row_h, :]  # between the first row of tiles and the second
    for col in range(3):
        below = caption[:, :, 2 + col * 34 : 2 + col * 34 + 32]
        assert below.min() < 0.3, f"no dark label text under tile {col}"
    # Tile 5 does not exist: the last cell and its caption stay background.
    assert grid[:, row_h + 2 :, 2 + 2 * 34 : 2 + 2 * 34 + 32].min() == 1.0
    with pytest.raises(featviz.ImageError, match="crop"):
        make_grid(tiles, crop=20)


def test_channel_specs():
    assert parse_channels("0:8:3", 80) == [0, 3, 6]
    assert parse_channels(range(2), 80) == [0, 1] and parse_channels("9, 2,9", 80) == [9, 2]
    with pytest.raises(featviz.UnitError, match="80 channels"):
        parse_channels("0:100", 80)
    with pytest.raises(featviz.UnitError, match="START:STOP"):
        parse_channels("a:b", 80)


def _snapshot(folder):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_killed_atlas_resumes_without_rendering_finished_tiles_again(lite0, tmp_path):
    out = tmp_path / "atlas.png"
    tiles = tmp_path / "atlas_tiles" / "tiles"
    args = ["atlas", "efficientnet_lite0", "blocks.3", "--channels", "0:10", "--batch", "2"]
    args += ["--size", "64", "--steps", "24", "--out", str(out), "--quiet"]
    # One thread: the run stays steady when other jobs share the cores.
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "featviz.cli", *args], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:  # kill as soon as the first batch (channels 0 and 1) is on disk
        while len(list(tiles.glob("*.json"))) < 2:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "no tile after 120 s"
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()
    before = _snapshot(tiles)
    done = sorted(int(name[:-5]) for name in before if name.endswith(".json"))
    assert done[:2] == [0, 1] and len(done) < 10, done

    time.sleep(0.05)  # a rewrite would show in the modification times
    rerun = CliRunner().invoke(main, args)
    assert rerun.exit_code == 0, rerun.output
    assert f"{10 - len(done)} rendered, {len(done)} loaded" in rerun.output, (done, rerun.output)
    after = _snapshot(tiles)
    for c in done:
        for name in (f"{c}.png", f"{c}.json"):
            assert after[name] == before[name], f"{name} was written again"
    assert sorted(after) == sorted(f"{c}.{ext}" for c in range(10) for ext in ("json", "png"))
    assert load_image(out).shape[-1] > 3 * 64
    # The resumed atlas is the atlas that an uninterrupted run makes: batches are fixed slices
    # of the channel list, so the first and the last batch alone render the same tiles.
    # Render each pair with the thread count of the process that made its tiles: the killed
    # run used one thread, the rerun in this process the default; sums run in other orders.
    threads = torch.get_num_threads()
    alones = {}
    for first, last in ((0, 1), (8, 9)):
        torch.set_num_threads(1 if first in done else threads)
        try:
            alones[first, last] = featviz.atlas(
                lite0, "blocks.3", [first, last], batch=2, steps=24, size=64, progress=False
            )
        finally:
            torch.set_num_threads(threads)
    for (first, last), alone in alones.items():
        for c in (first, last):
            assert (load_image(tiles / f"{c}.png") - alone.tiles[c]).abs().mean() < 2 / 255

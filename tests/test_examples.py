"""Dataset examples on the real embedded model: exact against brute force, patches the size of
the receptive field, shards that merge into the single pass, unreadable files skipped."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import featviz
from featviz.analysis.examples import examples, merge, receptive_field
from featviz.cli import main
from featviz.data.sources import items, read, shipped_items
from featviz.models.hooks import capture
from featviz.optvis.objectives import as_grid

LIMIT, SIZE = 24, 96


@pytest.fixture(scope="module")
def found(lite0):
    return examples(lite0, ["blocks.1", "blocks.6"], k=3, limit=LIMIT, size=SIZE, batch=8, progress=False)


def _brute(lite0, layer):
    """Each image alone, unfolded: spatial max and mean per channel, [N, C]."""
    peaks, means = [], []
    with torch.no_grad(), capture(lite0, [layer]) as cap:
        for item in shipped_items()[:LIMIT]:
            grid = as_grid(cap(read(item, SIZE)[None]), layer)[0].flatten(1)
            peaks.append(grid.max(1).values)
            means.append(grid.mean(1))
    return torch.stack(peaks), torch.stack(means)


def test_top_and_bottom_examples_match_brute_force(lite0, found):
    peaks, means = _brute(lite0, "blocks.6")
    ex = found.layers["blocks.6"]
    assert ex.top.index.shape == (320, 3) and len(set(ex.top.index[0].tolist())) == 3  # 3 different images
    for c in range(0, 320, 7):
        top, bottom, by_mean = ex.top.index[c], ex.bottom.index[c], ex.top_mean.index[c]
        others = torch.ones(LIMIT, dtype=torch.bool)
        others[top] = False
        # every top example's activation is at least that of every other image (float tolerance)
        assert peaks[top, c].min() >= peaks[others, c].max() - 1e-3
        assert torch.allclose(ex.top.values[c], peaks[top, c], rtol=1e-3, atol=1e-3)
        assert peaks[bottom, c].max() <= peaks[~torch.isin(torch.arange(LIMIT), bottom), c].min() + 1e-3
        assert means[by_mean, c].min() >= means[~torch.isin(torch.arange(LIMIT), by_mean), c].max() - 1e-3
    assert torch.allclose(ex.mean, means.mean(0), rtol=1e-3, atol=1e-3)
    assert torch.allclose(ex.max, peaks.max(0).values, rtol=1e-3, atol=1e-3)
    assert torch.allclose(ex.fires, (peaks > 0).float().mean(0))
    assert ex.hist.sum(1).eq(LIMIT).all()


def test_patches_are_the_receptive_field(lite0, found):
    # Lite0 up to blocks.1: stem 3x3/2, two 3x3 depthwise at stride 2 and 4, one more at 4:
    # 3 + 2*2 + 2*2 + 2*4 = 19 pixels.
    grid, (top, left, h, w) = receptive_field(lite0, "blocks.1", SIZE)
    assert grid == (24, 24) and (h, w) == (19, 19)
    ex = found.layers["blocks.1"]
    assert ex.patch_box(12, 12, SIZE)[2:] == (19, 19)
    assert ex.patch_box(0, 0, SIZE)[:2] == (0, 0) and ex.patch_box(0, 0, SIZE)[2] < 19  # clipped at the border
    c = 5
    y, x = (int(v) for v in ex.top.pos[c, 0])
    patch = found.patch("blocks.1", c, 0)
    assert patch.shape[-2:] == ex.patch_box(y, x, SIZE)[2:]


def test_shards_merge_into_the_single_pass(lite0, found):
    parts = [
        examples(lite0, ["blocks.6"], k=3, limit=LIMIT, size=SIZE, batch=8, shard=(r, 2), progress=False)
        for r in range(2)
    ]
    merged = merge(parts).layers["blocks.6"]
    single = found.layers["blocks.6"]
    assert torch.equal(merged.top.index, single.top.index) and torch.equal(merged.bottom.index, single.bottom.index)
    assert torch.allclose(merged.mean, single.mean) and merged.count == LIMIT


def test_unreadable_files_are_skipped_and_counted(lite0, tmp_path):
    from skimage import data

    (tmp_path / "hen").mkdir()
    for name in ("chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).save(tmp_path / "hen" / f"{name}.jpg")
    (tmp_path / "hen" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert [i.label for i in items(tmp_path, lite0.labels)] == ["hen", "hen", "hen"]  # folder names a class
    (tmp_path / "hen").rename(tmp_path / "n01514859")  # ImageNet's synset of "hen"
    assert {i.label for i in items(tmp_path, lite0.labels)} == {"hen"}
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        result = examples(lite0, "blocks.6", data=tmp_path, k=2, size=SIZE, progress=False)
    assert result.skipped == [str(tmp_path / "n01514859" / "broken.jpg")]
    assert result.layers["blocks.6"].count == 2


def test_cli_examples_writes_patches_and_bad_sources_are_one_line(tmp_path):
    runner = CliRunner()
    out = runner.invoke(
        main,
        [
            "examples",
            "efficientnet_lite0",
            "blocks.6",
            "--limit",
            "8",
            "-k",
            "2",
            "--size",
            "64",
            "--workers",
            "0",
            "-q",
            "-o",
            str(tmp_path / "ex"),
        ],
    )
    assert out.exit_code == 0, out.output
    strip = featviz.load_image(tmp_path / "ex" / "blocks.6" / "0_top.png")
    assert strip.shape == (3, 64, 128) and strip.std() > 0.01
    listed = json.loads((tmp_path / "ex" / "examples.json").read_text())
    assert listed["kind"] == "examples" and listed["images"] == 8  # a run record
    assert len(listed["layers"]["blocks.6"]["channels"]) == 320
    (tmp_path / "empty").mkdir()
    for args, expected in (
        (["examples", "efficientnet_lite0", "blocks.66"], "unknown layer 'blocks.66'"),
        (["examples", "efficientnet_lite0", "blocks.6", "--data", str(tmp_path / "empty")], "holds no image files"),
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and expected in result.output and len(result.output.strip().splitlines()) == 1, (
            result.output
        )

"""Eternal zoom: each frame is the previous one magnified and optimized a little further."""

from __future__ import annotations

import imageio.v3 as iio
import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.tools.zoom import zoom_in


def test_zoom_frames_follow_each_other_and_keep_the_unit(lite0):
    result = featviz.zoom(
        lite0, "blocks.3:5", frames=5, factor=1.1, first_steps=24, steps_per_frame=3, size=64, progress=False
    )
    assert len(result.frames) == 5 and all(f.shape == (3, 64, 64) for f in result.frames)
    for prev, frame in zip(result.frames, result.frames[1:], strict=False):
        grown = zoom_in(prev, 1.1)
        corr = torch.corrcoef(torch.stack([frame.flatten(), grown.flatten()]))[0, 1]
        assert corr > 0.5, corr  # the zoomed previous frame is where this one started ...
        assert (frame - grown).abs().mean() > 0.003  # ... and the optimization moved on from it
    # The unit stays strongly driven through the zoom.
    assert min(result.scores) > 0.5 * result.scores[0] > 0
    assert result.record["frames"] == 5 and len(result.record["scores"]) == 5


def test_zoom_in_magnifies_the_centre():
    image = torch.zeros(3, 64, 64)
    image[:, 24:40, 24:40] = 1.0  # a 16-px white square in the middle
    grown = zoom_in(image, 2.0)
    assert grown.shape == image.shape
    assert 30 * 30 < grown[0].gt(0.5).sum() < 34 * 34  # now about 32 px wide
    assert grown.min() >= 0 and grown.max() <= 1  # bicubic overshoots; clamped
    with pytest.raises(featviz.FeatvizError, match="fade"):
        featviz.zoom("efficientnet_lite0", "blocks.2:1", fade=1.0)


def test_cli_zoom_writes_an_animation(tmp_path):
    target = tmp_path / "zoom.gif"
    args = ["zoom", "efficientnet_lite0", "blocks.2:1", "--frames", "4", "--first-steps", "3"]
    out = CliRunner().invoke(main, [*args, "--steps-per-frame", "1", "--size", "64", "--out", str(target), "-q"])
    assert out.exit_code == 0, out.output
    assert iio.imread(target, index=None).shape[:3] == (4, 64, 64)
    assert target.with_suffix(".json").exists()

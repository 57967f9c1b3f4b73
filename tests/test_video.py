"""Animations: GIF and MP4 files that read back as the frames written, and `render --animate`."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.io.video import write_animation

COLOURS = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)]


def _frames(h: int = 32, w: int = 48) -> list[torch.Tensor]:
    return [torch.tensor(c).view(3, 1, 1).expand(3, h, w).clone() for c in COLOURS]


def test_gif_holds_every_frame_in_order(tmp_path):
    path = write_animation(_frames(), tmp_path / "colours.gif", fps=5)
    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (4, 32, 48)
    means = frames[..., :3].reshape(4, -1, 3).mean(1) / 255
    assert np.allclose(means, COLOURS, atol=0.02)
    assert iio.immeta(path)["duration"] == 200 and iio.immeta(path)["loop"] == 0


def test_mp4_holds_every_frame_and_odd_sizes_are_padded(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    path = write_animation(_frames(31, 45), tmp_path / "colours.mp4", fps=8)
    with imageio.get_reader(path) as reader:
        frames = np.stack(list(reader.iter_data()))
        fps = reader.get_meta_data()["fps"]
    assert frames.shape[:3] == (4, 32, 46) and fps == 8
    means = frames[:, 4:-4, 4:-4].reshape(4, -1, 3).mean(1) / 255
    assert np.allclose(means, COLOURS, atol=0.08), means


def test_batches_become_strips_and_bad_input_is_a_clear_error(tmp_path):
    batch = torch.stack(_frames()[:2])  # [2, 3, 32, 48]
    path = write_animation([batch, batch.flip(0)], tmp_path / "strip.gif")
    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (2, 32, 96)
    assert frames[0, :, :48, 0].mean() > 200 and frames[1, :, :48, 1].mean() > 200  # red then green first
    with pytest.raises(featviz.FeatvizError, match=r"\.gif, \.mp4"):
        write_animation(_frames(), tmp_path / "colours.avi")
    with pytest.raises(featviz.ImageError, match="same size"):
        write_animation([torch.zeros(3, 8, 8), torch.zeros(3, 8, 9)], tmp_path / "x.gif")


def test_render_animate_records_the_image_forming(tmp_path):
    gif, png = tmp_path / "forming.gif", tmp_path / "unit.png"
    args = ["render", "efficientnet_lite0", "blocks.3:5", "--steps", "12", "--size", "64", "--out", str(png)]
    out = CliRunner().invoke(main, [*args, "--animate", str(gif), "--every", "4", "--quiet"])
    assert out.exit_code == 0, out.output
    frames = iio.imread(gif, index=None)[..., :3].astype(float)
    assert frames.shape[:3] == (4, 64, 64)  # steps 0, 4, 8 and the last one (11)
    # The first frame is the near-grey start, the last one the finished image (as in the PNG).
    assert frames[0].std() < 10 < frames[-1].std()
    assert np.abs(frames[-1] - iio.imread(png)[..., :3]).mean() < 8

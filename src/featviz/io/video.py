"""Animations: GIF (imageio's Pillow writer) or MP4 (imageio-ffmpeg), chosen by suffix.

>>> import torch, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "grow.gif"
>>> write_animation([torch.full((3, 32, 32), v) for v in (0.0, 0.5, 1.0)], path, fps=4).name
'grow.gif'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from featviz.errors import FeatvizError, ImageError
from featviz.io.files import atomic_write
from featviz.io.images import to_uint8

GIF_SUFFIXES = (".gif",)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")


def frame_array(frame: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` -> HxWx3 uint8; a batch ``[B, 3, H, W]`` becomes one row of B images."""
    if frame.dim() == 4:
        frame = torch.cat(list(frame), dim=-1)
    if frame.dim() != 3 or frame.shape[0] != 3:
        raise ImageError(f"expected frames of shape [3, H, W] or [B, 3, H, W], got {tuple(frame.shape)}")
    return to_uint8(frame)


def write_animation(
    frames: Sequence[torch.Tensor], path: str | Path, *, fps: float = 12.0, loop: int = 0, quality: float = 7.0
) -> Path:
    """Write ``frames`` (images in [0, 1], ``[3, H, W]`` or batches ``[B, 3, H, W]``, all the
    same size) as an animation: ``.gif`` (``loop`` 0 repeats forever) or ``.mp4`` / ``.mov``
    / ``.mkv`` / ``.webm`` (H.264 or VP9 through ``imageio-ffmpeg``; ``quality`` 0-10)."""
    path = check_animation_path(path)
    suffix = path.suffix.lower()
    if not frames:
        raise ImageError("no frames to write")
    if fps <= 0:
        raise FeatvizError(f"fps must be positive, got {fps}")
    arrays = [frame_array(f) for f in frames]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ImageError(f"all frames need the same size, got {sorted(shapes)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in GIF_SUFFIXES:
        import imageio.v3 as iio

        data = iio.imwrite("<bytes>", np.stack(arrays), extension=".gif", duration=1000.0 / fps, loop=loop)
        return atomic_write(path, data)
    # ffmpeg picks the container by suffix: a temporary name that keeps it, then a rename.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        _write_video(arrays, tmp, fps, quality)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def has_video_writer() -> bool:
    """Whether MP4 / WebM can be written (imageio-ffmpeg is installed)."""
    import importlib.util

    return importlib.util.find_spec("imageio_ffmpeg") is not None


def check_animation_path(path: str | Path) -> Path:
    """``path`` if an animation can be written there by its suffix, else an error saying why."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in GIF_SUFFIXES + VIDEO_SUFFIXES:
        raise FeatvizError(
            f"cannot tell the format of {path.name}: expected a name ending in .gif, .mp4, .mov, .mkv or .webm"
        )
    if suffix in VIDEO_SUFFIXES and not has_video_writer():
        raise FeatvizError(f"writing {suffix} needs imageio-ffmpeg: pip install 'featviz[video]', or write a .gif")
    return path


def _write_video(arrays: list[np.ndarray], path: Path, fps: float, quality: float) -> None:
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (imageio's ffmpeg plugin needs it)
    except ImportError as err:
        raise FeatvizError(f"writing {path.suffix} needs imageio-ffmpeg: pip install 'featviz[video]'") from err
    # yuv420p (what every player reads) halves the chroma resolution: width and height must be even.
    h, w = arrays[0].shape[:2]
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    codec = "libvpx-vp9" if path.suffix.lower() == ".webm" else "libx264"
    writer: Any = imageio.get_writer(
        path,
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec=codec,
        quality=quality,
        macro_block_size=1,
        pixelformat="yuv420p",
    )
    with writer:
        for a in arrays:
            writer.append_data(np.pad(a, pad, mode="edge") if any(p[1] for p in pad) else a)

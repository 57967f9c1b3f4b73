"""Every Pillow mode reads at its real range and upright, and the model sees the same photo;
``featviz predict`` warns when an image is far smaller than the model's input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data

from featviz.cli import main
from featviz.data.photos import load_image, resize, to_tensor, too_small

CAT, GRAY = data.chelsea(), data.camera()  # "Egyptian cat" and "tripod" at 8 bits
GRAY16 = GRAY.astype(np.uint16) * 257  # the same photo at 16 bits: 255 -> 65535


def _big_endian() -> Image.Image:
    return Image.frombytes("I;16B", GRAY16.shape[::-1], GRAY16.astype(">u2").tobytes())


def _transparent() -> Image.Image:
    im = Image.fromarray(CAT).quantize(256)
    im.info["transparency"] = 0  # palette entry 0 is transparent: written as a tRNS chunk
    return im


def _ramp(photo: np.ndarray) -> np.ndarray:
    """An alpha channel from opaque (left) to transparent (right)."""
    return np.broadcast_to(np.linspace(255, 0, photo.shape[1]).astype(np.uint8), photo.shape[:2])


# name: (the 8-bit photo it holds, how to make it, file suffix, modes it opens in, bound on mean |diff|)
CASES: dict[str, tuple[np.ndarray, Callable[[], Image.Image], str, set[str], float]] = {
    "L": (GRAY, lambda: Image.fromarray(GRAY), ".png", {"L"}, 1e-6),
    "LA": (GRAY, lambda: Image.fromarray(np.dstack([GRAY, _ramp(GRAY)])), ".png", {"LA"}, 1e-6),
    "I;16 png": (GRAY, lambda: Image.fromarray(GRAY16), ".png", {"I;16", "I"}, 1e-6),
    "I;16 tiff": (GRAY, lambda: Image.fromarray(GRAY16), ".tif", {"I;16"}, 1e-6),
    "I;16B": (GRAY, _big_endian, ".tif", {"I;16B"}, 1e-6),
    "I": (GRAY, lambda: Image.fromarray(GRAY16.astype(np.int32)), ".tif", {"I"}, 1e-6),
    # beyond 16 bits and below 0: scaled by the image's min/max, which are 0 and 255 in camera()
    "I wide": (GRAY, lambda: Image.fromarray(GRAY.astype(np.int32) * 100_000 - 5), ".tif", {"I"}, 1e-6),
    "F": (GRAY, lambda: Image.fromarray(GRAY.astype(np.float32) / 255), ".tif", {"F"}, 1e-6),
    "F wide": (GRAY, lambda: Image.fromarray(GRAY.astype(np.float32) * 4 - 100), ".tif", {"F"}, 1e-6),
    "RGB": (CAT, lambda: Image.fromarray(CAT), ".png", {"RGB"}, 1e-6),
    "RGBA": (CAT, lambda: Image.fromarray(np.dstack([CAT, _ramp(CAT)])), ".png", {"RGBA"}, 1e-6),
    "P": (CAT, lambda: Image.fromarray(CAT).quantize(256), ".png", {"P"}, 0.015),
    "P transparent": (CAT, _transparent, ".png", {"P"}, 0.015),
    "CMYK jpeg": (CAT, lambda: Image.fromarray(CAT).convert("CMYK"), ".jpg", {"CMYK"}, 0.01),
    "CMYK tiff": (CAT, lambda: Image.fromarray(CAT).convert("CMYK"), ".tif", {"CMYK"}, 1e-6),
    "YCbCr": (CAT, lambda: Image.fromarray(CAT).convert("YCbCr"), ".tif", {"YCbCr"}, 0.01),
    "LAB": (CAT, lambda: Image.fromarray(CAT).convert("LAB"), ".tif", {"LAB"}, 0.005),
}


def _write(name: str, folder: Path) -> Path:
    _, make, suffix, modes, _ = CASES[name]
    path = folder / f"{name.replace(' ', '_').replace(';', '')}{suffix}"
    make().save(path, **({"quality": 95} if suffix == ".jpg" else {}))
    with Image.open(path) as im:
        assert im.mode in modes, name  # the file really holds the mode under test
    return path


@pytest.fixture(scope="module")
def read(tmp_path_factory, lite0) -> dict[str, tuple[torch.Tensor, int]]:
    """Each case written to a file and read back, with the model's top-1 on it; the 8-bit
    photos' own top-1 under their ids. One batch: a forward costs more than all the files."""
    folder = tmp_path_factory.mktemp("modes")
    images = {name: load_image(_write(name, folder)) for name in CASES}
    images |= {str(id(photo)): to_tensor(photo) for photo in (CAT, GRAY)}
    batch = torch.stack([resize(image, lite0.input_size) for image in images.values()])
    tops = [row[0][0] for row in lite0.predict(batch, k=1)]
    return {name: (image, top) for (name, image), top in zip(images.items(), tops, strict=True)}


@pytest.mark.parametrize("name", list(CASES))
def test_every_mode_reads_as_the_8bit_photo(name, read):
    photo, bound = CASES[name][0], CASES[name][-1]
    (image, top), (reference, expected) = read[name], read[str(id(photo))]
    assert image.shape == reference.shape and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert (image - reference).abs().mean() <= bound
    assert top == expected


def test_1bit_reads_as_black_and_white(tmp_path):
    path = tmp_path / "bits.png"
    bits = Image.fromarray(GRAY).convert("1")
    bits.save(path)
    image = load_image(path)
    assert torch.equal(image[0], torch.from_numpy(np.array(bits)).float())
    assert set(image.unique().tolist()) == {0.0, 1.0}


def test_exif_orientation_stands_the_photo_upright(tmp_path):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: shown after rotating 90 degrees clockwise
    Image.fromarray(np.rot90(CAT).copy()).save(path, exif=exif, quality=95)  # stored turned counter-clockwise
    image = load_image(path)
    assert image.shape == (3, *CAT.shape[:2])
    assert (image - to_tensor(CAT)).abs().mean() < 0.01


def test_too_small_is_under_half_the_input_size():
    assert too_small(torch.zeros(3, 111, 500), 224) is not None
    assert too_small(torch.zeros(3, 112, 500), 224) is None


def test_predict_warns_on_a_tiny_image_only(tmp_path):
    dot, cat = tmp_path / "dot.png", tmp_path / "cat.png"
    Image.new("RGB", (1, 1), (120, 60, 30)).save(dot)
    Image.fromarray(CAT).save(cat)
    out = CliRunner().invoke(main, ["predict", str(dot), str(cat)])
    assert out.exit_code == 0, out.output
    warned = [line for line in out.output.splitlines() if "warning" in line]
    assert warned == [f"warning: {dot} is 1x1 px, far below the model's 224 px input: the answer is unreliable"]
    assert f"{cat}\n   285  Egyptian cat" in out.output

"""DeepDream on a real photo with the real embedded model."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import featviz
from featviz.cli import main
from featviz.data.photos import load_image
from featviz.models.hooks import capture
from featviz.tools.dream import octave_sizes


def _layer_energy(adapter, layer, image):
    with capture(adapter, [layer]) as cap, torch.no_grad():
        return cap(image[None])[layer].pow(2).mean().item()


def test_dream_amplifies_the_layer_and_keeps_the_photo(lite0):
    photo = load_image("skimage:chelsea")  # 300 x 451
    result = featviz.dream(lite0, photo, "blocks.3", octaves=3, steps=6, size=128, progress=False)
    assert result.image.shape == (3, 85, 128) == result.photo.shape  # the photo's shape, resized to 128
    assert result.octaves == [(43, 65), (61, 91), (85, 128)]
    change = (result.image - result.photo).abs().mean().item()
    assert change > 0.02, change
    # Measured independently of the run: the layer responds much more to the dreamed image.
    before, after = (_layer_energy(lite0, "blocks.3", x) for x in (result.photo, result.image))
    assert after > 1.3 * before, (before, after)
    assert result.score_after == pytest.approx(after, rel=1e-3)
    # Still the same photo: pixels correlate strongly with the photo's.
    corr = torch.corrcoef(torch.stack([result.image.flatten(), result.photo.flatten()]))[0, 1]
    assert corr > 0.8, corr


def test_dream_at_full_size_is_seeded(lite0):
    photo = torch.rand(3, 40, 56)
    a = featviz.dream(lite0, photo, "blocks.2:3", octaves=2, steps=2, seed=1, progress=False)
    b = featviz.dream(lite0, photo, "blocks.2:3", octaves=2, steps=2, seed=1, progress=False)
    assert a.image.shape == (3, 40, 56) and torch.equal(a.image, b.image)
    assert a.octaves == [(40, 56)]  # 40 / 1.4 is under the model's 32-px minimum


def test_octave_sizes():
    assert octave_sizes(512, 512, 4, 1.4) == [(187, 187), (261, 261), (366, 366), (512, 512)]
    with pytest.raises(featviz.FeatvizError, match="octave"):
        octave_sizes(64, 64, 0, 1.4)


def test_cli_dreams_a_scikit_image_photo(tmp_path):
    target = tmp_path / "dream.png"
    args = ["dream", "skimage:astronaut", "blocks.2", "--octaves", "2", "--steps", "2", "--size", "64"]
    out = CliRunner().invoke(main, [*args, "--out", str(target), "--quiet"])
    assert out.exit_code == 0, out.output
    assert load_image(target).shape == (3, 64, 64) and "2 octaves" in out.output
    assert target.with_suffix(".json").exists()
    out = CliRunner().invoke(main, ["dream", "skimage:astronot", "blocks.2"])
    assert out.exit_code == 2 and "'astronaut'" in out.output

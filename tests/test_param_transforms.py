"""Parameterizations and transforms: exact checks, determinism, gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from featviz.optvis import transforms as T
from featviz.optvis.param import FourierImage, MacoImage, PixelImage
from featviz.optvis.spec import shipped_spectrum


def test_pixel_inits():
    gen = torch.Generator().manual_seed(0)
    gray = PixelImage(16, 2, init="gray", generator=gen)()
    assert (gray - 0.5).abs().max() <= 0.005
    uniform = PixelImage(16, 1, init="uniform", generator=gen)()
    assert uniform.min() >= 0 and uniform.max() <= 1 and uniform.std() > 0.2


def test_fourier_inverts_a_photo_exactly(photos):
    photo = photos[:1].clamp(0.02, 0.98)
    img = FourierImage(128, 1, init=photo)()
    assert torch.allclose(img, photo, atol=1e-4)


def test_fourier_starts_near_grey_with_low_frequencies():
    img = FourierImage(64, 1, generator=torch.Generator().manual_seed(0))()
    assert (img - 0.5).abs().max() < 0.1
    # 1/f scaling: neighbouring pixels correlate far more than white noise would.
    d = img - img.mean()
    corr = (d[..., 1:] * d[..., :-1]).mean() / d.pow(2).mean()
    assert corr > 0.5


def test_maco_keeps_the_natural_magnitude_and_only_learns_phase():
    spec = shipped_spectrum(64, 64)
    assert spec.shape == (3, 64, 33) and spec[:, 0, 0].eq(0).all()
    # Natural images: power falls with frequency.
    assert spec[0, 1, 1] > 5 * spec[0, 20, 20]
    maco = MacoImage(64, 2, spectrum=spec, generator=torch.Generator().manual_seed(0))
    assert [n for n, _ in maco.named_parameters()] == ["phase"]
    img = maco()
    assert img.shape == (2, 3, 64, 64) and 0 <= img.min() and img.max() <= 1 and img.std() > 0.1


def test_color_jitter_with_hue_works_on_images_that_require_grad():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = T.ColorJitter(0.1, 0.1, 0.1, hue=0.5)(x, torch.Generator().manual_seed(0))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    gray = torch.full((1, 3, 4, 4), 0.3)  # hue and saturation leave grey alone
    assert torch.allclose(T.ColorJitter(hue=0.5, saturation=0.5)(gray, None), gray, atol=1e-5)


def test_identity_affine_is_exact_and_draws_are_seeded():
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(T.RandomAffine()(x, torch.Generator()), x, atol=1e-5)
    aug = T.Compose([T.Pad(4), T.RandomAffine(4, (0.9, 1.1), 10), T.RandomCrops(3), T.GaussianNoise(0.02)])
    assert aug.copies == 3
    tiled = x.repeat(3, 1, 1, 1)
    a = aug(tiled, torch.Generator().manual_seed(1))
    b = aug(tiled, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (6, 3, 24, 24)
    assert not torch.allclose(a[0], a[2])  # each copy gets its own crop


def test_jitter_shifts_by_whole_pixels_in_both_directions():
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1
    out = T.jitter(2)(x, torch.Generator().manual_seed(0))
    peaks = out.flatten(1).argmax(1)
    rows, cols = peaks // 9, peaks % 9
    assert rows.min() < 4 < rows.max() and cols.min() < 4 < cols.max()


def test_gaussian_blur_preserves_mean_and_smooths():
    x = torch.rand(1, 3, 32, 32)
    y = T.gaussian_blur(x, 1.0)
    assert torch.allclose(y.mean(), x.mean(), atol=1e-2) and y.std() < x.std()


def test_fused_pad_matches_plain_padding():
    x = torch.rand(2, 3, 10, 10)
    for mode, expected in [
        ("constant", torch.nn.functional.pad(x, (3, 3, 3, 3), value=0.5)),
        ("replicate", torch.nn.functional.pad(x, (3, 3, 3, 3), mode="replicate")),
    ]:
        out = T.Compose([T.Pad(3, mode=mode)])(x, torch.Generator())
        assert torch.allclose(out, expected, atol=1e-5), mode


def test_consecutive_geometric_transforms_resample_once():
    # Two opposite shifts cancel exactly when fused (one resampling), with no blur.
    x = torch.rand(1, 3, 16, 16)

    class Shift(T.Geometric):
        def __init__(self, dx):
            super().__init__()
            self.dx = dx

        def draw(self, b, h, w, gen):
            m = torch.eye(3).repeat(b, 1, 1)
            m[:, 0, 2] = self.dx * 2 / w
            return m, (h, w)

    out = T.Compose([Shift(0.5), Shift(-0.5)])(x, None)
    assert torch.allclose(out, x, atol=1e-5)


def test_brightness_then_contrast_in_one_pass_matches_the_two_steps():
    x = torch.rand(3, 3, 8, 8)
    out = T.ColorJitter(brightness=0.3, contrast=0.4)(x, torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)  # the same draws, in the same order
    s = (0.7 + 0.6 * torch.rand(3, generator=gen)).view(3, 1, 1, 1)
    c = (0.6 + 0.8 * torch.rand(3, generator=gen)).view(3, 1, 1, 1)
    bright = x * s
    mean = bright.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(out, (bright - mean) * c + mean, atol=1e-6)


def test_crops_resample_to_their_size_but_enlarge_at_most_max_zoom():
    gen = torch.Generator().manual_seed(0)
    crops = T.RandomCrops(k=2, size=40)
    assert crops(torch.rand(2, 3, 64, 64), gen).shape == (2, 3, 40, 40)
    assert crops(torch.rand(2, 3, 32, 32), gen).shape == (2, 3, 32, 32)
    zoom = T.RandomCrops(k=2, size=40, max_zoom=1.25)
    assert zoom(torch.rand(2, 3, 24, 24), gen).shape == (2, 3, 30, 30)
    assert zoom(torch.rand(2, 3, 64, 64), gen).shape == (2, 3, 40, 40)
    assert zoom.output_size(24, 64) == (30, 40) and T.RandomCrops().output_size(24, 64) == (24, 64)


def test_crops_relative_to_the_window_shrink_small_images_only():
    """``window=True``: never enlarged beyond the average window's side (0.778 of the image
    for areas of 25-100%): a 224 px image still gives 160 px crops, a 128 px one 100 px."""
    crops = T.RandomCrops(k=4, area=(0.25, 1.0), size=160, window=True)
    assert crops.output_size(224, 224) == (160, 160) and crops.output_size(448, 448) == (160, 160)
    assert crops.output_size(128, 128) == (100, 100)
    sides = torch.rand(200_000).mul(0.75).add(0.25).sqrt()  # the sides of uniform areas
    assert abs(sides.mean().item() - crops.mean_side()) < 2e-3
    assert "window" not in T.RandomCrops(size=160).settings()  # old records replay unchanged


def test_a_shallow_unit_gets_fewer_crops_and_the_record_says_so(lite0):
    from featviz.optvis.spec import resolve

    def crops(unit: str) -> dict:
        spec = resolve(lite0, unit).spec
        return next(kw for name, kw in spec.recipe.transforms if name == "crops")

    assert crops("blocks.1:0")["k"] == 2 and crops("blocks.0:3")["k"] == 2  # stride 4 and 2
    assert crops("blocks.2:0")["k"] == 4 and crops("logits:hen")["k"] == 4
    assert crops("blocks.1:0 + blocks.4:2")["k"] == 4  # the deepest layer decides
    assert "shallow_k" not in crops("blocks.1:0")  # resolved: the record says what ran


def test_noise_is_gaussian_moves_every_call_and_follows_the_generator():
    noise = T.GaussianNoise(0.5)
    x = torch.zeros(2, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    a, b = noise(x, gen), noise(x, gen)
    assert abs(a.std().item() - 0.5) < 0.03 and abs(a.mean().item()) < 0.03
    assert not torch.equal(a, b)  # a new window every call
    assert not torch.equal(a[0], a[1])  # every image its own noise
    # A new generator with the same seed draws the same noise, whatever came before.
    assert torch.equal(noise(x, torch.Generator().manual_seed(0)), a)
    fresh = T.GaussianNoise(0.5, margin=0)
    assert torch.equal(fresh(x, torch.Generator().manual_seed(3)), fresh(x, torch.Generator().manual_seed(3)))


def test_contrast_jitter_pivots_on_the_image_mean_without_gradient_through_it():
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    jit = T.ColorJitter(contrast=0.5)
    out = jit(x, torch.Generator().manual_seed(0))
    c = (out - out.mean((1, 2, 3), keepdim=True)) / (x - x.mean((1, 2, 3), keepdim=True))
    assert torch.allclose(out.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6)  # the mean stays
    assert torch.allclose(c.flatten(1), c.flatten(1)[:, :1].expand(-1, c[0].numel()), atol=1e-3)
    out.sum().backward()
    assert torch.allclose(x.grad, c.detach().flatten(1)[:, :1].view(2, 1, 1, 1).expand_as(x), atol=1e-3)


def test_crops_grid_matches_affine_grid():
    x = torch.rand(3, 3, 20, 24)
    theta = torch.tensor([[0.6, 0.0, 0.2], [0.0, 0.6, -0.3]]).expand(3, 2, 3)
    grid = F.affine_grid(theta, [3, 3, 11, 13], align_corners=False)
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    assert torch.allclose(T._affine(x, theta, (11, 13)), ref, atol=1e-5)

"""The render loop on the real embedded model, at small sizes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

import featviz
from featviz.models.hooks import capture


def _activation(adapter, objective, images):
    obj = featviz.parse_objective(objective, adapter) if isinstance(objective, str) else objective
    with capture(adapter, obj.layers) as cap, torch.no_grad():
        return obj(cap(images))


@pytest.mark.parametrize("recipe", list(featviz.RECIPES))
def test_recipe_rises_and_beats_natural_photos(lite0, photos, recipe):
    unit = "blocks.4:17"
    result = featviz.render(lite0, unit, recipe=recipe, steps=32, size=128, progress=False)
    curve = result.curve[:, 0]
    assert curve[-8:].mean() > curve[:4].mean() + 0.5
    best_photo = _activation(lite0, unit, photos).max()
    assert result.final[0] > best_photo, (result.final, best_photo)
    # A real image, not a grey square: the pixels spread over the range.
    assert result.images.std() > 0.05


def test_cosine_schedule_anneals_the_learning_rate_and_still_rises(lite0):
    from featviz.optvis.spec import make_schedule

    recipe = featviz.get_recipe("default").replace(lr_schedule="cosine", lr_final=0.1, steps=24)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    sched = make_schedule(opt, recipe)
    lrs = []
    for _ in range(recipe.steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.05) and lrs[12] == pytest.approx(0.0275, rel=0.01)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)

    result = featviz.render(lite0, "blocks.4:17", recipe=recipe, size=64, progress=False)
    curve = result.curve[:, 0]
    assert curve[-4:].mean() > curve[:4].mean() + 0.5
    assert result.record["recipe"]["lr_schedule"] == "cosine"
    with pytest.raises(featviz.FeatvizError, match="lr_schedule"):
        featviz.render(lite0, "blocks.4:17", recipe=recipe.replace(lr_schedule="linear"), steps=2, size=64)


@pytest.mark.parametrize("recipe", list(featviz.RECIPES))
def test_same_seed_same_pixels_other_seed_other_pixels(lite0, recipe):
    kw = dict(recipe=recipe, steps=6, size=64, progress=False)
    a = featviz.render(lite0, "blocks.3:7", seed=3, **kw)
    b = featviz.render(lite0, "blocks.3:7", seed=3, **kw)
    c = featviz.render(lite0, "blocks.3:7", seed=4, **kw)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


@pytest.mark.slow
def test_class_render_is_seen_as_that_class(lite0):
    result = featviz.render(lite0, "logits:hen", recipe="default", steps=48, size=128, progress=False)
    assert lite0.predict(result.images)[0][0][:2] == (8, "hen")


def test_batch_of_units_renders_each_in_its_slot(lite0):
    units = ["blocks.3:1", "blocks.3:2", "blocks.3:3"]
    result = featviz.render(lite0, units, steps=24, size=64, progress=False)
    assert result.images.shape == (3, 3, 64, 64)
    acts = _activation(lite0, featviz.channel("blocks.3", 1), result.images)
    assert acts.argmax() == 0  # image 0 was optimized for channel 1
    assert result.record["unit"] == units


def test_record_and_sidecar_reproduce_the_run(lite0, tmp_path):
    result = featviz.render(lite0, "blocks.2:4", steps=4, size=64, seed=11, progress=False)
    [png] = featviz.save(result, tmp_path / "unit.png")[:1]
    record = json.loads((tmp_path / "unit.json").read_text())
    assert record["model"] == "efficientnet_lite0" and record["unit"] == "blocks.2:4"
    assert record["seed"] == 11 and record["steps"] == 4 and record["recipe"]["name"] == "default"
    assert record["versions"]["torch"] and len(record["curve"]) == 4
    again = featviz.render(
        lite0,
        record["unit"],
        recipe=featviz.Recipe(**record["recipe"]),
        seed=record["seed"],
        size=record["size"],
        progress=False,
    )
    assert torch.equal(again.images, result.images)


def test_nan_objective_is_a_clear_error(lite0):
    zero = featviz.channel("blocks.1", 0) * 0
    with pytest.raises(featviz.RenderError, match="NaN"):
        featviz.render(lite0, zero / zero, steps=16, size=64, progress=False)


def test_optimizer_options_reach_the_optimizer_and_the_record(lite0):
    recipe = featviz.get_recipe("default").replace(optimizer_kwargs={"eps": 0.5})
    result = featviz.render(lite0, "blocks.1:0", recipe=recipe, steps=2, size=64, progress=False)
    plain = featviz.render(lite0, "blocks.1:0", steps=2, size=64, progress=False)
    assert not torch.equal(result.images, plain.images)  # a huge eps damps Adam's steps
    assert result.record["recipe"]["optimizer_kwargs"] == {"eps": 0.5}
    with pytest.raises(featviz.FeatvizError, match="does not take the options"):
        featviz.render(
            lite0, "blocks.1:0", recipe=recipe.replace(optimizer_kwargs={"bogus": 1}), steps=2, size=64, progress=False
        )


def test_too_small_image_is_a_clear_error(lite0):
    with pytest.raises(featviz.RenderError, match="at least 32"):
        featviz.render(lite0, "blocks.1:0", size=16, steps=2, progress=False)


def test_start_from_a_photo(lite0, photos):
    photo = photos[1]
    result = featviz.render(lite0, "blocks.5", recipe="lucid", init=photo, steps=1, lr=1e-4, size=128, progress=False)
    # One tiny step from a photo stays that photo (the Fourier encoding inverts exactly).
    assert (result.images[0] - photo.clamp(0.01, 0.99)).abs().mean() < 0.01


def test_record_every_keeps_frames_of_the_image_forming(lite0):
    result = featviz.render(lite0, "blocks.3:2", steps=10, size=64, record_every=4, progress=False)
    assert len(result.frames) == 4  # after steps 0, 4, 8 and the last one, 9
    assert torch.equal(result.frames[-1], result.images)
    first, last = result.frames[0], result.frames[-1]
    assert (last - first).abs().mean() > (result.frames[1] - first).abs().mean() * 0.5


@contextmanager
def model_inputs(adapter: featviz.ModelAdapter) -> Iterator[list[tuple[int, ...]]]:
    """The shapes of the inputs the model is called on inside the block."""
    seen: list[tuple[int, ...]] = []
    hook = adapter.module.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    try:
        yield seen
    finally:
        hook.remove()


def test_fast_recipe_is_lucids_transforms_in_fewer_hotter_steps(lite0):
    """``fast``: Lucid's whole-image transforms with the step annealed from 0.12 over 192 steps
    (Lucid's 512 at 0.05), a small image enlarged to 224 px as Lucent does: the model sees the
    padded image whole at every step, it draws the class the model then sees first, and the
    record says what ran."""
    fast, lucid = featviz.get_recipe("fast"), featviz.get_recipe("lucid")
    assert fast.transforms[:-1] == lucid.transforms and fast.steps * 8 == lucid.steps * 3
    with model_inputs(lite0) as seen:
        result = featviz.render(lite0, "logits:goldfish", recipe="fast", size=128, seed=0, progress=False)
    assert seen.count((1, 3, 224, 224)) >= 192  # one view per step: 128 px padded to 152, then 224
    assert lite0.predict(result.images)[0][0][1] == "goldfish"
    recipe = result.record["recipe"]
    assert (recipe["name"], recipe["steps"], recipe["lr"], recipe["lr_schedule"]) == ("fast", 192, 0.12, "cosine")
    assert result.curve[-16:, 0].mean() > result.curve[:8, 0].mean() + 5


def test_a_small_image_shows_the_model_smaller_crops(lite0):
    """The default's crops follow the image below the model's size: at most 7/8 of its side,
    so a 128 px image is seen as 112 px crops (it was enlarged to 160 px, costing what a 224 px
    image costs) while 224 px and larger images keep their 160 px crops."""
    k = dict(featviz.get_recipe("default").transforms)["crops"]["k"]
    with model_inputs(lite0) as seen:
        for size, crop in ((128, 112), (224, 160)):
            seen.clear()
            featviz.render(lite0, "logits:goldfish", size=size, steps=2, progress=False)
            assert {s for s in seen if s[0] == k} == {(k, 3, crop, crop)}, (size, seen)


def test_lucent_recipe_enlarges_a_small_image_to_224_like_render_vis(lite0):
    """``lucent``: Lucent's ``render_vis`` shows the model its 128 px image, padded and
    jittered, enlarged to 224 px; an image already that large is left as the transforms made it."""
    with model_inputs(lite0) as seen:
        result = featviz.render(lite0, "logits:goldfish", recipe="lucent", steps=2, progress=False)
        assert result.images.shape[-2:] == (128, 128) and {s[-2:] for s in seen[:2]} == {(224, 224)}
        seen.clear()
        featviz.render(lite0, "logits:goldfish", recipe="lucent", size=240, steps=2, progress=False)
        assert {s[-2:] for s in seen[:2]} == {(264, 264)}  # 240 px padded by 12 a side, not resampled
    spec = dict(result.record["recipe"]["transforms"])["resize"]
    assert spec == {"size": 224, "up_only": True}

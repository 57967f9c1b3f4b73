"""The tools that call the render loop many times and arrange its results: ``atlas``,
``dream``, ``checkpoints`` and ``zoom``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from featviz.cli.options import (
    _given,
    _image_target,
    _load,
    _say,
    _UnitCommand,
    device_option,
    fps_option,
    lr_option,
    model_option,
    model_options,
    out_option,
    overwrite_option,
    quiet_option,
    recipe_option,
    recipe_options,
    seed_option,
    size_option,
    steps_option,
)
from featviz.errors import FeatvizError
from featviz.models import DEFAULT_MODEL


@click.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.argument("layer")
@click.option("--channels", help="START:STOP[:STEP] or a comma list (default: all channels)")
@click.option("--batch", type=click.IntRange(min=1), help="channels per render [library default: 16]")
@recipe_options(size_help="tile size in pixels [128]")
@seed_option
@click.option("--crop", type=click.IntRange(min=0), default=0, show_default=True, help="pixels cut from each tile side")
@click.option("--columns", type=click.IntRange(min=1), help="tiles per row (default: about square)")
@device_option()
@out_option("grid PNG (default: MODEL_LAYER_atlas.png)")
@overwrite_option
@click.option("--tiles", "tiles_dir", help="work folder (default: OUT's stem + _tiles)")
@model_options
@quiet_option()
def atlas(
    model: str,
    layer: str,
    channels: str | None,
    batch: int | None,
    recipe: str,
    steps: int | None,
    size: int | None,
    lr: float | None,
    seed: int,
    crop: int,
    columns: int | None,
    device: str,
    out: str | None,
    overwrite: bool,
    tiles_dir: str | None,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Render the CHANNELS of LAYER, BATCH at a time, into a labelled grid.

    Each finished tile is saved in the work folder (TILES/tiles/CHANNEL.png and .json) as
    soon as its batch is done; run the same command again after an interruption and only
    the missing tiles are rendered.
    """
    import featviz
    from featviz.io.outputs import check_replace, check_writable
    from featviz.optvis.record import identity

    adapter = _load(model, weights, pretrained)
    layer = adapter.layer_name(layer)
    target = _image_target(out, adapter.name, layer, "atlas")
    work = Path(tiles_dir) if tiles_dir else target.with_name(f"{target.stem}_tiles")
    check_writable(work / "tiles" / "atlas.json")
    check_replace(target, identity("atlas", {"model": adapter.name, "layer": layer, "seed": seed}), overwrite)
    try:
        result = featviz.atlas(
            adapter,
            layer,
            channels,
            recipe=recipe,
            steps=steps,
            lr=lr,
            seed=seed,
            crop=crop,
            columns=columns,
            out_dir=work,
            device=device,
            progress=not quiet,
            **_given(dict(batch=batch, size=size)),
        )
    except KeyboardInterrupt:
        done = len(list((work / "tiles").glob("*.json")))
        _say(f"interrupted: {done} finished tiles kept in {work}; run the same command to resume")
        sys.exit(130)
    path = featviz.save(result, target)[0]
    took = result.record["seconds"]
    click.echo(
        f"wrote {path} ({len(result.channels)} channels: {len(result.rendered)} rendered, "
        f"{len(result.loaded)} loaded from {work}; {took:.1f} s)"
    )


@click.command()
@click.argument("image")
@click.argument("unit_or_layer")
@model_option
@click.option("--octaves", type=click.IntRange(min=1), help="number of scales [library default: 4]")
@click.option("--octave-scale", type=click.FloatRange(min=1.0), help="size ratio between octaves [1.4]")
@steps_option("steps per octave [the dream recipe's: 10]", steps_type=click.IntRange(min=1))
@lr_option("mean change of a pixel per step [the dream recipe's: 0.01]")
@click.option("--jitter", type=click.IntRange(min=0), help="largest random shift in px [the dream recipe's: 16]")
@size_option("resize the photo so that its longer side has this many pixels")
@seed_option
@device_option()
@out_option("PNG path (default: IMAGE_dream.png)")
@overwrite_option
@model_options
@quiet_option()
def dream(
    image: str,
    unit_or_layer: str,
    model: str,
    octaves: int | None,
    octave_scale: float | None,
    steps: int | None,
    lr: float | None,
    jitter: int | None,
    size: int | None,
    seed: int,
    device: str,
    out: str | None,
    overwrite: bool,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """DeepDream: amplify UNIT_OR_LAYER (blocks.4, blocks.3:12, logits:hen...) in the photo IMAGE.

    IMAGE is an image file or skimage:NAME for a photo shipped with scikit-image
    (skimage:astronaut, skimage:chelsea, skimage:coffee, ...).
    """
    import featviz
    from featviz.io.outputs import check_replace
    from featviz.optvis.record import identity

    adapter = _load(model, weights, pretrained)
    target = _image_target(out, Path(image).stem if ":" not in image else image, "dream")
    check_replace(target, identity("dream", {"model": adapter.name, "image": image, "unit": unit_or_layer}), overwrite)
    given = dict(octaves=octaves, octave_scale=octave_scale, steps=steps, lr=lr, jitter=jitter)
    result = featviz.dream(
        adapter,
        image,
        unit_or_layer,
        size=size,
        seed=seed,
        device=device,
        progress=not quiet,
        **_given(given),
    )
    path = featviz.save(result, target)[0]
    h, w = result.image.shape[-2:]
    click.echo(
        f"wrote {path} ({w}x{h}, {len(result.octaves)} octaves, score {result.score_before:.3f} -> "
        f"{result.score_after:.3f}, {result.record['seconds']:.1f} s)"
    )


@click.command(cls=_UnitCommand)
@click.argument("model")
@click.argument("unit")
@click.argument("checkpoint_files", metavar="CHECKPOINT...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@recipe_options(steps_type=click.IntRange(min=1), lr=False)
@seed_option
@device_option()
@out_option("the strip, one image per checkpoint (default: MODEL_UNIT_checkpoints.png)")
@click.option("--animate", help="also write the images as .gif or .mp4, one frame per checkpoint")
@fps_option(2.0)
@overwrite_option
@quiet_option()
def checkpoints(
    model: str,
    unit: str,
    checkpoint_files: tuple[str, ...],
    recipe: str,
    steps: int | None,
    size: int | None,
    seed: int,
    device: str,
    out: str | None,
    animate: str | None,
    fps: float,
    overwrite: bool,
    quiet: bool,
) -> None:
    """A unit across training: render UNIT of MODEL (torchvision:NAME or timm:NAME) with each
    CHECKPOINT's weights (state-dict files, in training order), the same seed and recipe, into
    a strip, and with --animate an animation."""
    import featviz
    from featviz.io.outputs import check_replace, check_writable
    from featviz.optvis.record import identity
    from featviz.tools.checkpoints import across_checkpoints

    if not model.startswith(("torchvision:", "timm:")):
        raise FeatvizError(f"expected a torchvision:NAME or timm:NAME architecture for the checkpoints, got {model}")
    missing = [p for p in checkpoint_files if not Path(p).is_file()]
    if missing:
        raise FeatvizError(f"checkpoint files not found: {', '.join(missing)}")
    target = _image_target(out, model, unit, "checkpoints")
    if animate:
        from featviz.io.video import check_animation_path

        check_writable(check_animation_path(animate))
    check_replace(target, identity("checkpoints", {"model": model, "unit": unit, "seed": seed}), overwrite)
    result = across_checkpoints(
        model,
        unit,
        checkpoint_files,
        recipe=recipe,
        steps=steps,
        size=size,
        seed=seed,
        device=device,
        progress=not quiet,
    )
    path = featviz.save(result, target)[0]
    scores = ", ".join(f"{s:.3f}" for s in result.record["scores"])
    click.echo(f"wrote {path} ({len(checkpoint_files)} checkpoints, scores {scores})")
    if animate:
        from featviz.io.video import write_animation

        click.echo(f"wrote {write_animation(list(result.images), animate, fps=fps)}")


@click.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.argument("unit")
@click.option("--frames", type=click.IntRange(min=1), help="number of frames [library default: 120]")
@click.option("--zoom", "factor", type=click.FloatRange(min=1.0), help="magnification per frame [1.04]")
@click.option("--steps-per-frame", type=click.IntRange(min=1), help="optimization steps per frame [8]")
@click.option("--fade", type=click.FloatRange(0, 1, max_open=True), help="contrast pull per frame [0.03]")
@click.option("--first-steps", type=click.IntRange(min=1), help="steps of the first frame (recipe's value)")
@size_option("frame size in pixels [128]")
@recipe_option
@lr_option()
@fps_option(24.0)
@seed_option
@device_option()
@out_option(".mp4 or .gif (default: MODEL_UNIT_zoom.mp4, .gif without imageio-ffmpeg)")
@overwrite_option
@model_options
@quiet_option()
def zoom(
    model: str,
    unit: str,
    frames: int | None,
    factor: float | None,
    steps_per_frame: int | None,
    fade: float | None,
    first_steps: int | None,
    size: int | None,
    recipe: str,
    lr: float | None,
    fps: float,
    seed: int,
    device: str,
    out: str | None,
    overwrite: bool,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Eternal zoom into UNIT: each frame magnifies the last one and optimizes a few steps."""
    import featviz
    from featviz.io.outputs import check_replace, check_writable, default_name
    from featviz.io.video import check_animation_path, has_video_writer
    from featviz.optvis.record import identity

    adapter = _load(model, weights, pretrained)
    suffix = ".mp4" if has_video_writer() else ".gif"
    target = check_writable(check_animation_path(out or default_name(adapter.name, unit, "zoom") + suffix))
    check_replace(target, identity("zoom", {"model": adapter.name, "unit": unit, "seed": seed}), overwrite)
    given = dict(frames=frames, factor=factor, steps_per_frame=steps_per_frame, fade=fade, size=size)
    result = featviz.zoom(
        adapter,
        unit,
        first_steps=first_steps,
        recipe=recipe,
        lr=lr,
        seed=seed,
        device=device,
        progress=not quiet,
        **_given(given),
    )
    path = featviz.save(result, target, fps=fps)[0]
    size_mb, took = path.stat().st_size / 1e6, result.record["seconds"]
    click.echo(f"wrote {path} ({len(result.frames)} frames, {size_mb:.2f} MB, {took:.1f} s)")

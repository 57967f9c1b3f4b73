"""The ``featviz`` command line. It parses arguments and calls the library, nothing more."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from featviz.errors import FeatvizError
from featviz.models import DEFAULT_MODEL


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "unit"


def _png(path: str) -> str:
    return path if Path(path).suffix else f"{path}.png"


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave: the rest keep the library's own defaults."""
    return {k: v for k, v in options.items() if v is not None}


class _Group(click.Group):
    """Turns a FeatvizError into a one-line message and exit status 2, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FeatvizError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="featviz")
def main() -> None:
    """Feature visualization for PyTorch vision models."""


@main.command()
@click.argument("model", required=False)
@click.argument("unit", required=False)
@click.option(
    "--from",
    "from_record",
    type=click.Path(dir_okay=False),
    help="render again what a run record (X.json, or X.png beside it) describes",
)
@click.option("--recipe", default="default", show_default=True, help="preset: see `featviz recipes`")
@click.option("--steps", type=int, help="optimization steps (recipe's value when left out)")
@click.option("--size", type=int, help="image size in pixels (the model's input size when left out)")
@click.option("--lr", type=float, help="learning rate (recipe's value when left out)")
@click.option(
    "--redirect-relu",
    type=click.IntRange(min=0),
    help="redirect ReLU gradients for the first N steps (wakes units that start dead)",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps")
@click.option("--init", "init", type=click.Path(dir_okay=False), help="start from this photo")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="PNG path (default: MODEL_UNIT.png)")
@click.option("--animate", type=click.Path(dir_okay=False), help="also write the optimization as .gif or .mp4")
@click.option(
    "--every", type=click.IntRange(min=1), default=4, show_default=True, help="animation: a frame every K steps"
)
@click.option("--fps", type=float, default=12.0, show_default=True, help="animation frames per second")
@click.option("--diversity", type=click.IntRange(min=2), help="render N images of UNIT that differ from each other")
@click.option("--diversity-weight", type=float, help="weight of the diversity term (default 10)")
@click.option("--diversity-layer", help="layer where images are compared (default: the unit's own)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def render(
    model: str | None,
    unit: str | None,
    from_record: str | None,
    recipe: str,
    steps: int | None,
    size: int | None,
    lr: float | None,
    redirect_relu: int | None,
    seed: int,
    device: str,
    init: str | None,
    out: str | None,
    animate: str | None,
    every: int,
    fps: float,
    diversity: int | None,
    diversity_weight: float | None,
    diversity_layer: str | None,
    quiet: bool,
) -> None:
    """Render UNIT of MODEL and write a PNG with a JSON record beside it.

    UNIT is LAYER:CHANNEL (blocks.5:51), LAYER:CHANNEL@X,Y (a neuron), LAYER (DeepDream),
    logits:CLASS or probs:CLASS (class name or index), or an expression of these such as
    "logits:hen - logits:cock"; MODEL may be left out (the embedded default). With
    --diversity N, OUT is a grid of the N images and each image is also written as
    OUT_0.png, OUT_1.png, ... With --from X.json, the run that X.json records is rendered
    again (same pixels on the machine that made it). Ctrl-C stops the render and writes the
    image reached so far, its record marked "interrupted".
    """
    import featviz
    from featviz.optvis.callbacks import RecordFrames

    if from_record:
        if model or unit:
            raise click.UsageError("give either MODEL UNIT or --from RECORD, not both")
        record = featviz.load_record(from_record)
        result = featviz.replay(record, progress=not quiet)
        _finish(result, out or str(Path(from_record).with_suffix("")) + "_replay", None, quiet)
        return
    if model is None:
        raise click.UsageError("missing UNIT: e.g. featviz render efficientnet_lite0 logits:hen")
    if unit is None:  # one argument: a unit of the default model
        model, unit = DEFAULT_MODEL, model
    adapter = featviz.load_model(model)
    frames = RecordFrames(every=every)
    kwargs: dict[str, Any] = dict(recipe=recipe, steps=steps, size=size, lr=lr, seed=seed, device=device)
    kwargs.update(redirect_relu=redirect_relu)
    kwargs.update(init=init, callbacks=[frames] if animate else [], progress=not quiet)
    if diversity:
        from featviz.diverse import diverse

        extra = {"weight": diversity_weight} if diversity_weight is not None else {}
        result = diverse(adapter, unit, diversity, layer=diversity_layer, **extra, **kwargs)
    else:
        result = featviz.render(adapter, unit, **kwargs)
    target = out or f"{_slug(adapter.name)}_{_slug(unit)}"
    _finish(result, target, adapter, quiet, grid=bool(diversity))
    if animate:
        from featviz.io.video import write_animation

        click.echo(f"wrote {write_animation(frames.frames, animate, fps=fps)} ({len(frames.frames)} frames)")


def _finish(result: Any, target: str, adapter: Any, quiet: bool, grid: bool = False) -> None:
    """Write a render's images and records, and say what was written and what the model sees."""
    import featviz

    paths = featviz.save(result, _png(target), grid=grid)
    scores = ", ".join(f"{s:.3f}" for s in result.final.tolist())
    line = f"wrote {paths[0]} ({result.record['seconds']:.1f} s, score {scores})"
    if result.interrupted:
        click.echo(f"interrupted after {len(result.curve)} steps: {line}", err=True)
        sys.exit(130)
    adapter = adapter or featviz.load_model(result.record["model"])
    if adapter.labels is not None:
        seen = ", ".join(f"{p[0][1]!r} ({p[0][0]}) at {p[0][2]:.2f}" for p in adapter.predict(result.images))
        line += f"; {adapter.name} sees {seen}"
    click.echo(line)


@main.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--size", type=int, help="input size for the shape trace")
@click.option("--depth", type=int, help="only layers with at most this many dots in their name")
@click.option("--grep", "pattern", help="only layers whose name contains this text")
def layers(model: str, size: int | None, depth: int | None, pattern: str | None) -> None:
    """List MODEL's layers: dotted name, type, output shape and channel count."""
    import featviz
    from featviz.models.layers import layer_table

    adapter = featviz.load_model(model)
    rows = layer_table(adapter, size)
    rows = [r for r in rows if (depth is None or r.depth <= depth) and (not pattern or pattern in r.name)]
    width = max((len(r.name) for r in rows), default=10)
    click.echo(f"{'layer':<{width}}  {'type':<22} {'output shape':<18} channels")
    for r in rows:
        shape = "x".join(str(s) for s in r.shape)
        click.echo(f"{r.name:<{width}}  {r.kind:<22} {shape:<18} {r.channels or ''}")
    click.echo(f"{'logits':<{width}}  {'(model output)':<22}")


@main.command()
@click.argument("query", required=False, default="")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
def classes(query: str, model: str) -> None:
    """List class indices and names, or those matching QUERY (a name part or an index)."""
    import featviz

    labels = featviz.load_model(model).labels if model != DEFAULT_MODEL else featviz.imagenet_labels()
    if labels is None:
        raise FeatvizError(f"{model} has no class labels")
    if query.isdigit():
        hits = [(labels.index(int(query)), labels.name(int(query)))]
    else:
        hits = labels.search(query)
        if not hits:
            labels.index(query)  # raises with close matches
    for i, name in hits:
        click.echo(f"{i:>4}  {name}")


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--top", "k", default=5, show_default=True)
def predict(images: tuple[str, ...], model: str, k: int) -> None:
    """Classify IMAGES with MODEL and print the top-k classes with probabilities."""
    import featviz
    from featviz.data.photos import load_image

    adapter = featviz.load_model(model)
    for path in images:
        batch = load_image(path, adapter.input_size)[None]
        click.echo(path)
        for idx, name, p in adapter.predict(batch, k=k)[0]:
            click.echo(f"  {idx:>4}  {name:<30} {p:.3f}")


@main.command()
def recipes() -> None:
    """List the recipes with what each does."""
    from featviz.optvis.recipes import RECIPES

    for r in RECIPES.values():
        click.echo(f"{r.name:<8} {r.param:<8} {r.steps:>4} steps  {r.description}")


@main.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.argument("layer")
@click.option("--channels", help="START:STOP[:STEP] or a comma list (default: all channels)")
@click.option("--batch", type=click.IntRange(min=1), help="channels per render [library default: 16]")
@click.option("--recipe", default="default", show_default=True)
@click.option("--steps", type=int, help="optimization steps (recipe's value when left out)")
@click.option("--size", type=int, help="tile size in pixels [128]")
@click.option("--lr", type=float, help="learning rate (recipe's value when left out)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--crop", type=click.IntRange(min=0), default=0, show_default=True, help="pixels cut from each tile side")
@click.option("--columns", type=click.IntRange(min=1), help="tiles per row (default: about square)")
@click.option("--device", default="auto", show_default=True)
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="grid PNG (default: MODEL_LAYER_atlas.png)")
@click.option(
    "--tiles", "tiles_dir", type=click.Path(file_okay=False), help="work folder (default: OUT's stem + _tiles)"
)
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
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
    tiles_dir: str | None,
    quiet: bool,
) -> None:
    """Render the CHANNELS of LAYER, BATCH at a time, into a labelled grid.

    Each finished tile is saved in the work folder (TILES/tiles/CHANNEL.png and .json) as
    soon as its batch is done; run the same command again after an interruption and only
    the missing tiles are rendered.
    """
    import featviz

    adapter = featviz.load_model(model)
    target = Path(_png(out or f"{_slug(adapter.name)}_{_slug(layer)}_atlas"))
    work = Path(tiles_dir) if tiles_dir else target.with_name(f"{target.stem}_tiles")
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
        click.echo(f"\ninterrupted: {done} finished tiles kept in {work}; run the same command to resume", err=True)
        sys.exit(130)
    path = featviz.save(result, target)[0]
    took = result.record["seconds"]
    click.echo(
        f"wrote {path} ({len(result.channels)} channels: {len(result.rendered)} rendered, "
        f"{len(result.loaded)} loaded from {work}; {took:.1f} s)"
    )


@main.command()
@click.argument("image")
@click.argument("unit_or_layer")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--octaves", type=click.IntRange(min=1), help="number of scales [library default: 4]")
@click.option("--octave-scale", type=click.FloatRange(min=1.0), help="size ratio between octaves [1.4]")
@click.option("--steps", type=click.IntRange(min=1), help="steps per octave [the dream recipe's: 10]")
@click.option("--lr", type=float, help="mean change of a pixel per step [the dream recipe's: 0.01]")
@click.option("--jitter", type=click.IntRange(min=0), help="largest random shift in px [the dream recipe's: 16]")
@click.option("--size", type=int, help="resize the photo so that its longer side has this many pixels")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="PNG path (default: IMAGE_dream.png)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
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
    quiet: bool,
) -> None:
    """DeepDream: amplify UNIT_OR_LAYER (blocks.4, blocks.3:12, logits:hen...) in the photo IMAGE.

    IMAGE is an image file or skimage:NAME for a photo shipped with scikit-image
    (skimage:astronaut, skimage:chelsea, skimage:coffee, ...).
    """
    import featviz

    given = dict(octaves=octaves, octave_scale=octave_scale, steps=steps, lr=lr, jitter=jitter)
    result = featviz.dream(
        featviz.load_model(model),
        image,
        unit_or_layer,
        size=size,
        seed=seed,
        device=device,
        progress=not quiet,
        **_given(given),
    )
    target = _png(out or f"{_slug(Path(image).stem if ':' not in image else image)}_dream")
    path = featviz.save(result, target)[0]
    h, w = result.image.shape[-2:]
    click.echo(
        f"wrote {path} ({w}x{h}, {len(result.octaves)} octaves, score {result.score_before:.3f} -> "
        f"{result.score_after:.3f}, {result.record['seconds']:.1f} s)"
    )


@main.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.argument("unit")
@click.option("--frames", type=click.IntRange(min=1), help="number of frames [library default: 120]")
@click.option("--zoom", "factor", type=click.FloatRange(min=1.0), help="magnification per frame [1.04]")
@click.option("--steps-per-frame", type=click.IntRange(min=1), help="optimization steps per frame [8]")
@click.option("--fade", type=click.FloatRange(0, 1, max_open=True), help="contrast pull per frame [0.03]")
@click.option("--first-steps", type=click.IntRange(min=1), help="steps of the first frame (recipe's value)")
@click.option("--size", type=int, help="frame size in pixels [128]")
@click.option("--recipe", default="default", show_default=True)
@click.option("--lr", type=float, help="learning rate (recipe's value when left out)")
@click.option("--fps", type=float, default=24.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False), default="zoom.mp4", show_default=True, help=".mp4 or .gif"
)
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
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
    out: str,
    quiet: bool,
) -> None:
    """Eternal zoom into UNIT: each frame magnifies the last one and optimizes a few steps."""
    import featviz

    given = dict(frames=frames, factor=factor, steps_per_frame=steps_per_frame, fade=fade, size=size)
    result = featviz.zoom(
        featviz.load_model(model),
        unit,
        first_steps=first_steps,
        recipe=recipe,
        lr=lr,
        seed=seed,
        device=device,
        progress=not quiet,
        **_given(given),
    )
    path = featviz.save(result, out, fps=fps)[0]
    size_mb, took = path.stat().st_size / 1e6, result.record["seconds"]
    click.echo(f"wrote {path} ({len(result.frames)} frames, {size_mb:.2f} MB, {took:.1f} s)")


if __name__ == "__main__":
    main()

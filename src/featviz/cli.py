"""The ``featviz`` command line. It parses arguments and calls the library, nothing more.

Everything that can be checked without rendering (output paths and formats, the unit and its
position, the size against the memory there is, learning rate, device) is checked before the
first step; a problem is one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from featviz.errors import FeatvizError
from featviz.models import DEFAULT_MODEL


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave: the rest keep the library's own defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _image_target(out: str | None, *default: str) -> Path:
    """Where an image goes: ``out`` (``.png`` added when it has no suffix) or a safe default
    name; checked for a known format and a writable folder."""
    from featviz.io.images import image_format
    from featviz.io.outputs import check_writable, default_name

    target = Path(out) if out else Path(default_name(*default))
    if target.is_dir():
        raise FeatvizError(f"--out {out} is a folder: expected an image file name, e.g. {target / 'render.png'}")
    target = target if target.suffix else target.with_name(target.name + ".png")
    image_format(target)
    return check_writable(target)


def _say(message: str) -> None:
    """A message on its own line on stderr (after any progress bar)."""
    click.echo(message, err=True)


class _Group(click.Group):
    """Turns a FeatvizError into a one-line message and exit status 2, not a traceback, and
    each warning into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        package = str(Path(__file__).parent)

        def show(message: Any, category: Any, filename: str, *args: Any, **kwargs: Any) -> None:
            # featviz's own warnings, one line each; the libraries' deprecation notes are not
            # the command line user's to act on.
            if filename.startswith(package) or issubclass(category, UserWarning) and "featviz" in str(category):
                _say(f"warning: {message}")

        with warnings.catch_warnings():
            warnings.showwarning = show
            try:
                return super().invoke(ctx)
            except FeatvizError as err:
                _say(f"error: {err}")
                sys.exit(2)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"featviz_{param.name}"] = value
    return value


def _model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--labels",
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=_remember,
        help="class names, one a line (a classifier of your own: as many as it has outputs)",
    )(f)
    f = click.option("--pretrained", is_flag=True, help="timm:NAME models: trained weights (downloads once)")(f)
    return click.option(
        "--weights",
        help="torchvision:NAME models: weights to load, e.g. DEFAULT (downloads once); "
        "torchvision: and timm: models: a state dict FILE (.pth, .safetensors)",
    )(f)


def _load(model: str, weights: str | None = None, pretrained: bool = False) -> Any:
    import featviz
    from featviz.models.weights import is_weights_file

    kwargs: dict[str, Any] = {}
    if weights is not None:
        file_ok = model.startswith("timm:") and is_weights_file(weights)
        if not (model.startswith("torchvision:") or file_ok):
            raise FeatvizError(f"--weights is for torchvision:NAME models (or a FILE for timm:NAME), not {model}")
        kwargs["weights"] = weights
    if pretrained:
        if not model.startswith("timm:"):
            raise FeatvizError(f"--pretrained is for timm:NAME models, not {model}")
        kwargs["pretrained"] = True
    labels = click.get_current_context().meta.get("featviz_labels")
    return featviz.load_model(model, labels=labels, **kwargs)


#: Record keys that decide a render's pixels: an existing output with the same is the same run.
_SAME_RUN = ("model", "unit", "unit_form", "recipe", "seed", "batch", "size", "init", "param_seed", "load")


@click.group(cls=_Group)
@click.version_option(package_name="featviz")
def main() -> None:
    """Feature visualization for PyTorch vision models."""
    from featviz.models.speed import hold_heap

    hold_heap(True)  # its own process: a render's freed memory stays in the heap between steps


class _UnitCommand(click.Command):
    """A command whose UNIT may start with a minus (``-logits:hen``, ``-(blocks.5:1)``): such
    an argument is a unit, not a bundle of short options, so it needs no ``--`` first."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        units = [
            " " + a if a.startswith("-") and not a.startswith("--") and (":" in a or "(" in a) else a for a in args
        ]
        return super().parse_args(ctx, units)


@main.command(cls=_UnitCommand)
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
@click.option("--init", "init", help="start from this photo (a file or skimage:NAME)")
@click.option("--out", "-o", help="image path (default: MODEL_UNIT.png)")
@click.option("--overwrite", is_flag=True, help="replace OUT even when it holds another run")
@click.option("--animate", help="also write the optimization as .gif or .mp4")
@click.option(
    "--every", type=click.IntRange(min=1), default=4, show_default=True, help="animation: a frame every K steps"
)
@click.option("--fps", type=float, default=12.0, show_default=True, help="animation frames per second")
@click.option("--diversity", type=click.IntRange(min=2), help="render N images of UNIT that differ from each other")
@click.option("--diversity-weight", type=float, help="weight of the diversity term (default 10)")
@click.option("--diversity-layer", help="layer where images are compared (default: the unit's own)")
@_model_options
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
    overwrite: bool,
    animate: str | None,
    every: int,
    fps: float,
    diversity: int | None,
    diversity_weight: float | None,
    diversity_layer: str | None,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Render UNIT of MODEL and write a PNG with a JSON record beside it.

    UNIT is LAYER:CHANNEL (blocks.5:51), LAYER:CHANNEL@X,Y (a neuron; X,Y on the layer's
    grid as `featviz layers` prints it), LAYER (DeepDream), logits:CLASS or probs:CLASS
    (class name or index), or an expression of these such as "logits:hen - logits:cock" or
    "-(blocks.5:1 + blocks.5:2)"; MODEL may be left out (the embedded default). With
    --diversity N, OUT is a grid of the N images and each image is also written as OUT_0.png,
    OUT_1.png, ... With --from X.json, the run that X.json records is rendered again (same
    pixels on the machine that made it). Ctrl-C stops the render and writes the image
    reached so far, its record marked "interrupted".
    """
    from featviz.io.outputs import check_replace
    from featviz.optvis.callbacks import RecordFrames
    from featviz.optvis.render import run
    from featviz.optvis.spec import resolve

    model, unit = (model.strip() if model is not None else None), (unit.strip() if unit is not None else None)
    if "" in (model, unit):
        what = "MODEL" if model == "" and unit is not None else "UNIT"
        raise FeatvizError(f"the {what} is empty: expected e.g. featviz render efficientnet_lite0 logits:hen")
    if from_record:
        _replay(model, unit, from_record, out, overwrite, quiet)
        return
    if model is None:
        raise click.UsageError("missing UNIT: e.g. featviz render efficientnet_lite0 logits:hen")
    if unit is None:  # one argument: a unit of the default model
        model, unit = DEFAULT_MODEL, model
    adapter = _load(model, weights, pretrained)
    target = _image_target(out, adapter.name, unit)
    if animate:
        from featviz.io.outputs import check_writable
        from featviz.io.video import check_animation_path

        check_writable(check_animation_path(animate))
    objective: Any = unit
    if diversity:
        from featviz.diverse import diversity_objective

        extra = {"weight": diversity_weight} if diversity_weight is not None else {}
        objective = diversity_objective(adapter, unit, diversity, layer=diversity_layer, **extra)
    frames = RecordFrames(every=every)
    plan = resolve(
        adapter,
        objective,
        recipe=recipe,
        steps=steps,
        size=size,
        lr=lr,
        redirect_relu=redirect_relu,
        seed=seed,
        device=device,
        init=init,
        batch=diversity,
        callbacks=[frames] if animate else [],
    )
    same = {"kind": "render", **{k: v for k, v in plan.spec.to_dict().items() if k in _SAME_RUN}}
    check_replace(target, same, overwrite)
    if animate and Path(animate).exists() and not (overwrite or target.exists()):
        raise FeatvizError(f"{animate} exists: pass --overwrite to replace it, or choose another --animate")
    result = run(plan, progress=not quiet)
    _finish(result, target, adapter)
    if animate:
        from featviz.io.video import write_animation

        click.echo(f"wrote {write_animation(frames.frames, animate, fps=fps)} ({len(frames.frames)} frames)")


def _replay(model: str | None, unit: str | None, source: str, out: str | None, overwrite: bool, quiet: bool) -> None:
    import featviz
    from featviz.io.outputs import check_replace
    from featviz.optvis.spec import RunSpec

    if model or unit:
        raise click.UsageError("give either MODEL UNIT or --from RECORD, not both")
    record = featviz.load_record(source)
    spec = RunSpec.from_record(record)  # every field checked before any file is touched
    target = _image_target(out or str(Path(source).with_suffix("")) + "_replay")
    check_replace(target, {"kind": "render", **{k: record[k] for k in _SAME_RUN if k in record}}, overwrite)
    adapter = featviz.models.load_again(spec.model, spec.load)  # its weights file and labels, as recorded
    result = featviz.replay(record, model=adapter, progress=not quiet)
    if result.images.shape[0] > 1 and "index" in record:  # one image of a batch: the batch ran, the image is kept
        result = result.pick(record["index"])
    _finish(result, target, adapter)


def _finish(result: Any, target: Path, adapter: Any) -> None:
    """Write a render's images and records, and say what was written and what the model sees."""
    import featviz

    paths = featviz.save(result, target)
    scores = ", ".join(f"{s:.3f}" for s in result.final.tolist())
    line = f"wrote {paths[0]} ({result.record['seconds']:.1f} s, score {scores})"
    if result.interrupted:
        _say(f"interrupted after {len(result.curve)} steps: {line}")
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
@_model_options
def layers(
    model: str, size: int | None, depth: int | None, pattern: str | None, weights: str | None, pretrained: bool
) -> None:
    """List MODEL's layers: dotted name, type, output shape and channel count."""
    from featviz.models.layers import layer_table, stages

    adapter = _load(model, weights, pretrained)
    rows = layer_table(adapter, size)
    rows = [r for r in rows if (depth is None or r.depth <= depth) and (not pattern or pattern in r.name)]
    staged = set(stages(adapter))
    width = max((len(r.name) for r in rows), default=10)
    click.echo(f"{'layer':<{width}}  {'type':<22} {'output shape':<18} {'layout':<7} {'channels':<8} stage")
    for r in rows:
        shape = "x".join(str(s) for s in r.shape)
        mark = "stage" if r.name in staged else ""
        click.echo(f"{r.name:<{width}}  {r.kind:<22} {shape:<18} {r.layout:<7} {r.channels or '':<8} {mark}".rstrip())
    click.echo(f"{'logits':<{width}}  {'(model output)':<22}")


@main.command()
@click.argument("query", required=False, default="")
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
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
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
@click.option("--top", "k", type=int, default=5, show_default=True)
@_model_options
def predict(images: tuple[str, ...], model: str, k: int, weights: str | None, pretrained: bool) -> None:
    """Classify IMAGES (files or skimage:NAME) with MODEL and print the top-k classes."""
    from featviz.data.photos import load_image, resize, too_small

    adapter = _load(model, weights, pretrained)
    classes = len(adapter.labels) if adapter.labels is not None else None
    if k < 1 or (classes is not None and k > classes):
        raise FeatvizError(f"--top {k}: expected 1 to {classes or 'the number of classes'}")
    photos, notes = [], []  # all read before any output, each resized at once to hold little memory
    for path in images:
        photo = load_image(path)
        notes.append(too_small(photo, adapter.input_size))
        photos.append(resize(photo, adapter.input_size))
    for path, photo, note in zip(images, photos, notes, strict=True):
        if note is not None:
            _say(f"warning: {path} is {note}")
        batch = photo[None]
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
@click.option("--out", "-o", help="grid PNG (default: MODEL_LAYER_atlas.png)")
@click.option("--overwrite", is_flag=True, help="replace OUT even when it holds another run")
@click.option("--tiles", "tiles_dir", help="work folder (default: OUT's stem + _tiles)")
@_model_options
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

    adapter = _load(model, weights, pretrained)
    layer = adapter.layer_name(layer)
    target = _image_target(out, adapter.name, layer, "atlas")
    work = Path(tiles_dir) if tiles_dir else target.with_name(f"{target.stem}_tiles")
    check_writable(work / "tiles" / "atlas.json")
    check_replace(target, {"kind": "atlas", "model": adapter.name, "layer": layer, "seed": seed}, overwrite)
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


@main.command()
@click.argument("image")
@click.argument("unit_or_layer")
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
@click.option("--octaves", type=click.IntRange(min=1), help="number of scales [library default: 4]")
@click.option("--octave-scale", type=click.FloatRange(min=1.0), help="size ratio between octaves [1.4]")
@click.option("--steps", type=click.IntRange(min=1), help="steps per octave [the dream recipe's: 10]")
@click.option("--lr", type=float, help="mean change of a pixel per step [the dream recipe's: 0.01]")
@click.option("--jitter", type=click.IntRange(min=0), help="largest random shift in px [the dream recipe's: 16]")
@click.option("--size", type=int, help="resize the photo so that its longer side has this many pixels")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", "-o", help="PNG path (default: IMAGE_dream.png)")
@click.option("--overwrite", is_flag=True, help="replace OUT even when it holds another run")
@_model_options
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

    adapter = _load(model, weights, pretrained)
    target = _image_target(out, Path(image).stem if ":" not in image else image, "dream")
    check_replace(target, {"kind": "dream", "model": adapter.name, "image": image, "unit": unit_or_layer}, overwrite)
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


@main.command(cls=_UnitCommand)
@click.argument("model")
@click.argument("unit")
@click.argument("checkpoint_files", metavar="CHECKPOINT...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--recipe", default="default", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), help="optimization steps (recipe's value when left out)")
@click.option("--size", type=int, help="image size in pixels (the model's input size when left out)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", "-o", help="the strip, one image per checkpoint (default: MODEL_UNIT_checkpoints.png)")
@click.option("--animate", help="also write the images as .gif or .mp4, one frame per checkpoint")
@click.option("--fps", type=float, default=2.0, show_default=True)
@click.option("--overwrite", is_flag=True, help="replace OUT even when it holds another run")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
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
    from featviz.checkpoints import across_checkpoints
    from featviz.io.outputs import check_replace, check_writable

    if not model.startswith(("torchvision:", "timm:")):
        raise FeatvizError(f"expected a torchvision:NAME or timm:NAME architecture for the checkpoints, got {model}")
    missing = [p for p in checkpoint_files if not Path(p).is_file()]
    if missing:
        raise FeatvizError(f"checkpoint files not found: {', '.join(missing)}")
    target = _image_target(out, model, unit, "checkpoints")
    if animate:
        from featviz.io.video import check_animation_path

        check_writable(check_animation_path(animate))
    check_replace(target, {"kind": "checkpoints", "model": model, "unit": unit, "seed": seed}, overwrite)
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
    import featviz

    path = featviz.save(result, target)[0]
    scores = ", ".join(f"{s:.3f}" for s in result.record["scores"])
    click.echo(f"wrote {path} ({len(checkpoint_files)} checkpoints, scores {scores})")
    if animate:
        from featviz.io.video import write_animation

        click.echo(f"wrote {write_animation(list(result.images), animate, fps=fps)}")


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
@click.option("--out", "-o", help=".mp4 or .gif (default: MODEL_UNIT_zoom.mp4, .gif without imageio-ffmpeg)")
@click.option("--overwrite", is_flag=True, help="replace OUT even when it holds another run")
@_model_options
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

    adapter = _load(model, weights, pretrained)
    suffix = ".mp4" if has_video_writer() else ".gif"
    target = check_writable(check_animation_path(out or default_name(adapter.name, unit, "zoom") + suffix))
    check_replace(target, {"kind": "zoom", "model": adapter.name, "unit": unit, "seed": seed}, overwrite)
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


@main.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.argument("layers")
@click.option("--data", default="shipped", show_default=True, help="shipped, a folder of images or a list file")
@click.option("-k", "k", type=int, default=9, show_default=True, help="examples per channel and list")
@click.option("--size", type=int, help="image size (the model's input size when left out)")
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="DataLoader workers that decode images")
@click.option("--limit", type=int, help="only the first N images of the source")
@click.option("--out", "-o", help="folder for examples.json and the patches (default: MODEL_LAYERS_examples)")
@click.option("--device", default="auto", show_default=True)
@_model_options
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def examples(
    model: str,
    layers: str,
    data: str,
    k: int,
    size: int | None,
    batch: int,
    workers: int,
    limit: int | None,
    out: str | None,
    device: str,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Dataset examples of every channel of LAYERS (comma-separated): the top and bottom
    images by the channel's spatial maximum (and the top by its mean), with patches."""
    from featviz.examples import examples as find
    from featviz.io.examples import write_examples
    from featviz.io.outputs import check_writable, default_name

    adapter = _load(model, weights, pretrained)
    names = [adapter.layer_name(n.strip()) for n in layers.split(",") if n.strip()]
    folder = Path(out or default_name(adapter.name, *names, "examples"))
    check_writable(folder / "examples.json")
    result = find(
        adapter,
        names,
        data=data,
        k=k,
        size=size,
        batch=batch,
        workers=workers,
        limit=limit,
        device=device,
        progress=not quiet,
    )
    files = write_examples(result, folder)
    click.echo(
        f"wrote {len(files)} files to {folder} ({len(result.items) - len(result.skipped)} images, "
        f"{len(result.skipped)} skipped, {result.images_per_second:.1f} images/s)"
    )


@main.command()
@click.argument("image")
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
@click.option("--class", "target", help="the class to explain (name or index; default: the top class)")
@click.option("--layer", help="the layer whose channels explain it (default: the last stage before pooling)")
@click.option("--earlier", help="the layer the circuit reaches into (default: the stage before --layer)")
@click.option("--top", type=int, default=8, show_default=True, help="channels for and against, ablated together")
@click.option("--out", "-o", help="the HTML report (default: IMAGE_explain.html); a .png and .json go beside it")
@click.option("--microscope", "microscope_dir", help="take visualizations and examples from this Microscope")
@click.option("--size", type=int, default=128, show_default=True, help="visualizations' size in pixels")
@click.option("--steps", type=int, help="steps per visualization (the microscope recipe's 64 when left out)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@_model_options
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def explain(
    image: str,
    model: str,
    target: str | None,
    layer: str | None,
    earlier: str | None,
    top: int,
    out: str | None,
    microscope_dir: str | None,
    size: int,
    steps: int | None,
    seed: int,
    device: str,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Explain why MODEL classifies IMAGE (a file or skimage:NAME) as it does: top classes,
    attribution maps (captum), the channels for and against with their visualizations, a
    small circuit, and faithfulness checks, in one self-contained HTML report."""
    from featviz.data.photos import load_image
    from featviz.explain import explain as run_explain
    from featviz.explain import write_report
    from featviz.io.outputs import check_writable

    stem = image.split(":", 1)[1] if image.startswith("skimage:") else Path(image).stem
    path = Path(out or f"{stem}_explain.html")
    if path.suffix.lower() not in (".html", ".htm"):
        raise FeatvizError(f"expected the report as an .html file, got {path}")
    check_writable(path)
    from featviz.models import place

    adapter = _load(model, weights, pretrained)
    place(adapter, model, device)  # a model named on the command line goes where --device says
    photo = load_image(image)
    result = run_explain(
        adapter,
        photo,
        target=target,
        layer=layer,
        earlier=earlier,
        top=top,
        size=size,
        steps=steps,
        seed=seed,
        microscope=microscope_dir,
        device=device,
        progress=not quiet,
        source=image,
    )
    files = write_report(result, path)
    a = result.ablation

    def drop(how: str) -> str:
        d = a[how]
        return f"{d['top_drop']:.2f} vs {d['random_mean']:.2f} +- {d['random_std']:.2f}"

    untrained = " (random weights, not trained)" if result.warning else ""
    click.echo(
        f"{result.model}{untrained}: {result.target[1]} ({result.target[0]}); the score drops when the top "
        f"{a['k']} channels of {result.layer} (vs {a['draws']} random sets) are set to their mean over "
        f"{a['reference_photos']} reference photos {drop('mean')} (the verdict: {'holds' if a['holds'] else 'weak'}), "
        f"to zero {drop('zero')}, to their own mean over the photo {drop('image_mean')}; "
        f"wrote {', '.join(str(f) for f in files)} in {result.seconds['total']:.0f} s"
    )


@main.group()
def microscope() -> None:
    """Build a browsable Microscope of a model."""


@microscope.command("build")
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--out", "-o", required=True, help="the folder (resumable: run the same command again)")
@click.option("--layers", help="comma-separated layers (default: an early, a middle and a late stage)")
@click.option("--all", "all_layers", is_flag=True, help="every top-level numbered stage of the model")
@click.option("--units-per-layer", type=int, default=32, show_default=True, help="channels 0..N-1 of each layer")
@click.option("--data", default="shipped", show_default=True, help="images for the dataset examples")
@click.option("--examples-limit", type=int, help="only the first N images of the data")
@click.option("--size", type=int, default=128, show_default=True)
@click.option("--steps", type=int, help="steps per render (the microscope recipe's 64 when left out)")
@click.option("-k", "k", type=int, default=9, show_default=True, help="dataset examples per list")
@click.option("--batch", type=int, default=8, show_default=True, help="units per render")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@_model_options
@click.option("--quiet", "-q", is_flag=True, help="no progress bars")
def microscope_build(
    model: str,
    out: str,
    layers: str | None,
    all_layers: bool,
    units_per_layer: int,
    data: str,
    examples_limit: int | None,
    size: int,
    steps: int | None,
    k: int,
    batch: int,
    seed: int,
    device: str,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Render every chosen unit of MODEL with its dataset examples into OUT, resumably.

    Under torchrun (torchrun --nproc-per-node N -m featviz microscope build ...) the ranks
    share the units and the data (gloo on CPU, nccl on GPU).
    """
    import os

    from featviz.io.outputs import check_writable
    from featviz.microscope import build

    adapter = _load(model, weights, pretrained)
    names = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
    if all_layers:
        from featviz.models.layers import stages

        names = stages(adapter)
    check_writable(Path(out) / "catalog.sqlite")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() and device != "cpu" else "gloo")
        if torch.cuda.is_available() and device == "auto":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    try:
        report = build(
            adapter,
            out,
            layers=names,
            units_per_layer=units_per_layer,
            data=data,
            size=size,
            steps=steps,
            k=k,
            batch=batch,
            seed=seed,
            examples_limit=examples_limit,
            device=device,
            progress=not quiet,
        )
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    who = f"rank {report.rank} of {report.world}: " if report.world > 1 else ""
    click.echo(
        f"{who}{out}: {len(report.layers)} layers, {report.units} units ({report.rendered} rendered, "
        f"{report.skipped} already done) in {report.seconds:.1f} s; examples at {report.images_per_second:.1f} images/s"
    )


@microscope.command("site")
@click.argument("folder")
def microscope_site(folder: str) -> None:
    """Write (again) the static site of a built Microscope FOLDER: open FOLDER/index.html."""
    from featviz.microscope.catalog import require
    from featviz.microscope.site import write_site

    require(folder)
    pages = write_site(folder)
    click.echo(f"wrote {len(pages)} files; open {Path(folder) / 'index.html'}")


@microscope.command("serve")
@click.argument("folder")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="beyond loopback: open to the network")
@click.option("--queue", type=int, default=16, show_default=True, help="units that may wait for a render")
@click.option("--device", default="auto", show_default=True, help="where skipped units are rendered")
def microscope_serve(folder: str, port: int, host: str, queue: int, device: str) -> None:
    """Serve a built Microscope FOLDER locally; opening a unit the build skipped renders it."""
    from featviz.microscope.serve import LOOPBACK, serve

    def ready(url: str) -> None:  # once the folder, its catalog and the port are checked
        if host not in LOOPBACK:
            _say(f"warning: listening on {host}: anyone who can reach this machine can browse {folder}")
        click.echo(f"serving {folder} at {url} (Ctrl-C stops)")

    try:
        serve(folder, host=host, port=port, queue=queue, device=device, ready=ready)
    except KeyboardInterrupt:
        _say("stopped (a unit whose render was under way renders again when its page is opened)")
        sys.exit(130)


if __name__ == "__main__":
    main()


@main.command()
@click.argument("image")
@click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)
@click.option("--layer", help="the layer whose channels are grouped (default: the last stage before pooling)")
@click.option("-k", "k", type=int, default=6, show_default=True, help="number of groups")
@click.option("--size", type=int, default=128, show_default=True, help="visualizations' size in pixels")
@click.option("--steps", type=int, help="steps per visualization (the microscope recipe's 64 when left out)")
@click.option("--class", "target", help="the class the groups are attributed to (default: the top class)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", "-o", help="the overview PNG (default: IMAGE_groups.png); a .json goes beside it")
@_model_options
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def groups(
    image: str,
    model: str,
    layer: str | None,
    k: int,
    size: int,
    steps: int | None,
    target: str | None,
    seed: int,
    device: str,
    out: str | None,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Find the K groups of channels of a layer that fire together on IMAGE (a file or
    skimage:NAME), with where each is, its visualization, its share of the class's
    attribution, and whether taking the top group out matters more than a random direction."""
    from featviz.data.photos import load_image
    from featviz.groups import groups as run_groups
    from featviz.io.files import atomic_write, json_bytes
    from featviz.io.images import png_bytes
    from featviz.models import place

    stem = image.split(":", 1)[1] if image.startswith("skimage:") else Path(image).stem
    path = _image_target(out, f"{stem}_groups")
    if path.suffix.lower() != ".png":
        raise FeatvizError(f"expected the overview as a .png file, got {path}")
    adapter = _load(model, weights, pretrained)
    place(adapter, model, device)  # a model named on the command line goes where --device says
    photo = load_image(image)
    result = run_groups(
        adapter,
        photo,
        layer,
        k,
        target=target,
        size=size,
        steps=steps,
        seed=seed,
        device=device,
        progress=not quiet,
        source=image,
    )
    files = [
        atomic_write(path, png_bytes(result.grid())),
        atomic_write(path.with_suffix(".json"), json_bytes(result.to_dict())),
    ]
    a = result.ablation
    shares = ", ".join(f"{float(v):+.2f}" for v in result.attributions)
    click.echo(
        f"{result.record['model']}: {result.target[1]} ({result.target[0]}); {k} groups of {result.layer} "
        f"(attributions {shares}); removing group {a['group']} drops the logit {a['top_drop']:.2f} vs "
        f"{a['random_mean']:.2f} +- {a['random_std']:.2f} for {a['draws']} random directions "
        f"({'holds' if a['holds'] else 'weak'}); wrote {', '.join(str(f) for f in files)} "
        f"in {result.seconds['total']:.0f} s"
    )

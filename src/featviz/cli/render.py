"""Rendering one unit (``render``, and its replay with ``--from``) and looking a model up
(``recipes``, ``layers``, ``classes``, ``predict``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from featviz.cli.options import (
    _image_target,
    _load,
    _say,
    _UnitCommand,
    device_option,
    fps_option,
    model_option,
    model_options,
    out_option,
    overwrite_option,
    quiet_option,
    recipe_options,
    seed_option,
)
from featviz.errors import FeatvizError
from featviz.models import DEFAULT_MODEL

#: Record keys that decide a render's pixels: an existing output with the same is the same run.


@click.command(cls=_UnitCommand)
@click.argument("model", required=False)
@click.argument("unit", required=False)
@click.option(
    "--from",
    "from_record",
    type=click.Path(dir_okay=False),
    help="render again what a run record (X.json, or X.png beside it) describes",
)
@recipe_options()
@click.option(
    "--redirect-relu",
    type=click.IntRange(min=0),
    help="redirect ReLU gradients for the first N steps (wakes units that start dead)",
)
@seed_option
@device_option()
@click.option("--init", "init", help="start from this photo (a file or skimage:NAME)")
@out_option("image path (default: MODEL_UNIT.png)")
@overwrite_option
@click.option("--animate", help="also write the optimization as .gif or .mp4")
@click.option(
    "--every", type=click.IntRange(min=1), default=4, show_default=True, help="animation: a frame every K steps"
)
@fps_option(12.0)
@click.option("--diversity", type=click.IntRange(min=2), help="render N images of UNIT that differ from each other")
@click.option("--diversity-weight", type=float, help="weight of the diversity term (default 10)")
@click.option("--diversity-layer", help="layer where images are compared (default: the unit's own)")
@click.option(
    "--concepts",
    "concepts_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="a dictionary `featviz concepts` wrote, for LAYER/concepts:N units [concepts/MODEL/LAYER.safetensors]",
)
@model_options
@quiet_option()
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
    concepts_files: tuple[str, ...],
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Render UNIT of MODEL and write a PNG with a JSON record beside it.

    UNIT is LAYER:CHANNEL (blocks.5:51), LAYER:CHANNEL@X,Y (a neuron; X,Y on the layer's
    grid as `featviz layers` prints it), LAYER (DeepDream), logits:CLASS or probs:CLASS
    (class name or index), LAYER/concepts:N (a concept `featviz concepts` learned), or an
    expression of these such as "logits:hen - logits:cock" or "-(blocks.5:1 + blocks.5:2)";
    MODEL may be left out (the embedded default). With
    --diversity N, OUT is a grid of the N images and each image is also written as OUT_0.png,
    OUT_1.png, ... With --from X.json, the run that X.json records is rendered again (same
    pixels on the machine that made it). Ctrl-C stops the render and writes the image
    reached so far, its record marked "interrupted".
    """
    from featviz.io.outputs import check_replace
    from featviz.optvis.callbacks import RecordFrames
    from featviz.optvis.record import identity
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
    _use_concepts(adapter, unit, concepts_files)
    objective: Any = unit
    if diversity:
        from featviz.tools.diverse import diversity_objective

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
    check_replace(target, identity("render", plan.spec.to_dict()), overwrite)
    if animate and Path(animate).exists() and not (overwrite or target.exists()):
        raise FeatvizError(f"{animate} exists: pass --overwrite to replace it, or choose another --animate")
    result = run(plan, progress=not quiet)
    _finish(result, target, adapter)
    if animate:
        from featviz.io.video import write_animation

        click.echo(f"wrote {write_animation(frames.frames, animate, fps=fps)} ({len(frames.frames)} frames)")


def _use_concepts(adapter: Any, unit: str, files: tuple[str, ...]) -> None:
    """Load the concept dictionaries the unit's ``LAYER/concepts:N`` read: the files given,
    else ``concepts/MODEL/LAYER.safetensors`` where ``featviz concepts`` writes them."""
    import re

    if not files and "/concepts:" not in unit:
        return
    from featviz.analysis.concepts import default_path, use
    from featviz.optvis.units import CONCEPTS

    for path in files:
        use(path)
    for layer in set(re.findall(r"([^\s+\-*/()]+)/concepts:", unit)):
        name = adapter.layer_name(layer)
        found = default_path(adapter.name, name)
        if (adapter.name, name) not in CONCEPTS and found.exists():
            use(found)


def _replay(model: str | None, unit: str | None, source: str, out: str | None, overwrite: bool, quiet: bool) -> None:
    import featviz
    from featviz.io.outputs import check_replace
    from featviz.optvis.record import identity
    from featviz.optvis.spec import RunSpec

    if model or unit:
        raise click.UsageError("give either MODEL UNIT or --from RECORD, not both")
    record = featviz.load_record(source)
    spec = RunSpec.from_record(record)  # every field checked before any file is touched
    target = _image_target(out or str(Path(source).with_suffix("")) + "_replay")
    check_replace(target, identity("render", record), overwrite)
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


@click.command()
def recipes() -> None:
    """List the recipes with what each does."""
    from featviz.optvis.recipes import RECIPES

    for r in RECIPES.values():
        click.echo(f"{r.name:<8} {r.param:<8} {r.steps:>4} steps  {r.description}")


@click.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--size", type=int, help="input size for the shape trace")
@click.option("--depth", type=int, help="only layers with at most this many dots in their name")
@click.option("--grep", "pattern", help="only layers whose name contains this text")
@model_options
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


@click.command()
@click.argument("query", required=False, default="")
@model_option
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


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@model_option
@click.option("--top", "k", type=int, default=5, show_default=True)
@model_options
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

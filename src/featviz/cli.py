"""The ``featviz`` command line. It parses arguments and calls the library, nothing more."""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from featviz.errors import FeatvizError
from featviz.models import DEFAULT_MODEL


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "unit"


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
@click.argument("model", default=DEFAULT_MODEL)
@click.argument("unit")
@click.option("--recipe", default="default", show_default=True, help="preset: see `featviz recipes`")
@click.option("--steps", type=int, help="optimization steps (recipe's value when left out)")
@click.option("--size", type=int, help="image size in pixels (the model's input size when left out)")
@click.option("--lr", type=float, help="learning rate (recipe's value when left out)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps")
@click.option("--init", "init", type=click.Path(dir_okay=False), help="start from this photo")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="PNG path (default: MODEL_UNIT.png)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def render(
    model: str,
    unit: str,
    recipe: str,
    steps: int | None,
    size: int | None,
    lr: float | None,
    seed: int,
    device: str,
    init: str | None,
    out: str | None,
    quiet: bool,
) -> None:
    """Render UNIT of MODEL and write a PNG with a JSON record beside it.

    UNIT is LAYER:CHANNEL (blocks.5:51), LAYER:CHANNEL@X,Y (a neuron), LAYER (DeepDream),
    logits:CLASS or probs:CLASS (class name or index), or an expression of these such as
    "logits:hen - logits:cock".
    """
    import featviz
    from featviz.io.images import load_image

    adapter = featviz.load_model(model)
    photo = load_image(init) if init else None
    result = featviz.render(
        adapter,
        unit,
        recipe=recipe,
        steps=steps,
        size=size,
        lr=lr,
        seed=seed,
        device=device,
        init=photo,
        progress=not quiet,
    )
    target = out or f"{_slug(adapter.name)}_{_slug(unit)}.png"
    paths = result.save(target)
    score = result.final[0].item()
    line = f"wrote {paths[0]} ({result.record['seconds']:.1f} s, score {score:.3f})"
    if adapter.labels is not None:
        top = adapter.predict(result.images)[0][0]
        line += f"; {adapter.name} sees {top[1]!r} ({top[0]}) at {top[2]:.2f}"
    click.echo(line)


@main.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.option("--size", type=int, help="input size for the shape trace")
@click.option("--depth", type=int, help="only layers with at most this many dots in their name")
@click.option("--grep", "pattern", help="only layers whose name contains this text")
def layers(model: str, size: int | None, depth: int | None, pattern: str | None) -> None:
    """List MODEL's layers: dotted name, type, output shape and channel count."""
    import featviz
    from featviz.inspect import layer_table

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
    from featviz.io.images import load_image

    adapter = featviz.load_model(model)
    for path in images:
        batch = load_image(path, adapter.input_size)[None]
        click.echo(path)
        for idx, name, p in adapter.predict(batch, k=k)[0]:
            click.echo(f"  {idx:>4}  {name:<30} {p:.3f}")


@main.command()
def recipes() -> None:
    """List the recipes with what each does."""
    from featviz.recipes import RECIPES

    for r in RECIPES.values():
        click.echo(f"{r.name:<8} {r.param:<8} {r.steps:>4} steps  {r.description}")


if __name__ == "__main__":
    main()

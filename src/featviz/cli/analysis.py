"""What a model does with photos: ``examples`` (a dataset pass), ``groups`` (channels that
fire together on one photo) and ``explain`` (one prediction, in an HTML report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from featviz.cli.options import (
    _image_target,
    _load,
    _stem,
    device_option,
    model_option,
    model_options,
    out_option,
    quiet_option,
    seed_option,
    size_option,
    steps_option,
)
from featviz.errors import FeatvizError
from featviz.models import DEFAULT_MODEL

_VIS_SIZE = "visualizations' size in pixels"
_VIS_STEPS = "steps per visualization (the microscope recipe's 32 when left out)"


@click.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.argument("layers")
@click.option("--data", default="shipped", show_default=True, help="shipped, a folder of images or a list file")
@click.option("-k", "k", type=int, default=9, show_default=True, help="examples per channel and list")
@size_option()
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="DataLoader workers that decode images")
@click.option("--limit", type=int, help="only the first N images of the source")
@out_option("folder for examples.json and the patches (default: MODEL_LAYERS_examples)")
@device_option()
@model_options
@quiet_option()
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
    from featviz.analysis.examples import examples as find
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


@click.command()
@click.argument("model", default=DEFAULT_MODEL)
@click.argument("layer")
@click.option("-k", "k", type=int, default=16, show_default=True, help="number of concepts")
@click.option("--data", default="shipped", show_default=True, help="shipped, a folder of images or a list file")
@size_option()
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--passes", type=int, default=2, show_default=True, help="passes over the data that learn the dictionary")
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader workers that decode images")
@seed_option
@device_option()
@click.option("--out", "-o", help="the dictionary file (default: concepts/MODEL/LAYER.safetensors)")
@click.option("--microscope", help="a Microscope folder: render the concepts and write their pages into it")
@steps_option(_VIS_STEPS)
@model_options
@quiet_option()
def concepts(
    model: str,
    layer: str,
    k: int,
    data: str,
    size: int | None,
    batch: int,
    passes: int,
    workers: int,
    seed: int,
    device: str,
    out: str | None,
    microscope: str | None,
    steps: int | None,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """Learn K concepts of LAYER over a dataset (NMF of its activations, streamed), each with
    its top examples and regions, the classes it drives and carries, and a faithfulness check.
    Writes the dictionary (then `featviz render MODEL LAYER/concepts:N` renders concept N), a
    JSON summary and an overview PNG of each concept's best example with its region lit;
    with --microscope DIR, renders the concepts and writes their pages into that Microscope."""
    from featviz.analysis.concepts import concepts as learn
    from featviz.analysis.concepts import default_path, save_concepts
    from featviz.io.files import atomic_write, json_bytes
    from featviz.io.grid import make_grid
    from featviz.io.images import png_bytes

    adapter = _load(model, weights, pretrained)
    name = adapter.layer_name(layer)
    path = Path(out) if out else default_path(adapter.name, name)
    if path.suffix != ".safetensors":
        raise FeatvizError(f"expected the dictionary as a .safetensors file, got {path}")
    if microscope is not None:
        from featviz.microscope.site import check_folder

        check_folder(microscope, adapter.name)
    found = learn(
        adapter,
        name,
        k,
        data,
        size=size,
        batch=batch,
        passes=passes,
        seed=seed,
        workers=workers,
        device=device,
        progress=not quiet,
    )
    labels = [f"{j}: {found.raises(j, 1)[0][1][:18]}" for j in range(found.k)]
    overview = make_grid([found.overlay(j) for j in range(found.k)], labels)
    summary = {
        **found.to_dict(),
        "concepts": [
            {"unit": f"{name}/concepts:{j}", "raises": found.raises(j), "carries": found.important(j)}
            for j in range(found.k)
        ],
    }
    summary.pop("items")
    files = [
        save_concepts(found, path),
        atomic_write(path.with_suffix(".json"), json_bytes(summary)),
        atomic_write(path.with_suffix(".png"), png_bytes(overview)),
    ]
    if microscope is not None:
        files += _concept_pages(adapter, found, microscope, steps, seed, device, quiet)
    click.echo(
        f"{adapter.name} {name}: {found.k} concepts over {found.numbers.get('images')} images "
        f"(reconstruction error {found.numbers.get('reconstruction_error', float('nan')):.3f}); "
        f"faithful {sum(f['passed'] for f in found.faithfulness)}/{found.k}; "
        f"wrote {', '.join(str(f) for f in files)} in {found.seconds['total']:.0f} s"
    )


@click.command("activation-atlas")
@click.argument("model", default=DEFAULT_MODEL)
@click.argument("layer")
@click.option("--data", default="shipped", show_default=True, help="shipped, a folder of images or a list file")
@click.option("--grid", type=int, default=20, show_default=True, help="cells per side of the map")
@click.option("--per-image", type=int, default=32, show_default=True, help="positions drawn from each image")
@click.option("--min-count", type=int, default=3, show_default=True, help="samples a cell needs to be rendered")
@click.option("--fill", is_flag=True, help="snap the map onto every cell of the grid (even density)")
@click.option("--class", "target", help="a class atlas: only positions attributed most to this class")
@click.option(
    "--microscope", type=click.Path(file_okay=False), help="also write its zoomable pages into this Microscope"
)
@size_option("cell size in pixels", default=48, show_default=True)
@steps_option(_VIS_STEPS)
@click.option("--batch", type=int, default=32, show_default=True, help="images per forward pass, cells per render")
@seed_option
@device_option()
@out_option("atlas PNG (default: MODEL_LAYER_activation_atlas.png); its cells go to OUT.json")
@model_options
@quiet_option()
def activation_atlas(
    model: str,
    layer: str,
    data: str,
    grid: int,
    per_image: int,
    min_count: int,
    fill: bool,
    target: str | None,
    microscope: str | None,
    size: int,
    steps: int | None,
    batch: int,
    seed: int,
    device: str,
    out: str | None,
    weights: str | None,
    pretrained: bool,
    quiet: bool,
) -> None:
    """The activation atlas of LAYER over a dataset: positions of every image laid out in 2-D
    by UMAP, cut into GRID x GRID cells, each cell's mean activation rendered. Writes the PNG,
    a JSON of the cells beside it, and the finished cells in OUT's stem + _tiles, so that the
    same command run again after an interruption renders only the missing cells. With
    --microscope DIR its pages go into that Microscope: the atlas zoomable, each cell a link to
    its examples with the positions marked."""
    from featviz.analysis.activation_atlas import activation_atlas as make
    from featviz.io.files import atomic_write, json_bytes
    from featviz.io.images import png_bytes

    adapter = _load(model, weights, pretrained)
    name = adapter.layer_name(layer)
    if microscope is not None:
        from featviz.microscope.site import check_folder

        check_folder(microscope, adapter.name)
    cls = adapter.class_index(target) if target is not None else None
    kind = "activation_atlas" if cls is None else f"class_{cls}_activation_atlas"
    path = _image_target(out, adapter.name, name, kind)
    work = path.with_name(f"{path.stem}_tiles")
    found = make(
        adapter,
        name,
        data,
        grid=grid,
        per_image=per_image,
        min_count=min_count,
        fill=fill,
        target=cls,
        size=size,
        steps=steps,
        batch=batch,
        seed=seed,
        out_dir=work,
        device=device,
        progress=not quiet,
    )
    summary = {"record": found.record, "cells": found.cells, "items": [item.id for item in found.items]}
    files = [
        atomic_write(path, png_bytes(found.image)),
        atomic_write(path.with_suffix(".json"), json_bytes(summary)),
    ]
    if microscope is not None:
        from featviz.microscope.atlas_pages import FOLDER, atlas_name, write_atlas_pages

        write_atlas_pages(microscope, found)
        files.append(Path(microscope) / FOLDER / atlas_name(found) / "index.html")
    click.echo(
        f"{adapter.name} {name}: {len(found.cells)} of {grid}x{grid} cells from {len(found.points)} samples "
        f"({found.record['reducer']}), {len(found.rendered)} rendered, {len(found.loaded)} loaded; "
        f"wrote {', '.join(str(f) for f in files)} in {found.record['seconds']:.0f} s"
    )


def _concept_pages(
    adapter: Any, found: Any, folder: str, steps: int | None, seed: int, device: str, quiet: bool
) -> list[Path]:
    """Render the concepts at the Microscope's size and write their pages into ``folder``."""
    from featviz.microscope.concepts import render_concepts, write_concept_pages
    from featviz.microscope.site import check_folder

    size = int(check_folder(folder).meta.get("size") or 128)
    images = render_concepts(found, adapter, size=size, steps=steps, seed=seed, device=device, progress=not quiet)
    return write_concept_pages(folder, found, images)


@click.command()
@click.argument("image")
@model_option
@click.option("--layer", help="the layer whose channels are grouped (default: the last stage before pooling)")
@click.option("-k", "k", type=int, default=6, show_default=True, help="number of groups")
@size_option(_VIS_SIZE, default=128, show_default=True)
@steps_option(_VIS_STEPS)
@click.option("--class", "target", help="the class the groups are attributed to (default: the top class)")
@seed_option
@device_option()
@out_option("the overview PNG (default: IMAGE_groups.png); a .json goes beside it")
@model_options
@quiet_option()
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
    from featviz.analysis.groups import groups as run_groups
    from featviz.data.photos import load_image
    from featviz.io.files import atomic_write, json_bytes
    from featviz.io.images import png_bytes
    from featviz.models import place

    path = _image_target(out, f"{_stem(image)}_groups")
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


@click.command()
@click.argument("image")
@model_option
@click.option("--class", "target", help="the class to explain (name or index; default: the top class)")
@click.option("--layer", help="the layer whose channels explain it (default: the last stage before pooling)")
@click.option("--earlier", help="the layer the circuit reaches into (default: the stage before --layer)")
@click.option("--top", type=int, default=8, show_default=True, help="channels for and against, ablated together")
@click.option(
    "--groups",
    "groups_k",
    type=click.IntRange(min=0),
    help="neuron groups of the layer and of the earlier one, with their grid (0: none) [4, fewer for small layers]",
)
@out_option("the HTML report (default: IMAGE_explain.html); a .png and .json go beside it")
@click.option("--microscope", "microscope_dir", help="take visualizations and examples from this Microscope")
@size_option(_VIS_SIZE, default=128, show_default=True)
@steps_option(_VIS_STEPS)
@seed_option
@device_option()
@model_options
@quiet_option()
def explain(
    image: str,
    model: str,
    target: str | None,
    layer: str | None,
    earlier: str | None,
    top: int,
    groups_k: int | None,
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
    from featviz.models import place

    path = Path(out or f"{_stem(image)}_explain.html")
    if path.suffix.lower() not in (".html", ".htm"):
        raise FeatvizError(f"expected the report as an .html file, got {path}")
    check_writable(path)
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
        groups=groups_k,
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

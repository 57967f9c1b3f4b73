"""Concept pages of a Microscope folder: what :func:`featviz.concepts` learned on a layer,
as pages of the same site (its nav and CSS, relative links, PNG files beside the pages).

``concepts/LAYER/index.html`` shows every concept as a card; ``concepts/LAYER/J.html`` --
the concept's permanent address -- its visualization, its top examples with the region where
it is, the classes it drives and carries, its faithfulness check in words and how to render
it again; ``concepts/LAYER/classes/CLASS.html`` the concepts that make up a class, each with
its share of the class's positive importance, listed from ``concepts/LAYER/classes.html``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from featviz.io.files import atomic_write
from featviz.io.images import png_bytes
from featviz.microscope.site import check_folder, page, write_index, write_search_entry

if TYPE_CHECKING:
    from featviz.analysis.concepts import Concepts

FOLDER = "concepts"
DICTIONARY = "dictionary.safetensors"  # beside the pages: what their render commands read
CARD_CLASSES = 3  # classes a card names
SEARCH_CLASSES = 5  # classes a concept is found by in the site's search


def render_concepts(
    found: Concepts,
    model: Any = None,
    *,
    size: int = 128,
    steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
) -> dict[int, torch.Tensor]:
    """Every concept of ``found`` rendered in one batch with the Microscope recipe, by concept
    index (``[3, size, size]`` each); ``model`` is the loaded model (its name by default)."""
    from featviz.analysis.concepts import use
    from featviz.optvis.render import render

    use(found)
    units = [f"{found.layer}/concepts:{j}" for j in range(found.k)]
    extra: dict[str, Any] = {} if steps is None else {"steps": steps}
    result = render(
        model if model is not None else found.model,
        units,
        "microscope",
        size=size,
        seed=seed,
        device=device,
        progress=progress,
        **extra,
    )
    return {j: result.images[j].detach().float().cpu() for j in range(found.k)}


def write_concept_pages(out: str | Path, found: Concepts, images: dict[int, torch.Tensor] | None = None) -> list[Path]:
    """Write the concept pages of ``found`` (and their images) into the Microscope folder
    ``out``, and link them from its ``index.html``; ``images`` are the concepts'
    visualizations by index (:func:`render_concepts`). Returns the files written."""
    from featviz.analysis.concepts import save_concepts

    site = check_folder(out, found.model)
    folder = site.out / FOLDER / found.layer
    images = images or {}
    files = [save_concepts(found, folder / DICTIONARY)]  # what the pages' render commands read
    files += [atomic_write(folder / f"{j}" / "visualization.png", png_bytes(images[j])) for j in sorted(images)]
    tops = int(found.top_index.shape[1])
    for j in range(found.k):
        for rank in range(tops):
            files.append(atomic_write(folder / f"{j}" / f"top-{rank}.png", png_bytes(found.overlay(j, rank))))
    warn = site.warning
    title = f"{found.model} {found.layer}"
    files.append(
        atomic_write(folder / "index.html", page(f"{title} concepts", _cards(found, images), "../../", warning=warn))
    )
    for j in range(found.k):
        body = _concept(found, j, j in images)
        files.append(atomic_write(folder / f"{j}.html", page(f"{title}/concepts:{j}", body, "../../", warning=warn)))
    classes = [int(c) for c in torch.nonzero(found.class_images > 0).flatten()]
    listing = _class_list(found, classes)
    files.append(atomic_write(folder / "classes.html", page(f"{title}: classes", listing, "../../", warning=warn)))
    for c in classes:
        name = f"{title}: class {found.class_names[c]}"
        text = page(name, _class(found, c), "../../../", warning=warn)
        files.append(atomic_write(folder / "classes" / f"{c}.html", text))
    concepts = [
        {
            "j": j,
            "page": f"{FOLDER}/{found.layer}/{j}.html",
            "thumb": f"{FOLDER}/{found.layer}/{j}/{'visualization' if j in images else 'top-0'}.png",
            "drives": [n.lower() for _, n, _ in found.raises(j, SEARCH_CLASSES)],
        }
        for j in range(found.k)
    ]
    entry = {"layer": found.layer, "page": f"{FOLDER}/{found.layer}/index.html", "concepts": concepts}
    files.append(write_search_entry(folder, entry))
    files.append(write_index(site.out))
    return files


def shares(found: Concepts, c: int) -> list[tuple[int, float, float]]:
    """The concepts that make up class ``c``: (concept, importance, share of the class's
    positive importance), the positive ones first, largest first; shares of the negative ones
    are negative."""
    values = found.importance[:, c].double()
    total = float(values.clamp(min=0).sum())
    rows = [(j, float(v), float(v) / total if total > 0 else 0.0) for j, v in enumerate(values)]
    return sorted(rows, key=lambda r: -r[1])


def _classes(found: Concepts, rows: list[tuple[int, str, float]]) -> str:
    """Classes with their values; those with images (and so a page) link to it."""

    def name(i: int, n: str) -> str:
        return f"<a href='classes/{i}.html'>{html.escape(n)}</a>" if found.class_images[i] > 0 else html.escape(n)

    return ", ".join(f"{name(i, n)} ({v:+.3f})" for i, n, v in rows)


def _verdict(f: dict[str, Any]) -> str:
    ratio = "n/a" if f.get("ratio") is None else f"{f['ratio']:.2f}"
    return f"ratio {ratio}, {'passes' if f['passed'] else 'does not pass'}"


def _cards(found: Concepts, images: dict[int, torch.Tensor]) -> str:
    cards = []
    for j in range(found.k):
        vis = f"<img src='{j}/visualization.png' width='128' height='128' alt='concept {j}'>" if j in images else ""
        best = f"<img src='{j}/top-0.png' width='128' height='128' alt='concept {j}: best example'>"
        drives = ", ".join(html.escape(n) for _, n, _ in found.raises(j, CARD_CLASSES))
        cards.append(
            f"<figure class='concept'><a href='{j}.html'>{vis}{best}</a><figcaption><a href='{j}.html'>"
            f"concept {j}</a><br>drives {drives}<br>{_verdict(found.faithfulness[j])}</figcaption></figure>"
        )
    passed = sum(f["passed"] for f in found.faithfulness)
    return (
        f"<p>{found.k} concepts of {html.escape(found.layer)} over {found.numbers.get('images')} images "
        f"({html.escape(found.source)}, {found.size} px); {passed} of {found.k} pass the faithfulness check. "
        "<a href='classes.html'>Classes and the concepts that make them up</a>.</p>"
        f"<div class='grid'>{''.join(cards)}</div>"
    )


def _concept(found: Concepts, j: int, rendered: bool) -> str:
    unit = f"{found.layer}/concepts:{j}"
    f = found.faithfulness[j]
    vis = (
        f"<img src='{j}/visualization.png' width='192' height='192' alt='visualization of {unit}'>"
        if rendered
        else "<p class='muted'>not rendered</p>"
    )
    tops = "".join(
        f"<figure><img src='{j}/top-{r}.png' width='128' height='128' alt='example {r}'>"
        f"<figcaption>{found.top_value[j, r]:.3g}</figcaption></figure>"
        for r in range(int(found.top_index.shape[1]))
    )
    driven = ", ".join(html.escape(found.class_names[c]) for c in f["classes"])
    spread = f"{f['random_drop']:.3f} ± {f['random_std']:.3f}"
    dictionary = f"{FOLDER}/{found.layer}/{DICTIONARY}"
    command = f"featviz render {found.model} {unit} --concepts {dictionary}"
    return (
        f"<p><a href='index.html'>all concepts of {html.escape(found.layer)}</a></p>"
        f"<h2>Visualization</h2>{vis}"
        "<h2>Top examples</h2><p>where it is present most, its region lit</p>"
        f"<div class='thumbs'>{tops}</div>"
        f"<h2>Classes it drives</h2><p>{_classes(found, found.raises(j))}</p>"
        "<p class='muted'>each logit's derivative along the concept's direction</p>"
        f"<h2>Classes it carries</h2><p>{_classes(found, found.important(j))}</p>"
        "<p class='muted'>the logit it contributes, on the images of the class</p>"
        f"<h2>Faithfulness</h2><p>Taking it out of its {f['images']} top examples lowers the classes it drives "
        f"there ({driven}) by {f['drop']:.3f}, random directions of the same size by {spread}: {_verdict(f)}.</p>"
        f"<h2>Render it again</h2><p>unit <code>{html.escape(unit)}</code>, from the Microscope's folder "
        f"(its dictionary is <a href='{DICTIONARY}'>{DICTIONARY}</a>)</p>"
        f"<p><code>{html.escape(command)}</code></p>"
    )


def _class_list(found: Concepts, classes: list[int]) -> str:
    rows = "".join(
        f"<li><a href='classes/{c}.html'>{html.escape(found.class_names[c])}</a> "
        f"({int(found.class_images[c])} images)</li>"
        for c in classes
    )
    return f"<p><a href='index.html'>all concepts</a></p><ul>{rows}</ul>"


def _class(found: Concepts, c: int) -> str:
    rows = shares(found, c)
    items = "".join(
        f"<tr data-share='{s:.6f}'><td><a href='../{j}.html'>concept {j}</a></td>"
        f"<td><img src='../{j}/top-0.png' width='64' height='64' alt='concept {j}'></td>"
        f"<td>{v:+.3f}</td><td>{100 * s:.1f}%</td></tr>"
        for j, v, s in rows
    )
    return (
        f"<p><a href='../index.html'>all concepts</a> · <a href='../classes.html'>all classes</a></p>"
        f"<p>{int(found.class_images[c])} images of the class. A concept's share is its importance for "
        "the class over the sum of the positive importances of all concepts (negative: it works against "
        "the class).</p>"
        f"<table id='shares'><tr><th>concept</th><th>best example</th><th>importance</th><th>share</th></tr>"
        f"{items}</table>"
    )

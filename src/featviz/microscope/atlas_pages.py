"""Activation atlas pages of a Microscope folder: what :func:`featviz.activation_atlas` laid
out for a layer, as pages of the same site (its nav and CSS, relative links).

``atlas/NAME/index.html`` shows the atlas, zoomable (buttons, the wheel, keys ``+``/``-``/``0``)
with every rendered cell a link; ``atlas/NAME/cells/KEY.html`` (``KEY = row * grid + col``)
shows the cell's visualization, its density and top class, and the dataset images nearest its
mean with the positions of its samples marked. ``NAME`` is the layer, or ``LAYER-class-C`` for
the class atlas of class ``C``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featviz.io.files import atomic_write
from featviz.io.images import png_bytes
from featviz.microscope.site import asset, check_folder, page, write_index, write_search_entry

if TYPE_CHECKING:
    from featviz.analysis.activation_atlas import ActivationAtlas

FOLDER = "atlas"
THUMB = 128  # px of an example image on a cell's page
SCRIPTS = ("site.js", "atlas.js")


def atlas_name(found: ActivationAtlas) -> str:
    """The atlas's folder name: its layer, or ``LAYER-class-C`` for a class atlas."""
    target = found.record.get("target")
    return found.layer if target is None else f"{found.layer}-class-{target}"


def write_atlas_pages(out: str | Path, found: ActivationAtlas) -> list[Path]:
    """Write the pages of ``found`` (and its images) into the Microscope folder ``out`` and
    link them from its ``index.html``. Returns the files written."""
    from featviz.data.sources import read

    site = check_folder(out, found.model)
    name = atlas_name(found)
    folder = site.out / FOLDER / name
    files = [atomic_write(site.out / "static" / a, asset(a)) for a in ("site.css", "atlas.js")]  # older folders
    files.append(atomic_write(folder / "atlas.png", png_bytes(found.image)))
    for cell, tile in zip(found.cells, found.tiles, strict=True):
        files.append(atomic_write(folder / "cells" / f"{_key(found, cell)}.png", png_bytes(tile)))
    shown = sorted({i for cell in found.cells for i in cell["images"]})
    for i in shown:
        files.append(atomic_write(folder / "examples" / f"{i}.jpg", png_bytes(read(found.items[i], THUMB), "JPEG")))
    title = f"{found.model} {name}: activation atlas"
    warn = site.warning
    files.append(
        atomic_write(folder / "index.html", page(title, _atlas(found), "../../", scripts=SCRIPTS, warning=warn))
    )
    for cell in found.cells:
        key = _key(found, cell)
        text = page(
            f"{found.model} {name}: cell {cell['row']},{cell['col']}", _cell(found, cell), "../../../", warning=warn
        )
        files.append(atomic_write(folder / "cells" / f"{key}.html", text))
    target = found.record.get("target_name")  # a class atlas is found by its class
    entry = {"name": name, "layer": found.layer, "page": f"{FOLDER}/{name}/index.html"}
    files.append(write_search_entry(folder, {**entry, "target": target.lower() if target else None}))
    files.append(write_index(site.out))
    return files


def _key(found: ActivationAtlas, cell: dict[str, Any]) -> int:
    return int(cell["row"]) * found.grid + int(cell["col"])


def _about(found: ActivationAtlas) -> str:
    r = found.record
    target = (
        f", positions attributed to class {html.escape(str(r.get('target_name')))}"
        if r.get("target") is not None
        else ""
    )
    return (
        f"{len(found.cells)} of {found.grid}x{found.grid} cells from {r.get('samples')} positions of "
        f"{html.escape(found.layer)} over {r.get('images')} images ({html.escape(str(r.get('source')))}){target}, "
        f"laid out by {html.escape(str(r.get('reducer')))}; a cell is rendered when {r.get('min_count')} "
        "positions or more fall in it."
    )


def _atlas(found: ActivationAtlas) -> str:
    side = 100 / found.grid
    links = "".join(
        f"<a class='cell' href='cells/{_key(found, c)}.html' style='left:{c['col'] * side:.4f}%;"
        f"top:{c['row'] * side:.4f}%;width:{side:.4f}%;height:{side:.4f}%' "
        f"title='{c['count']} positions, top class {html.escape(c['top_class_name'])} ({100 * c['share']:.0f}%)' "
        f"aria-label='cell {c['row']},{c['col']}'></a>"
        for c in found.cells
    )
    px = found.grid * found.size
    return (
        f"<p>{_about(found)} Zoom with the buttons, the mouse wheel or <kbd>+</kbd> <kbd>-</kbd> <kbd>0</kbd>; "
        "a cell opens its examples.</p>"
        "<div class='atlas-tools'><button type='button' data-zoom='in' aria-label='zoom in'>+</button>"
        "<button type='button' data-zoom='out' aria-label='zoom out'>-</button>"
        "<button type='button' data-zoom='fit'>fit</button> <span id='atlas-zoom'>100%</span></div>"
        f"<div class='atlas-view' id='atlas-view'><div class='atlas-map' id='atlas-map' data-px='{px}'>"
        f"<img src='atlas.png' width='{px}' height='{px}' alt='activation atlas of {html.escape(found.layer)}'>"
        f"{links}</div></div>"
    )


def _cell(found: ActivationAtlas, cell: dict[str, Any]) -> str:
    h, w = found.record.get("layer_grid") or [1, 1]
    figures = []
    for i in cell["images"]:
        spots = "".join(
            f"<span class='spot' style='left:{100 * c / w:.3f}%;top:{100 * r / h:.3f}%;"
            f"width:{100 / w:.3f}%;height:{100 / h:.3f}%'></span>"
            for img, r, c in cell.get("spots", [])
            if img == i
        )
        item = found.items[i]
        figures.append(
            f"<figure><div class='marked'><img src='../examples/{i}.jpg' width='{THUMB}' height='{THUMB}' "
            f"alt='example {i}'>{spots}</div><figcaption>{html.escape(item.id)}</figcaption></figure>"
        )
    return (
        f"<p><a href='../index.html'>the whole atlas</a></p>"
        f"<img src='{_key(found, cell)}.png' width='192' height='192' alt='visualization of the cell'>"
        f"<p>{cell['count']} positions; top class of their images <b>{html.escape(cell['top_class_name'])}</b> "
        f"({100 * cell['share']:.0f}% of them). The image is the mean activation of the cell's positions, "
        "rendered as a direction.</p>"
        "<h2>Examples</h2><p class='muted'>the images whose positions lie nearest the cell's mean; "
        "the cell's positions marked</p>"
        f"<div class='thumbs'>{''.join(figures)}</div>"
    )

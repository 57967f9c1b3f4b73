"""The static site of a built Microscope folder: plain HTML pages with relative links, so it
works from ``file://`` and from any static host, no server needed.

``index.html`` lists the layers; ``layers/LAYER.html`` shows a grid of its units (lazy-loaded
thumbnails) and its DeepDream; ``units/LAYER/CHANNEL.html`` shows a unit: its visualizations,
dataset examples, activation histogram, the classes it drives, its inputs (linked when built),
the trust figures with what each means, and how to make each image again.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from featviz.io.files import atomic_write
from featviz.microscope.catalog import CATALOG, Catalog

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:72em;color:#222}
a{color:#0b57d0;text-decoration:none} a:hover{text-decoration:underline}
.grid{display:flex;flex-wrap:wrap;gap:8px} .grid figure{margin:0;text-align:center;font-size:12px}
img{border-radius:3px} .row img{margin-right:4px}
table{border-collapse:collapse} td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
.hist{display:flex;align-items:flex-end;height:60px;gap:1px} .hist div{background:#0b57d0;width:6px}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px;font-size:12px}
"""


def _page(title: str, body: str, up: str) -> bytes:
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style>"
    nav = f"<p><a href='{up}index.html'>model</a></p>"
    page = f"<!doctype html><html><head>{head}</head><body>{nav}<h1>{html.escape(title)}</h1>{body}</body></html>"
    return page.encode()


def write_site(out: str | Path) -> list[Path]:
    """Write (or rewrite) the site of the Microscope folder ``out``; returns the pages."""
    out = Path(out)
    catalog = Catalog(out / CATALOG, readonly=True)
    try:
        meta, layers, units = catalog.meta(), catalog.layers(), catalog.units()
    finally:
        catalog.close()
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for unit in units:
        by_layer.setdefault(unit["layer"], []).append(unit)
    pages = [atomic_write(out / "index.html", _index(meta, layers, by_layer))]
    for position, layer in enumerate(layers):
        name = layer["name"]
        pages.append(atomic_write(out / "layers" / f"{name}.html", _layer(meta, layer, by_layer.get(name, []))))
        below = layers[position - 1]["name"] if position else None
        built = {u["channel"] for u in by_layer.get(below or "", [])}
        for unit in by_layer.get(name, []):
            pages.append(
                atomic_write(out / "units" / name / f"{unit['channel']}.html", _unit(meta, unit, below, built))
            )
    return pages


def _index(meta: dict[str, Any], layers: list[dict[str, Any]], by_layer: dict[str, list[Any]]) -> bytes:
    rows = "".join(
        f"<tr><td><a href='layers/{html.escape(l['name'])}.html'>{html.escape(l['name'])}</a></td>"
        f"<td>{'x'.join(str(s) for s in l['shape'])}</td><td>{l['channels']}</td>"
        f"<td>{len(by_layer.get(l['name'], []))} of {len(l['units'])}</td></tr>"
        for l in layers
    )
    body = (
        f"<p>{html.escape(str(meta.get('model')))}, {meta.get('size')} px, seed {meta.get('seed')}, "
        f"dataset examples from {html.escape(str(meta.get('data')))}</p>"
        "<table><tr><th>layer</th><th>output shape</th><th>channels</th><th>units built</th></tr>"
        f"{rows}</table>"
    )
    return _page(f"Microscope of {meta.get('model')}", body, "")


def _layer(meta: dict[str, Any], layer: dict[str, Any], units: list[dict[str, Any]]) -> bytes:
    name = html.escape(layer["name"])
    dream = ""
    if layer["dream"]:
        dream = f"<h2>DeepDream</h2><img src='../{layer['dream']}' width='256' alt='DeepDream of {name}'>"
    tiles = "".join(
        f"<figure><a href='../units/{name}/{u['channel']}.html'><img loading='lazy' src='../{u['files']['channel']}' "
        f"width='96' height='96' alt='{name}:{u['channel']}'></a><figcaption>{u['channel']}</figcaption></figure>"
        for u in units
    )
    return _page(f"{meta.get('model')} {layer['name']}", f"{dream}<h2>Units</h2><div class='grid'>{tiles}</div>", "../")


def _unit(meta: dict[str, Any], unit: dict[str, Any], below: str | None, built_below: set[int]) -> bytes:
    layer, c, files, fig = unit["layer"], unit["channel"], unit["files"], unit["figures"]
    up = "../../"

    def img(kind: str, width: int = 128) -> str:
        return f"<img src='{up}{files[kind]}' width='{width}' alt='{html.escape(kind)}'>"

    views = "".join(img(k) for k in ("channel", "negative", "neuron"))
    diversity = "".join(img(f"diversity_{j}") for j in range(4) if f"diversity_{j}" in files)
    ex = fig["examples"]
    peak = max(max(ex["hist"]), 1)
    hist = "".join(f"<div style='height:{max(1, round(60 * h / peak))}px'></div>" for h in ex["hist"])
    drives = fig.get("drives") or {}
    raises = ", ".join(f"{html.escape(n)} ({v:+.3f})" for _, n, v in drives.get("raises", []))
    lowers = ", ".join(f"{html.escape(n)} ({v:+.3f})" for _, n, v in drives.get("lowers", []))
    inputs = "".join(_input(below, ch, w, ch in built_below) for ch, w in fig.get("inputs", []))
    multiple = fig.get("activation_vs_best_example")
    ratio = "n/a (its best example's mean is not above 0)" if multiple is None else f"{multiple:.2f}x"
    commands = "".join(f"<li>{html.escape(kind)}: {_command(rec)}</li>" for kind, rec in unit["records"].items())
    body = (
        f"<h2>Feature visualizations</h2><p class='row'>{views}</p>"
        "<p>channel, negative (minimized), neuron at the centre</p>"
        f"<h2>Diversity</h2><p class='row'>{diversity}</p>"
        f"<h2>Dataset examples</h2><p>top (by spatial maximum)</p>{img('examples_top', 9 * 64)}"
        f"<p>bottom</p>{img('examples_bottom', 9 * 64)}"
        f"<h2>Activation over the data</h2><div class='hist'>{hist}</div>"
        f"<p>mean {ex['mean']:.3f}, max {ex['max']:.3f}, fires on {100 * ex['fires']:.0f}% of images</p>"
        f"<h2>What it drives</h2><p>raises: {raises}</p><p>lowers: {lowers}</p>"
        f"<h2>Its inputs</h2><ul>{inputs}</ul>"
        "<h2>Trust</h2><ul>"
        f"<li>activation of the visualization / of the best example: {ratio} "
        "(above 1: it excites the unit more than any photo)</li>"
        f"<li>rank correlation with the top examples in {html.escape(str(fig.get('below')))}: "
        f"{fig['rank_correlation_below']:.2f} (near 1: it excites the layer below as real images do)</li></ul>"
        f"<h2>Reproduce</h2><ul>{commands}</ul>"
    )
    return _page(f"{meta.get('model')} {layer}:{c}", body, up)


def _input(below: str | None, channel: int, weight: float, built: bool) -> str:
    name = f"{html.escape(below or '')}:{channel}"
    if built and below:
        return f"<li><a href='../{html.escape(below)}/{channel}.html'>{name}</a> ({weight:+.3f})</li>"
    return f"<li>{name} ({weight:+.3f})</li>"


def _command(rec: dict[str, Any]) -> str:
    """How to make the image again: the command line, or a replay of the record."""
    how = f"(rendered in a batch of {rec.get('batch')}, recipe {html.escape(str(rec['recipe']['name']))})"
    if rec.get("unit_form") == "repr":
        return f"<code>featviz.replay(record)</code> with this unit's record from the catalog {how}"
    size = rec.get("size")
    side = size[0] if isinstance(size, list) else size
    unit = rec.get("unit")
    text = unit[rec.get("index", 0)] if isinstance(unit, list) else unit
    line = f'featviz render {rec.get("model")} "{text}" --recipe microscope --size {side} --seed {rec.get("seed")}'
    return f"<code>{html.escape(line)}</code> {how}"

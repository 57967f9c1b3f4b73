"""The site of a built Microscope folder: plain HTML pages with relative links, so it works
from ``file://`` and from any static host (and from ``featviz microscope serve``).

``index.html`` lists the layers; ``layers/LAYER.html`` shows a grid of its units (lazy-loaded
thumbnails, sortable by unit, activation and trust figure) and its DeepDream;
``units/LAYER/CHANNEL.html`` -- the unit's permanent address -- shows its visualizations,
dataset examples, activation histogram, the classes it drives, the units that drive it and
that it drives, the trust figures with what each means, and how to make each image again;
``search.html?q=...`` finds a unit (``blocks.5:51``), a layer or a class ("hen": the units
and the concepts that drive it most, its class atlas), a concept (``blocks.6/concepts:3``),
``concepts`` or ``atlas``. The search index is a script (``static/index.js``), not a JSON file
that a page would have to fetch, because browsers refuse ``fetch`` on ``file://``; the concept
and atlas pages leave a ``search.json`` beside their index page, which it gathers.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from featviz.errors import FeatvizError
from featviz.io.files import atomic_write
from featviz.io.records import write_record
from featviz.microscope.catalog import CATALOG, Catalog, require

ASSETS = ("site.css", "site.js", "pending.js", "atlas.js")
CLASS_UNITS = 12  # units listed per class in the search index
THUMBS = 8  # units shown as "drives it" / "it drives"
FIRST_TILES = 72  # a layer page's tiles written as HTML (a first screen); site.js adds the others after its load


def asset(name: str) -> bytes:
    return (resources.files("featviz.microscope") / "static" / name).read_bytes()


def page(
    title: str,
    body: str,
    root: str,
    *,
    scripts: tuple[str, ...] = ("site.js",),
    attrs: str = "",
    warning: str | None = None,
) -> bytes:
    """One page of the site; ``root`` is the relative path back to the folder; ``warning``
    (a model with random weights) stands above everything else."""
    tags = "".join(f"<script src='{root}static/{s}'></script>" for s in scripts)
    head = (
        f"<meta charset='utf-8'><meta name='viewport' content='width=device-width'><title>{html.escape(title)}</title>"
        f"<link rel='icon' href='data:,'><link rel='stylesheet' href='{root}static/site.css'>{tags}"
    )
    nav = (
        f"<nav><a href='{root}index.html'>model</a><form action='{root}search.html'>"
        "<input name='q' placeholder='unit (blocks.5:51), layer or class (hen)' aria-label='search'></form></nav>"
    )
    text = (
        f"<!doctype html><html><head>{head}</head><body data-root='{root}'{attrs}>{nav}"
        f"{banner(warning)}<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return text.encode()


def banner(warning: str | None) -> str:
    """The warning every page of an untrained model's Microscope opens with."""
    return f"<p class='warning' role='alert'>Warning: {html.escape(warning)}.</p>" if warning else ""


class Site:
    """Everything a page needs to know about the folder, read once from the catalog."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        catalog = Catalog(self.out / CATALOG, readonly=True)
        try:
            self.meta, self.layers, units = catalog.meta(), catalog.layers(), catalog.units()
        finally:
            catalog.close()
        self.units = {(u["layer"], u["channel"]): u for u in units}
        self.names = [layer["name"] for layer in self.layers]
        self.warning: str | None = self.meta.get("warning")
        self.by_layer: dict[str, list[dict[str, Any]]] = {}
        for key in sorted(self.units):
            self.by_layer.setdefault(key[0], []).append(self.units[key])
        # each unit's strongest inputs, read the other way: unit below -> units it drives
        self.driven: dict[tuple[str, int], list[tuple[str, int, float]]] = {}
        for layer, above in zip(self.names, self.names[1:], strict=False):
            for unit in self.built(above):
                for c, w in unit["figures"].get("inputs", []):
                    self.driven.setdefault((layer, c), []).append((above, unit["channel"], w))

    def below(self, layer: str) -> str | None:
        i = self.names.index(layer)
        return self.names[i - 1] if i > 0 else None

    def built(self, layer: str) -> list[dict[str, Any]]:
        return self.by_layer.get(layer, [])

    def drives_into(self, layer: str, channel: int) -> list[tuple[str, int, float]]:
        """Units of the next layer whose strongest inputs include this one, strongest first."""
        return sorted(self.driven.get((layer, channel), []), key=lambda t: -t[2])[:THUMBS]

    def title(self) -> str:
        return f"Microscope of {self.meta.get('model')}"


def write_site(out: str | Path) -> list[Path]:
    """Write (or rewrite) the site of the Microscope folder ``out``; returns the files written."""
    site = Site(out)
    out = site.out
    files = [atomic_write(out / "static" / name, asset(name)) for name in ASSETS]
    files.append(atomic_write(out / "static" / "index.js", _index_script(site)))
    files.append(atomic_write(out / "index.html", _index(site)))
    search = page("Search", "<div id='results'></div>", "", scripts=_SEARCH, warning=site.warning)
    files.append(atomic_write(out / "search.html", search))
    for layer in site.layers:
        files.append(atomic_write(out / "layers" / f"{layer['name']}.html", _layer(site, layer)))
        for unit in site.built(layer["name"]):
            files.append(write_unit_page(site, unit))
    return files


_SEARCH = ("index.js", "site.js")


def write_unit_page(site: Site, unit: dict[str, Any]) -> Path:
    """A unit's page, and its images' run records as files beside them (what its Reproduce
    commands replay)."""
    root = "../../"
    for path, record in record_files(unit).items():
        if not (site.out / path).is_file():
            write_record(site.out / path, record)
    body = unit_body(site, unit, src=lambda path: root + path, link=lambda layer, c: f"../{layer}/{c}.html")
    title = f"{site.meta.get('model')} {unit['layer']}:{unit['channel']}"
    text = page(title, body, root, warning=site.warning)
    return atomic_write(site.out / "units" / unit["layer"] / f"{unit['channel']}.html", text)


def record_files(unit: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The unit's records by the file each is written to: ``units/LAYER/CHANNEL/KIND.json``."""
    return {f"units/{unit['layer']}/{unit['channel']}/{kind}.json": rec for kind, rec in unit["records"].items()}


def _index_script(site: Site) -> bytes:
    classes: dict[str, list[tuple[str, int, float]]] = {}
    for (layer, c), unit in site.units.items():
        for _, name, value in (unit["figures"].get("drives") or {}).get("raises", []):
            classes.setdefault(name.lower(), []).append((layer, c, value))
    index = {
        "model": site.meta.get("model"),
        "layers": [
            {"name": l["name"], "channels": l["channels"], "built": len(site.built(l["name"]))} for l in site.layers
        ],
        "units": {f"{l}:{c}": u["files"]["channel"] for (l, c), u in site.units.items()},
        "classes": {n: sorted(v, key=lambda t: -t[2])[:CLASS_UNITS] for n, v in sorted(classes.items())},
        **_extra_entries(site.out),
    }
    return b"window.FEATVIZ_INDEX = " + json.dumps(index, separators=(",", ":")).encode() + b";\n"


def check_folder(out: str | Path, model: str | None = None) -> Site:
    """The Microscope folder ``out``; refuses one that holds none, or one of another model."""
    require(out)
    site = Site(out)
    built = site.meta.get("model")
    if model is not None and built != model:
        raise FeatvizError(f"expected a Microscope of {model}, got one of {built} in {out}")
    return site


def write_index(out: str | Path) -> Path:
    """Write (or rewrite) the folder's ``index.html`` (its layers, its concept and atlas pages)
    and the search index that finds them (``static/index.js``)."""
    site = Site(out)
    atomic_write(site.out / "static" / "index.js", _index_script(site))
    return atomic_write(site.out / "index.html", _index(site))


#: What the concept and atlas pages of a folder tell the search: ``FOLDER/NAME/search.json``.
SEARCH_ENTRY = "search.json"


def write_search_entry(folder: Path, entry: dict[str, Any]) -> Path:
    """A concept or atlas folder's entry in the search index (gathered by :func:`write_index`
    by the folder it lies in): its ``page`` and what a query matches (a concept's ``drives``, an
    atlas's ``name`` and ``target``)."""
    return atomic_write(folder / SEARCH_ENTRY, json.dumps(entry, separators=(",", ":")).encode())


def _extra_entries(out: Path) -> dict[str, list[Any]]:
    """The concept and atlas pages' search entries, by kind."""
    found: dict[str, list[Any]] = {"concepts": [], "atlases": []}
    for folder, key in (("concepts", "concepts"), ("atlas", "atlases")):
        for path in sorted(out.glob(f"{folder}/*/{SEARCH_ENTRY}")):
            try:
                found[key].append(json.loads(path.read_text()))
            except (OSError, ValueError):  # a folder being rewritten: its pages say what it is
                continue
    return found


def _extras(out: Path) -> str:
    """Links to the concept and activation atlas pages written into the folder
    (``concepts/LAYER/index.html``, ``atlas/NAME/index.html``)."""
    text = ""
    for folder, title in (("concepts", "Concepts"), ("atlas", "Activation atlases")):
        found = sorted(p.parent.name for p in out.glob(f"{folder}/*/index.html"))
        links = "".join(f"<li><a href='{folder}/{html.escape(n)}/index.html'>{html.escape(n)}</a></li>" for n in found)
        text += f"<h2>{title}</h2><ul id='{folder}'>{links}</ul>" if found else ""
    return text


def _index(site: Site) -> bytes:
    meta = site.meta
    rows = "".join(
        f"<tr><td><a href='layers/{html.escape(l['name'])}.html'>{html.escape(l['name'])}</a></td>"
        f"<td>{'x'.join(str(s) for s in l['shape'])}</td><td>{l['channels']}</td>"
        f"<td>{len(site.built(l['name']))} of {l['channels']}</td></tr>"
        for l in site.layers
    )
    body = (
        f"<p>{html.escape(str(meta.get('model')))}, {meta.get('size')} px, seed {meta.get('seed')}, "
        f"dataset examples from {html.escape(str(meta.get('data')))}</p>"
        "<table><tr><th>layer</th><th>output shape</th><th>channels</th><th>units built</th></tr>"
        f"{rows}</table>{_extras(site.out)}"
        "<p class='muted'>Every unit has a permanent address: <code>units/LAYER/CHANNEL.html</code>.</p>"
    )
    return page(site.title(), body, "", warning=site.warning)


_SORTS = (
    ("channel", "unit"),
    ("activation", "activation on the data (max)"),
    ("score", "activation of its visualization"),
    ("trust", "trust: visualization vs best example"),
    ("correlation", "trust: rank correlation below"),
)


def _layer(site: Site, layer: dict[str, Any]) -> bytes:
    name = html.escape(layer["name"])
    dream = ""
    if layer["dream"]:
        dream = f"<h2>DeepDream</h2><img src='../{layer['dream']}' width='256' alt='DeepDream of {name}'>"
    units = site.built(layer["name"])
    tiles = "".join(_tile(name, u) for u in units[:FIRST_TILES])
    rest = [_row(u) for u in units[FIRST_TILES:]]
    done = {u["channel"] for u in units}
    missing = [c for c in range(layer["channels"]) if c not in done]
    options = "".join(f"<option value='{k}'>{html.escape(t)}</option>" for k, t in _SORTS)
    body = (
        f"{dream}<h2>Units ({len(units)} of {layer['channels']} built)</h2>"
        f"<p>sort by <select id='sort' aria-label='sort by'>{options}</select></p>"
        f"<div class='grid' id='units' data-layer='{name}'>{tiles}</div>"
    )
    if rest:  # added by site.js after the first screen is shown; "<" escaped inside the script
        data = json.dumps(rest, separators=(",", ":")).replace("<", "\\u003c")
        body += f"<script type='application/json' id='more-units'>{data}</script>"
    if missing:
        links = " ".join(f"<a data-href='../units/{name}/{c}.html'>{c}</a>" for c in missing)
        body += (
            f"<div id='unbuilt' hidden><h2>Not built yet</h2>"
            f"<p class='muted'>Opening one renders it on this server.</p><p class='unbuilt'>{links}</p></div>"
        )
    return page(f"{site.meta.get('model')} {layer['name']}", body, "../", warning=site.warning)


def _num(value: Any) -> str:
    return "" if value is None else f"{float(value):.4g}"


def _row(unit: dict[str, Any]) -> list[Any]:
    """A tile beyond the first screen as data, which site.js turns into the same markup as
    :func:`_tile`: channel, thumbnail, activation, score, trust, correlation."""
    fig = unit["figures"]
    values = (fig["examples"].get("max"), fig.get("score"), fig.get("activation_vs_best_example"))
    return [
        unit["channel"],
        unit["files"]["channel"],
        *(_num(v) for v in values),
        _num(fig.get("rank_correlation_below")),
    ]


def _tile(layer: str, unit: dict[str, Any]) -> str:
    fig, c = unit["figures"], unit["channel"]
    num = _num

    data = (
        f"data-channel='{c}' data-activation='{num(fig['examples'].get('max'))}' data-score='{num(fig.get('score'))}' "
        f"data-trust='{num(fig.get('activation_vs_best_example'))}' "
        f"data-correlation='{num(fig.get('rank_correlation_below'))}'"
    )
    return (
        f"<figure {data}><a href='../units/{layer}/{c}.html'><img src='../{unit['files']['channel']}' "
        f"width='96' height='96' alt='{layer}:{c}'></a><figcaption>{c}</figcaption></figure>"
    )


def unit_body(
    site: Site, unit: dict[str, Any], *, src: Callable[[str], str], link: Callable[[str, int], str | None]
) -> str:
    """The content of a unit's page; ``src`` turns a file of the folder into an image address,
    ``link`` a unit into the address of its page (``None``: no link)."""
    layer, c, files, fig = unit["layer"], unit["channel"], unit["files"], unit["figures"]

    def img(kind: str, width: int = 128) -> str:
        return f"<img src='{src(files[kind])}' width='{width}' alt='{html.escape(kind)}'>"

    def strip(kind: str) -> str:  # k patches side by side, as tall as a thumbnail whatever k is
        return f"<img src='{src(files[kind])}' height='80' style='max-width:100%' alt='{html.escape(kind)}'>"

    views = "".join(img(k) for k in ("channel", "negative", "neuron"))
    diversity = "".join(img(f"diversity_{j}") for j in range(4) if f"diversity_{j}" in files)
    ex = fig["examples"]
    peak = max(max(ex["hist"]), 1)
    hist = "".join(f"<div style='height:{max(1, round(60 * h / peak))}px'></div>" for h in ex["hist"])
    drives = fig.get("drives") or {}
    raises = ", ".join(f"{html.escape(n)} ({v:+.3f})" for _, n, v in drives.get("raises", []))
    lowers = ", ".join(f"{html.escape(n)} ({v:+.3f})" for _, n, v in drives.get("lowers", []))
    below = site.below(layer)
    inputs = [(below, ch, w) for ch, w in fig.get("inputs", [])] if below else []
    multiple = fig.get("activation_vs_best_example")
    ratio = "n/a (its best example's mean is not above 0)" if multiple is None else f"{multiple:.2f}x"
    commands = "".join(
        f"<li>{html.escape(kind)}: {_command(path, rec)}</li>"
        for (path, rec), kind in zip(record_files(unit).items(), unit["records"], strict=True)
    )
    into = site.drives_into(layer, c)
    return (
        f"<h2>Feature visualizations</h2><p class='row'>{views}</p>"
        "<p>channel, negative (minimized), neuron at the centre</p>"
        f"<h2>Diversity</h2><p class='row'>{diversity}</p>"
        f"<h2>Dataset examples</h2><p>top (by spatial maximum)</p>{strip('examples_top')}"
        f"<p>bottom</p>{strip('examples_bottom')}"
        f"<h2>Activation over the data</h2><div class='hist'>{hist}</div>"
        f"<p>mean {ex['mean']:.3f}, max {ex['max']:.3f}, fires on {100 * ex['fires']:.0f}% of images</p>"
        f"<h2>Classes it drives</h2><p>raises: {raises}</p><p>lowers: {lowers}</p>"
        f"<h2>Units that drive it</h2>{_thumbs(site, inputs, src, link, 'the previous layer')}"
        f"<h2>Units it drives</h2>{_thumbs(site, into, src, link, 'the next layer')}"
        "<h2>Trust</h2><ul>"
        f"<li>activation of the visualization / of the best example: {ratio} "
        "(above 1: it excites the unit more than any photo)</li>"
        f"<li>rank correlation with the top examples in {html.escape(str(fig.get('below')))}: "
        f"{fig['rank_correlation_below']:.2f} (near 1: it excites the layer below as real images do)</li></ul>"
        "<h2>Reproduce</h2><p>In this Microscope's folder, each command renders its image again: the same "
        "pixels on the machine that built it (the whole batch it was rendered in is rendered again, and "
        f"the unit's image kept).</p><ul>{commands}</ul>"
    )


def _thumbs(
    site: Site,
    units: list[tuple[str, int, float]],
    src: Callable[[str], str],
    link: Callable[[str, int], str | None],
    where: str,
) -> str:
    """Units as thumbnails with their weights; built ones link to their pages, the others
    link only where a server can render them (``data-href``, made a link by site.js)."""
    if not units:
        return f"<p class='muted'>none among the built units of {where}</p>"
    out = []
    for layer, c, weight in units:
        name = f"{html.escape(layer)}:{c} ({weight:+.3g})"
        built = site.units.get((layer, c))
        href = link(layer, c)
        if built:
            alt = f"{html.escape(layer)}:{c}"
            thumb = f"<img src='{src(built['files']['channel'])}' width='64' height='64' alt='{alt}'>"
            inner = f"{thumb}<figcaption>{name}</figcaption>"
            out.append(f"<figure><a href='{href}'>{inner}</a></figure>" if href else f"<figure>{inner}</figure>")
        else:
            attr = f" data-href='{href}'" if href else ""
            out.append(f"<figure><a class='unbuilt'{attr}><figcaption>{name}<br>not built</figcaption></a></figure>")
    return f"<div class='thumbs'>{''.join(out)}</div>"


def _command(path: str, rec: dict[str, Any]) -> str:
    """How to make the image again: a replay of its record file, which holds every setting
    of the build (recipe with its steps, size, seed, the batch it was rendered in)."""
    stem = Path(path).stem
    line = f"featviz render --from {path} --out {stem}.png"
    recipe = rec.get("recipe") or {}
    size = rec.get("size")
    side = size[0] if isinstance(size, list) else size
    batch = rec.get("batch")
    which = f"image {rec['index']} of a batch of {batch}" if "index" in rec else f"{batch} images"
    name = html.escape(str(recipe.get("name")))
    how = f"(recipe {name}, {recipe.get('steps')} steps, {side} px, seed {rec.get('seed')}, {which})"
    return f"<code>{html.escape(line)}</code> {how}"

"""An :class:`~featviz.explain.core.Explanation` as one self-contained HTML file (every image
inline, readable offline), a PNG summary for papers and slides, and a JSON of the numbers.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from featviz.analysis.groups import GroupGrid, LayerGroups
from featviz.explain.core import Channel, Explanation
from featviz.io.files import atomic_write, json_bytes
from featviz.io.grid import make_grid
from featviz.io.images import png_bytes

# A dark-to-bright ramp (black, purple, red, orange, pale yellow) for attribution maps.
_RAMP = torch.tensor([[0.0, 0.0, 0.02], [0.33, 0.06, 0.43], [0.73, 0.2, 0.33], [0.98, 0.55, 0.04], [0.99, 0.99, 0.75]])
_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:70em;padding:0 1em;color:#222}
h2{margin-top:1.6em;border-bottom:1px solid #ddd} .muted{color:#666;font-size:13px}
.row{display:flex;flex-wrap:wrap;gap:12px} figure{margin:0;font-size:12px;text-align:center}
img{border-radius:3px;display:block} table{border-collapse:collapse}
td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:middle}
.bar{background:#0b57d0;height:10px;border-radius:2px} .neg{background:#c5221f}
.channel{display:flex;gap:6px;align-items:flex-end}
#ablations th,#ablations td+td{white-space:nowrap}
.banner{background:#fce8e6;border:2px solid #c5221f;color:#8c1d18;padding:12px 16px;border-radius:4px;font-size:17px}
"""
_BANNER_RGB = (197, 34, 31)


def heatmap(
    values: torch.Tensor, photo: torch.Tensor | None = None, *, shift: bool = False, blur: float = 0.0
) -> torch.Tensor:
    """A ``[H, W]`` map as a ``[3, H, W]`` picture in the ramp, laid over ``photo`` (resized
    to it) when given. Negative values count as 0, unless ``shift`` puts the map's minimum at
    0 (an activation that is negative everywhere still has a place where it is highest);
    ``blur`` smooths a pixel-level map first (sigma in pixels); the map is scaled to its
    99.5th percentile, so that a few extreme pixels do not leave the rest dark."""
    from torchvision.transforms.functional import gaussian_blur

    m = values.detach().float().cpu()
    m = m - m.min() if shift else m.clamp(min=0)
    if photo is not None and m.shape != photo.shape[-2:]:
        m = F.interpolate(m[None, None], size=photo.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    if blur > 0:
        side = 2 * round(3 * blur) + 1
        m = gaussian_blur(m[None, None], [side, side], [blur, blur])[0, 0]
    m = (m / torch.quantile(m.flatten(), 0.995).clamp(min=1e-12)).clamp(max=1.0)
    pos = m * (len(_RAMP) - 1)
    low = pos.floor().long().clamp(max=len(_RAMP) - 2)
    frac = (pos - low)[..., None]
    color = (_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).permute(2, 0, 1)
    if photo is None:
        return color
    alpha = (0.15 + 0.7 * m)[None]
    return photo.cpu() * (1 - alpha) + color * alpha


def _uri(image: torch.Tensor) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def _img(image: torch.Tensor, width: int, alt: str) -> str:
    return f"<img src='{_uri(image)}' width='{width}' alt='{html.escape(alt)}'>"


def report_html(e: Explanation) -> bytes:
    """The report as one HTML document."""
    what = f"“{e.target[1]}” ({e.target[0]})"
    versus = f" rather than “{e.versus[1]}” (the top class)" if e.versus else ""
    title = f"Why {e.model} says {what}{versus}"
    parts = [
        _banner(e),
        f"<h1>{html.escape(title)}</h1>",
        _prediction(e),
        _where(e),
        _channels(e, e.positive, "Channels for it", "raise"),
        _channels(e, e.negative, "Channels against it", "lower"),
        _circuit(e),
        _groups(e),
        _group_grid(e),
        _faithfulness(e),
        _footer(e),
    ]
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><link rel='icon' href='data:,'>"
    body = "".join(parts)
    return f"<!doctype html><html><head>{head}<style>{_STYLE}</style></head><body>{body}</body></html>".encode()


def _banner(e: Explanation) -> str:
    """For a model with random weights, a banner above everything else that says so."""
    if e.warning is None:
        return ""
    return (
        "<div class='banner' id='untrained' role='alert'><b>Random weights: this model was not trained.</b> "
        f"{html.escape(e.warning)}. Every map, channel, circuit and check below describes a random network; "
        "a check that holds says only that the attribution is faithful to it.</div>"
    )


def _prediction(e: Explanation) -> str:
    rows = "".join(
        f"<tr><td>{i}</td><td>{html.escape(name)}</td><td>{100 * p:.1f}%</td>"
        f"<td style='width:12em'><div class='bar' style='width:{100 * p:.1f}%'></div></td></tr>"
        for i, name, p in e.top
    )
    return (
        "<div class='row'>"
        f"<figure>{_img(e.photo, 224, 'the photo')}<figcaption>{html.escape(e.source)}, as the model sees it"
        "</figcaption></figure>"
        f"<div><h2 style='margin-top:0'>Top 5</h2><table><tr><th>class</th><th>name</th><th>probability</th><th></th>"
        f"</tr>{rows}</table></div></div>"
    )


def _where(e: Explanation) -> str:
    what = "the logit difference" if e.versus else "the class logit"
    return (
        f"<h2>Where in the photo</h2><div class='row' id='maps'>"
        f"<figure>{_img(heatmap(e.gradcam, e.photo), 224, 'Grad-CAM')}"
        f"<figcaption>layer Grad-CAM at {html.escape(e.layer)}</figcaption></figure>"
        f"<figure>{_img(heatmap(e.integrated, e.photo, blur=3.0), 224, 'integrated gradients')}"
        "<figcaption>integrated gradients (from black, 32 steps)</figcaption></figure></div>"
        f"<p class='muted'>Attribution of {what} by captum; brighter is more.</p>"
    )


def _channels(e: Explanation, channels: list[Channel], heading: str, verb: str) -> str:
    cards = []
    for ch in channels:
        viz = _img(ch.image, 112, f"visualization of {ch.unit}") if ch.image is not None else ""
        act = _img(heatmap(ch.activation, e.photo, shift=True), 112, f"activation of {ch.unit}")
        ex = ""
        if ch.examples is not None and ch.examples.is_file():
            data = base64.b64encode(ch.examples.read_bytes()).decode()
            ex = f"<img src='data:image/png;base64,{data}' height='56' alt='top dataset examples of {ch.unit}'>"
        cards.append(
            f"<figure class='unit'><div class='channel'>{viz}{act}</div>{ex}"
            f"<figcaption>{html.escape(ch.unit)}: {ch.contribution:+.3f}</figcaption></figure>"
        )
    return (
        f"<h2>{heading}</h2><p class='muted'>The channels of {html.escape(e.layer)} that {verb} the score most on "
        "this photo (captum's layer gradient x activation, summed over positions): each channel's feature "
        "visualization and where it fires on the photo.</p>"
        f"<div class='row'>{''.join(cards)}</div>"
    )


def _circuit(e: Explanation) -> str:
    """The circuit as an SVG graph: the top channels above, their feeders below, edges as
    thick as their weights."""
    tops = list(dict.fromkeys(c for _, c, _ in e.circuit))
    feeders = list(dict.fromkeys(j for j, _, _ in e.circuit))
    images = {ch.unit: ch.image for ch in [*e.positive, *e.feeders] if ch.image is not None}
    cell, thumb = 120, 88
    width = max(len(tops), len(feeders)) * cell + 40
    height = 2 * thumb + 190

    def x_of(i: int, n: int) -> float:
        return width / 2 + (i - (n - 1) / 2) * cell

    top_y, low_y = 30, height - thumb - 30
    strongest = max((abs(w) for _, _, w in e.circuit), default=1.0) or 1.0
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' id='circuit'>"]
    for j, c, w in e.circuit:
        x1, x2 = x_of(feeders.index(j), len(feeders)), x_of(tops.index(c), len(tops))
        stroke = 0.5 + 6 * abs(w) / strongest
        color = "#0b57d0" if w >= 0 else "#c5221f"
        svg.append(
            f"<line x1='{x1:.0f}' y1='{low_y}' x2='{x2:.0f}' y2='{top_y + thumb + 14}' stroke='{color}' "
            f"stroke-width='{stroke:.1f}' stroke-opacity='0.6'><title>{e.earlier}:{j} -> {e.layer}:{c}: {w:+.3g}"
            "</title></line>"
        )
        mx, my = (x1 + x2) / 2, (low_y + top_y + thumb + 14) / 2
        svg.append(f"<text x='{mx:.0f}' y='{my:.0f}' font-size='10' fill='#555'>{w:+.2g}</text>")
    for units, layer, y in ((tops, e.layer, top_y), (feeders, e.earlier, low_y)):
        for i, c in enumerate(units):
            x = x_of(i, len(units)) - thumb / 2
            unit = f"{layer}:{c}"
            if unit in images:
                svg.append(f"<image href='{_uri(images[unit])}' x='{x:.0f}' y='{y}' width='{thumb}' height='{thumb}'/>")
            label_y = y + thumb + 12 if y == top_y else y - 4
            svg.append(
                f"<text x='{x + thumb / 2:.0f}' y='{label_y}' font-size='11' text-anchor='middle'>"
                f"{html.escape(unit)}</text>"
            )
    svg.append("</svg>")
    return (
        f"<h2>Circuit</h2><p class='muted'>For the top channels of {html.escape(e.layer)} (above), the channels of "
        f"{html.escape(e.earlier)} that drive them most on this photo (below; gradient x activation of the "
        "channel's sum with respect to the earlier layer). Edge width: weight.</p>" + "".join(svg)
    )


def _groups(e: Explanation) -> str:
    """The neuron groups of the explained layer: each one's visualization, its map over the
    photo and its share of the score, then the removal of the top group against random
    group-sized directions."""
    if e.groups is None:
        return ""
    found, a = e.groups.layer, e.groups.ablation
    n = found.numbers
    cards = []
    for g, value in enumerate(found.attributions.tolist()):
        name = f"group {g + 1} of {found.layer}"
        viz = _img(found.images[g], 112, f"visualization of {name}") if found.images is not None else ""
        where = _img(heatmap(found.maps[g], e.photo), 112, f"map of {name}")
        share = _share(value, n["total"])
        cards.append(
            f"<figure class='group'><div class='channel'>{viz}{where}</div>"
            f"<figcaption>group {g + 1}: {value:+.3f} ({share} of the groups')</figcaption></figure>"
        )
    what = f"the lead of “{e.target[1]}” over “{e.versus[1]}”" if e.versus else f"“{e.target[1]}”"
    verdict = "holds" if a["holds"] else "is weak"
    dense = a["dense"]
    return (
        f"<h2>Neuron groups</h2><p class='muted'>{len(cards)} groups of channels of {html.escape(found.layer)} "
        "that fire together on this photo: scikit-learn's NMF of its activation (clamped at 0; "
        f"{100 * n['reconstruction_error']:.0f}% of it left unexplained) into directions over the channels and maps "
        "over the positions. Each group's feature visualization, where it is on the photo, and its share of the "
        f"score's gradient x activation on the activation's positive part ({n['total']:+.2f} in all; the negative "
        f"part, which no group describes, adds {n['negative']:+.2f}).</p>"
        f"<div class='row' id='groups'>{''.join(cards)}</div>"
        f"<p id='group-ablation'>Removing the top group (group {a['group']}) from {html.escape(found.layer)} lowers "
        f"{html.escape(what)} by <b>{a['top_drop']:.2f}</b> (from {a['score']:.2f}); {a['draws']} random "
        "group-sized directions (its direction's values shuffled over the channels, on its map) lower it by "
        f"{a['random_mean']:.2f} ± {a['random_std']:.2f}: ratio <b>{_ratio(a)}</b>. The group attribution "
        f"{verdict}. Dense random directions on its map lower it by {dense['random_mean']:.2f} ± "
        f"{dense['random_std']:.2f} (a harder comparison: they turn most channels down where the group is).</p>"
    )


def _share(value: float, total: float) -> str:
    return f"{100 * value / total:.0f}%" if abs(total) > 1e-12 else "–"


def _group_grid(e: Explanation) -> str:
    """The building blocks' grid as an SVG graph: the explained layer's groups above, the
    earlier layer's below, each with its visualization and its map, edges as thick as their
    weights."""
    if e.groups is None:
        return ""
    later, before, grid = e.groups.layer, e.groups.earlier, e.groups.grid
    cell, thumb, inset = 150, 88, 44
    width = max(len(later.maps), len(before.maps)) * cell + 40
    height = 2 * thumb + 190
    top_y, low_y = 30, height - thumb - 30

    def x_of(i: int, n: int) -> float:
        return width / 2 + (i - (n - 1) / 2) * cell - inset / 2

    strongest = float(grid.weights.abs().max()) or 1.0
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' id='group-grid'>"]
    for (g, f), w in np.ndenumerate(grid.weights.numpy()):
        x1, x2 = x_of(f, len(before.maps)), x_of(g, len(later.maps))
        color = "#0b57d0" if w >= 0 else "#c5221f"
        svg.append(
            f"<line x1='{x1:.0f}' y1='{low_y}' x2='{x2:.0f}' y2='{top_y + thumb + 14}' stroke='{color}' "
            f"stroke-width='{0.5 + 8 * abs(w) / strongest:.1f}' stroke-opacity='0.55'><title>"
            f"{before.layer} group {f + 1} -> {later.layer} group {g + 1}: {w:+.4g} "
            f"({_share(w, float(grid.total[g]))} of the group's)</title></line>"
        )
    for found, y in ((later, top_y), (before, low_y)):
        for i in range(len(found.maps)):
            x = x_of(i, len(found.maps)) - thumb / 2
            name = f"group {i + 1} of {found.layer}"
            picture = found.images[i] if found.images is not None else heatmap(found.maps[i], e.photo)
            where = heatmap(found.maps[i], e.photo)
            svg.append(
                f"<image href='{_uri(picture)}' x='{x:.0f}' y='{y}' width='{thumb}' height='{thumb}'>"
                f"<title>{html.escape(name)}</title></image>"
            )
            svg.append(
                f"<image href='{_uri(where)}' x='{x + thumb + 2:.0f}' y='{y + thumb - inset}' width='{inset}' "
                f"height='{inset}'><title>where {html.escape(name)} is</title></image>"
            )
            label_y = y + thumb + 12 if y == top_y else y - 4
            svg.append(
                f"<text x='{x + thumb / 2:.0f}' y='{label_y}' font-size='11' text-anchor='middle'>"
                f"{html.escape(found.layer)} group {i + 1}</text>"
            )
    svg.append("</svg>")
    return (
        f"<h2>Building blocks</h2><p class='muted'>How much each group of {html.escape(before.layer)} (below) feeds "
        f"each group of {html.escape(later.layer)} (above) on this photo: captum's gradient x activation at "
        f"{html.escape(before.layer)} of the later group's score (its direction's projection, summed over "
        "positions), split between the earlier groups in proportion to each one's part of the activation at every "
        "channel and position. Edge width: weight; each node's map beside its visualization.</p>"
        f"<div class='row'>{''.join(svg)}{_grid_table(e.groups.grid)}</div>"
    )


def _grid_table(grid: GroupGrid) -> str:
    """The grid's weights: a row per later group, a column per earlier group, then what no
    earlier group holds, the row's total (which the weights and that part make up) and the
    negative part beside it."""
    head = "".join(f"<th>group {f + 1}</th>" for f in range(grid.weights.shape[1]))
    rows = "".join(
        f"<tr><th>group {g + 1}</th>"
        + "".join(f"<td>{_number(w)}</td>" for w in row.tolist())
        + "".join(f"<td>{_number(float(t[g]))}</td>" for t in (grid.unassigned, grid.total, grid.negative))
        + "</tr>"
        for g, row in enumerate(grid.weights)
    )
    corner = f"{html.escape(grid.layer)} ← {html.escape(grid.earlier)}"
    return (
        f"<table id='group-weights'><tr><th>{corner}</th>{head}<th>no group</th><th>total</th>"
        f"<th>negative part</th></tr>{rows}</table>"
    )


def _number(v: float) -> str:
    return f"{v:+.0f}" if abs(v) >= 100 else f"{v:+.3g}"


def _faithfulness(e: Explanation) -> str:
    a, d = e.ablation, e.deletion
    verdict = "holds" if a["holds"] else "is weak"
    caveat = ""
    if e.warning:
        caveat = " On random weights this says which channels a random network uses, nothing about a trained model."
    rows = (
        "".join(f"<tr><td>{html.escape(name)}</td><td>{d['auc'][name]:.3f}</td></tr>" for name in d["curves"])
        + f"<tr><td>random order (mean of 4)</td><td>{d['random_auc']:.3f}</td></tr>"
    )
    return (
        "<h2>Faithfulness</h2>"
        f"<p id='ablation'>Setting each of the top {a['k']} channels of {html.escape(a['layer'])} to its mean over "
        f"{a['reference_photos']} reference photos (a value it typically takes, which says nothing of this photo) "
        f"drops the score by <b>{a['top_drop']:.2f}</b> (from {a['score']:.2f}); {a['draws']} random sets of "
        f"{a['k']} channels drop it by {a['random_mean']:.2f} ± {a['random_std']:.2f} on average: the channel "
        f"attribution {verdict} ({_ratio(a)}).{caveat}</p>"
        f"{_ablations(a)}{_histogram(a)}"
        "<p id='deletion-verdict'>Deletion: the photo's regions replaced by a blurred copy, most attributed first, "
        "against random orders; the class probability after each step (lower area: the map found what matters "
        "sooner). "
        f"{_deletion_verdict(d)}{' (On random weights: see the banner.)' if e.warning else ''}</p>"
        f"<div class='row'>{_curves(d)}<table><tr><th>order</th><th>area under the curve</th></tr>{rows}</table>"
        "</div>"
    )


def _ratio(a: dict[str, Any], short: bool = False) -> str:
    if a["ratio"] is not None:
        return f"{a['ratio']:.1f}x"
    return "–" if short else "random sets do not lower it"


def _ablations(a: dict[str, Any]) -> str:
    """The three ablations side by side, the same random sets for each."""
    ways = {
        "mean": f"its mean over {a['reference_photos']} reference photos (the verdict)",
        "zero": "zero (off the distribution where a channel's typical value is not near 0)",
        "image_mean": "its own mean over this photo (keeps how strongly it fires, removes only where)",
    }
    rows = "".join(
        f"<tr><td>{html.escape(text)}</td><td>{a[how]['top_drop']:.2f}</td>"
        f"<td>{a[how]['random_mean']:.2f} ± {a[how]['random_std']:.2f}</td><td>{_ratio(a[how], short=True)}</td></tr>"
        for how, text in ways.items()
    )
    return (
        f"<table id='ablations'><tr><th>each channel set to</th><th>top {a['k']}</th>"
        f"<th>{a['draws']} random sets of {a['k']}</th><th>ratio</th></tr>{rows}</table>"
    )


def _deletion_verdict(d: dict[str, Any]) -> str:
    better = [n for n, auc in d["auc"].items() if auc < d["random_auc"]]
    if len(better) == len(d["auc"]):
        return "Here both maps beat a random order."
    if better:
        return f"Here only {html.escape(better[0])} beats a random order: read the other map with care."
    return "Here neither map beats a random order: on this photo, read the maps with care."


def _histogram(a: dict[str, Any]) -> str:
    drops = a["random_drops"]
    lo = min(min(drops), a["top_drop"], 0.0)
    hi = lo + ((max(max(drops), a["top_drop"], 0.0) - lo) * 1.05 or 1.0)  # the top set's drop may be below 0
    w, h, bins = 360, 90, 24
    counts = [0] * bins
    for v in drops:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    peak = max(counts) or 1
    bars = "".join(
        f"<rect x='{10 + i * (w - 20) / bins:.1f}' y='{h - 20 - 60 * n / peak:.1f}' width='{(w - 20) / bins - 1:.1f}' "
        f"height='{60 * n / peak:.1f}' fill='#9aa0a6'/>"
        for i, n in enumerate(counts)
    )
    x = 10 + (a["top_drop"] - lo) / (hi - lo) * (w - 20)
    right = x > w / 2  # the labels on opposite sides, the top set's beside its line
    top = f"x='{x - 4:.1f}' text-anchor='end'" if right else f"x='{x + 4:.1f}'"
    rand = "x='10'" if right else f"x='{w - 10}' text-anchor='end'"
    mark = (
        f"<line x1='{x:.1f}' x2='{x:.1f}' y1='5' y2='{h - 20}' stroke='#c5221f' stroke-width='2'/>"
        f"<text {top} y='{h - 5}' font-size='10'>top {a['k']}</text>"
        f"<text {rand} y='{h - 5}' font-size='10'>drops of random sets</text>"
    )
    return f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}'>{bars}{mark}</svg>"


def _curves(d: dict[str, Any]) -> str:
    w, h = 360, 200
    xs = d["fractions"]
    series = [*d["curves"].items(), ("random order", d["random"])]
    colors = ["#0b57d0", "#e37400", "#9aa0a6"]
    top = max(max(v) for _, v in series) or 1.0
    lines, legend = [], []
    for i, (name, values) in enumerate(series):
        pairs = zip(xs, values, strict=True)
        points = " ".join(f"{30 + x * (w - 40):.1f},{h - 25 - v / top * (h - 40):.1f}" for x, v in pairs)
        lines.append(f"<polyline points='{points}' fill='none' stroke='{colors[i % 3]}' stroke-width='2'/>")
        legend.append(
            f"<text x='{w - 10}' y='{15 + 13 * i}' font-size='11' text-anchor='end' fill='{colors[i % 3]}'>"
            f"{html.escape(name)}</text>"
        )
    axes = (
        f"<line x1='30' y1='{h - 25}' x2='{w - 10}' y2='{h - 25}' stroke='#555'/>"
        f"<line x1='30' y1='10' x2='30' y2='{h - 25}' stroke='#555'/>"
        f"<text x='30' y='{h - 8}' font-size='10'>0%</text>"
        f"<text x='{w - 10}' y='{h - 8}' font-size='10' text-anchor='end'>100% of the photo deleted</text>"
        f"<text x='2' y='14' font-size='10'>{top:.2f}</text>"
    )
    inner = axes + "".join(lines) + "".join(legend)
    return f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' id='deletion'>{inner}</svg>"


def _footer(e: Explanation) -> str:
    s = e.settings
    cmd = f"featviz explain {e.source} --model {e.model} --class {e.target[0]} --layer {e.layer} --top {s['top']}"
    cmd += f" --groups {s['groups']}" if "groups" in s else ""
    spent = ", ".join(f"{k} {v:.1f} s" for k, v in e.seconds.items())
    return (
        f"<h2>How this was made</h2><p><code>{html.escape(cmd)}</code></p>"
        f"<p class='muted'>Visualizations: microscope recipe, {s['size']} px, seed {s['seed']}"
        f"{', from ' + html.escape(s['microscope']) + ' where built' if s['microscope'] else ''}. "
        f"Reference photos of the ablation: {html.escape(s.get('reference', ''))}. Time: {spent}.</p>"
    )


def summary_png(e: Explanation) -> bytes:
    """Photo, both maps, and the top channels' visualizations over their activation maps."""
    head = make_grid(
        [e.photo, heatmap(e.gradcam, e.photo), heatmap(e.integrated, e.photo, blur=3.0)],
        [
            f"{e.target[1]} ({100 * dict((i, p) for i, _, p in e.top).get(e.target[0], 0.0):.0f}%)",
            "Grad-CAM",
            "integrated gradients",
        ],
        columns=3,
    )
    tiles, labels = [], []
    small = [ch for ch in e.positive if ch.image is not None]
    for ch in small:
        image = ch.image if ch.image is not None else torch.zeros(3, 112, 112)
        tiles.append(F.interpolate(image[None].cpu(), size=(112, 112), mode="bilinear", antialias=True)[0])
        labels.append(f"{ch.channel} ({ch.contribution:+.2f})")
    for ch in small:
        tiles.append(
            F.interpolate(heatmap(ch.activation, e.photo, shift=True)[None], size=(112, 112), mode="bilinear")[0]
        )
        labels.append("fires here")
    parts = [head]
    if tiles:
        parts.append(make_grid(tiles, labels, columns=len(small)))
    if e.groups is not None:
        parts.append(_groups_png(e.groups.layer, e.photo))
    width = max(p.shape[-1] for p in parts)
    if e.warning is not None:
        parts.insert(0, _banner_png(f"{e.warning}.", width))
    padded = [F.pad(p, (0, width - p.shape[-1]), value=1.0) for p in parts]
    return png_bytes(torch.cat(padded, dim=1))


def _groups_png(found: LayerGroups, photo: torch.Tensor) -> torch.Tensor:
    """The explained layer's groups: each one's visualization (when rendered) over its map."""
    shares = [_share(v, found.numbers["total"]) for v in found.attributions.tolist()]
    tiles, labels = [], []
    if found.images is not None:
        tiles += [
            F.interpolate(i[None].cpu(), size=(112, 112), mode="bilinear", antialias=True)[0] for i in found.images
        ]
        labels += [f"group {g + 1} ({share})" for g, share in enumerate(shares)]
    for g, m in enumerate(found.maps):
        tiles.append(F.interpolate(heatmap(m, photo)[None], size=(112, 112), mode="bilinear", antialias=True)[0])
        labels.append(f"group {g + 1} here" if found.images is not None else f"group {g + 1} ({shares[g]})")
    return make_grid(tiles, labels, columns=len(found.maps))


def _banner_png(text: str, width: int) -> torch.Tensor:
    """``text`` in white on a red band ``width`` px wide, wrapped to fit, as ``[3, h, width]``."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=16)  # scalable since Pillow 10.1
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for word in text.split():
        if lines and measure.textlength(f"{lines[-1]} {word}", font=font) <= width - 20:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    picture = Image.new("RGB", (width, 20 * len(lines) + 16), _BANNER_RGB)
    draw = ImageDraw.Draw(picture)
    for i, line in enumerate(lines):
        draw.text((10, 8 + 20 * i), line, fill=(255, 255, 255), font=font)
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1).float() / 255


def numbers(e: Explanation) -> dict[str, Any]:
    """The explanation's numbers (no pictures), as JSON-ready values: a run record of kind
    ``explain`` (:func:`~featviz.optvis.record.make_record`: status, seconds, creation time and
    library versions beside what was explained)."""
    from featviz.optvis.record import make_record

    def channel(ch: Channel) -> dict[str, Any]:
        return {"unit": ch.unit, "contribution": ch.contribution, "source": ch.source}

    fields = {
        "model": e.model,
        **e.weights,
        "image": e.source,
        "top": [{"class": i, "name": n, "probability": p} for i, n, p in e.top],
        "target": {"class": e.target[0], "name": e.target[1]},
        "versus": {"class": e.versus[0], "name": e.versus[1]} if e.versus else None,
        "layer": e.layer,
        "earlier": e.earlier,
        "positive": [channel(ch) for ch in e.positive],
        "negative": [channel(ch) for ch in e.negative],
        "circuit": [{"from": f"{e.earlier}:{j}", "to": f"{e.layer}:{c}", "weight": w} for j, c, w in e.circuit],
        "ablation": e.ablation,
        "deletion": e.deletion,
        "groups": e.groups.to_dict() if e.groups is not None else None,
        "settings": e.settings,
        "times": e.seconds,  # by phase
    }
    return make_record("explain", fields, seconds=e.seconds.get("total", sum(e.seconds.values())))


def write_report(e: Explanation, path: str | Path) -> list[Path]:
    """Write the HTML report to ``path`` and, beside it, the PNG summary and the numbers
    (``NAME.png``, ``NAME.json``); returns the three paths."""
    path = Path(path)
    return [
        atomic_write(path, report_html(e)),
        atomic_write(path.with_suffix(".png"), summary_png(e)),
        atomic_write(path.with_suffix(".json"), json_bytes(numbers(e))),
    ]

"""A unit of a built Microscope inside a notebook: the content of its page, images inlined,
as ``featviz.microscope.show("lite0_microscope", "blocks.5:51")`` in a cell."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from featviz.errors import FeatvizError, suggestion
from featviz.microscope.catalog import require
from featviz.microscope.site import Site, unit_body

_STYLE = (
    ".featviz-unit .hist{display:flex;align-items:flex-end;height:60px;gap:1px}"
    ".featviz-unit .hist div{background:#0b57d0;width:6px}"
    ".featviz-unit .thumbs{display:flex;flex-wrap:wrap;gap:10px}"
    ".featviz-unit .thumbs figure{margin:0;font-size:12px;text-align:center}"
    ".featviz-unit .muted{color:#666}"
)


class UnitView:
    """A unit's page content; notebooks display it through ``_repr_html_``."""

    def __init__(self, unit: str, body: str) -> None:
        self.unit, self.body = unit, body

    def _repr_html_(self) -> str:
        return f"<style>{_STYLE}</style><div class='featviz-unit'><h3>{html.escape(self.unit)}</h3>{self.body}</div>"

    def __repr__(self) -> str:
        return f"UnitView({self.unit!r}, {len(self.body)} characters of HTML)"


def view(out: str | Path, unit: str) -> UnitView:
    """The page content of ``unit`` ("LAYER:CHANNEL") of the Microscope folder ``out``."""
    out = Path(out)
    require(out)
    layer, sep, channel = unit.rpartition(":")
    if not sep or not channel.isdigit():
        raise FeatvizError(f"expected a unit as LAYER:CHANNEL (blocks.5:51), got {unit!r}")
    site = Site(out)
    if layer not in site.names:
        raise FeatvizError(
            f"{layer!r} is not a layer of this Microscope: expected one of {', '.join(site.names)}."
            f"{suggestion(layer, site.names)}"
        )
    row = site.units.get((layer, int(channel)))
    if row is None:
        raise FeatvizError(f"{unit} is not built: `featviz microscope serve {out}` renders it when its page is opened")

    def inline(path: str) -> str:
        return "data:image/png;base64," + base64.b64encode((out / path).read_bytes()).decode()

    return UnitView(unit, unit_body(site, row, src=inline, link=lambda layer, c: None))


def show(out: str | Path, unit: str) -> UnitView | None:
    """Display ``unit`` of the Microscope folder ``out`` in the running notebook (returns the
    view instead when there is no IPython to display it)."""
    found = view(out, unit)
    try:
        from IPython.display import display
    except ImportError:
        return found
    display(found)
    return None

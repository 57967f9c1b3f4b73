"""The ``featviz`` command line. It parses arguments and calls the library, nothing more.

Everything that can be checked without rendering (output paths and formats, the unit and its
position, the size against the memory there is, learning rate, device) is checked before the
first step; a problem is one line on stderr and exit status 2.

The commands live by family: ``render`` (render, its replay, and looking a model up),
``tools`` (atlas, dream, checkpoints, zoom), ``analysis`` (examples, groups, explain) and
``microscope``; the options they share are declared once in ``options``.
"""

from __future__ import annotations

import click

from featviz.cli import analysis, microscope, render, tools
from featviz.cli.options import _Group

__all__ = ["main"]


@click.group(cls=_Group)
@click.version_option(package_name="featviz")
def main() -> None:
    """Feature visualization for PyTorch vision models."""
    from featviz.models.speed import hold_heap

    hold_heap(True)  # its own process: a render's freed memory stays in the heap between steps


for _command in (
    render.render,
    render.recipes,
    render.layers,
    render.classes,
    render.predict,
    tools.atlas,
    tools.dream,
    tools.checkpoints,
    tools.zoom,
    analysis.examples,
    analysis.groups,
    analysis.concepts,
    analysis.activation_atlas,
    analysis.explain,
    microscope.microscope,
):
    main.add_command(_command)

"""Microscope: every chosen unit of a model with its visualizations, dataset examples and
figures, built by a resumable (and distributable) job into a folder with a SQLite catalog,
browsed as a static site, served locally (rendering skipped units on demand), or shown in a
notebook cell."""

from featviz.microscope.build import MICROSCOPE, BuildReport, build, default_layers, render_units
from featviz.microscope.catalog import CATALOG, Catalog
from featviz.microscope.notebook import UnitView, show, view
from featviz.microscope.serve import create_app, serve
from featviz.microscope.site import write_site

__all__ = [
    "CATALOG",
    "MICROSCOPE",
    "BuildReport",
    "Catalog",
    "UnitView",
    "build",
    "create_app",
    "default_layers",
    "render_units",
    "serve",
    "show",
    "view",
    "write_site",
]

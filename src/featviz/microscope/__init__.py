"""Microscope: every chosen unit of a model with its visualizations, dataset examples and
figures, built by a resumable (and distributable) job into a folder with a SQLite catalog."""

from featviz.microscope.build import MICROSCOPE, BuildReport, build, default_layers
from featviz.microscope.catalog import CATALOG, Catalog

__all__ = ["CATALOG", "MICROSCOPE", "BuildReport", "Catalog", "build", "default_layers"]

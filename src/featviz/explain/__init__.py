"""Explain a prediction: attribution (captum), channels, neuron groups and their grid, a small
circuit, faithfulness checks, and a self-contained HTML report with a PNG summary."""

from featviz.explain.core import Channel, Explanation, NeuronGroups, default_layers, explain
from featviz.explain.report import heatmap, numbers, report_html, summary_png, write_report

__all__ = [
    "Channel",
    "Explanation",
    "NeuronGroups",
    "default_layers",
    "explain",
    "heatmap",
    "numbers",
    "report_html",
    "summary_png",
    "write_report",
]

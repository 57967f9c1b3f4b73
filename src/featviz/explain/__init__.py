"""Explain a prediction: attribution (captum), channels, a small circuit, faithfulness checks,
and a self-contained HTML report with a PNG summary."""

from featviz.explain.core import Channel, Explanation, default_layers, explain

__all__ = ["Channel", "Explanation", "default_layers", "explain"]

"""Models: adapters, the registry and class labels."""

from featviz.models.adapter import INPUT, LOGITS, ModelAdapter
from featviz.models.labels import Labels, imagenet_labels
from featviz.models.zoo import DEFAULT_MODEL, available_models, load_again, load_model, place, resolve_device

__all__ = [
    "DEFAULT_MODEL",
    "INPUT",
    "LOGITS",
    "Labels",
    "ModelAdapter",
    "available_models",
    "imagenet_labels",
    "load_again",
    "load_model",
    "place",
    "resolve_device",
]

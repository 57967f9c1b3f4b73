"""featviz: feature visualization for PyTorch vision models.

>>> import featviz
>>> featviz.parse_objective("logits:hen - 0.05 * blocks.5:3")
class_logit('hen') - 0.05 * channel('blocks.5', 3)
"""

from featviz.atlas import AtlasResult, atlas
from featviz.diverse import diverse
from featviz.dream import DreamResult, dream
from featviz.errors import (
    FeatvizError,
    ImageError,
    RenderError,
    UnitError,
    UnknownClassError,
    UnknownLayerError,
    UnknownModelError,
)
from featviz.hooks import capture
from featviz.models import DEFAULT_MODEL, Labels, ModelAdapter, imagenet_labels, load_model
from featviz.objectives import (
    Objective,
    batched,
    channel,
    channels,
    class_logit,
    class_probability,
    direction,
    diversity,
    l1,
    l2,
    layer,
    neuron,
    total_variation,
)
from featviz.param import FourierImage, MacoImage, PixelImage
from featviz.recipes import RECIPES, Recipe, get_recipe
from featviz.render import RenderResult, render
from featviz.units import parse_objective, parse_unit
from featviz.zoom import ZoomResult, zoom

__version__ = "0.1.0"

__all__ = [
    "AtlasResult",
    "DEFAULT_MODEL",
    "DreamResult",
    "FeatvizError",
    "FourierImage",
    "ImageError",
    "Labels",
    "MacoImage",
    "ModelAdapter",
    "Objective",
    "PixelImage",
    "RECIPES",
    "Recipe",
    "RenderError",
    "RenderResult",
    "UnitError",
    "UnknownClassError",
    "UnknownLayerError",
    "UnknownModelError",
    "ZoomResult",
    "atlas",
    "batched",
    "capture",
    "channel",
    "channels",
    "class_logit",
    "class_probability",
    "direction",
    "diverse",
    "diversity",
    "dream",
    "get_recipe",
    "imagenet_labels",
    "l1",
    "l2",
    "layer",
    "load_model",
    "neuron",
    "parse_objective",
    "parse_unit",
    "render",
    "total_variation",
    "zoom",
]

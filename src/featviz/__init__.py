"""featviz: feature visualization for PyTorch vision models.

The package in layers, each importing only those below it: ``models/`` (adapters, hooks,
speed-ups), ``data/`` (photos in), ``optvis/`` (objectives, parameterizations, transforms,
recipes, the resolved run spec and the one render loop), ``io/`` (everything written),
``tools/`` (atlas, diverse sets, DeepDream, zoom, checkpoints, replay), ``analysis/``
(dataset examples, attribution, trust, neuron groups, concepts), ``microscope/``,
``explain/`` and ``cli/``.

>>> import featviz
>>> featviz.parse_objective("logits:hen - 0.05 * blocks.5:3")
class_logit('hen') - 0.05 * channel('blocks.5', 3)
"""

from featviz import microscope
from featviz.analysis.activation_atlas import ActivationAtlas, activation_atlas  # registers its records' replay
from featviz.analysis.concepts import Concepts, concepts
from featviz.analysis.examples import ExamplesResult, examples
from featviz.analysis.groups import GroupsResult, groups
from featviz.data import load_image
from featviz.errors import (
    FeatvizError,
    ImageError,
    RenderError,
    UnitError,
    UnknownClassError,
    UnknownLayerError,
    UnknownModelError,
)
from featviz.explain import Explanation, explain
from featviz.io.records import load_record, save
from featviz.models import DEFAULT_MODEL, Labels, ModelAdapter, imagenet_labels, load_model
from featviz.models.hooks import capture
from featviz.optvis.objectives import (
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
from featviz.optvis.param import FourierImage, MacoImage, PixelImage
from featviz.optvis.recipes import RECIPES, Recipe, get_recipe
from featviz.optvis.registry import register
from featviz.optvis.render import RenderResult, render
from featviz.optvis.spec import RunSpec
from featviz.optvis.units import parse_objective, parse_unit
from featviz.tools.atlas import AtlasResult, atlas
from featviz.tools.checkpoints import CheckpointsResult, across_checkpoints
from featviz.tools.diverse import diverse
from featviz.tools.dream import DreamResult, dream
from featviz.tools.replays import replay
from featviz.tools.zoom import ZoomResult, zoom

try:
    from importlib.metadata import version as _version

    __version__ = _version("featviz")
except Exception:  # not installed (a source checkout on sys.path)
    __version__ = "0+unknown"

__all__ = [
    "ActivationAtlas",
    "AtlasResult",
    "CheckpointsResult",
    "Concepts",
    "DEFAULT_MODEL",
    "DreamResult",
    "ExamplesResult",
    "Explanation",
    "FeatvizError",
    "FourierImage",
    "GroupsResult",
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
    "RunSpec",
    "UnitError",
    "UnknownClassError",
    "UnknownLayerError",
    "UnknownModelError",
    "ZoomResult",
    "across_checkpoints",
    "activation_atlas",
    "atlas",
    "batched",
    "capture",
    "channel",
    "channels",
    "class_logit",
    "class_probability",
    "concepts",
    "direction",
    "diverse",
    "diversity",
    "dream",
    "examples",
    "explain",
    "get_recipe",
    "groups",
    "imagenet_labels",
    "l1",
    "l2",
    "layer",
    "load_image",
    "load_model",
    "register",
    "load_record",
    "microscope",
    "neuron",
    "parse_objective",
    "parse_unit",
    "render",
    "replay",
    "save",
    "total_variation",
    "zoom",
]

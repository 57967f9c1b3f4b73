from __future__ import annotations

import subprocess
import sys

import featviz

PUBLIC = [
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
    "load_record",
    "microscope",
    "neuron",
    "parse_objective",
    "parse_unit",
    "register",
    "render",
    "replay",
    "save",
    "total_variation",
    "zoom",
]


def test_public_names_are_pinned():
    assert sorted(featviz.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(featviz, name)


def test_import_is_light():
    code = (
        "import sys, featviz; heavy = {'flask', 'fastapi', 'aiohttp', 'uvicorn', 'timm', 'sklearn', "
        "'imageio', 'click', 'starlette', 'captum', 'playwright', 'matplotlib'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_recipes_are_documented():
    assert {"naive", "gray", "robust", "l2", "blur", "lucid", "maco", "default", "fast"} <= set(featviz.RECIPES)
    assert all(r.description for r in featviz.RECIPES.values())

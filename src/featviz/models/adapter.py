"""ModelAdapter: a module plus what it takes to feed it images and name its parts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featviz.errors import FeatvizError, RenderError, UnknownClassError, UnknownLayerError, shorten, suggestion
from featviz.models.labels import Labels

#: Pseudo-layer names that are not modules: the model's output and the image itself.
LOGITS = "logits"
INPUT = "input"
PSEUDO_LAYERS = (LOGITS, INPUT)


class ModelAdapter:
    """A vision model that takes RGB images in [0, 1] and normalizes them itself.

    Args:
        module: the network; its forward takes a normalized ``[B, 3, H, W]`` batch.
        mean, std: per-channel normalization applied to [0, 1] images.
        input_size: the resolution the model was trained at (used as default render size);
            inferred for patch-embedding transformers, else 224.
        min_size: the smallest input the model accepts.
        labels: class names of the output logits, if it is a classifier.
        name: a name for records and messages.
        prefix_tokens: for token outputs ``[B, T, C]``, how many leading tokens (class,
            register) are not part of the spatial grid. ``None`` infers it from the model's
            ``num_prefix_tokens`` attribute or from the token count.
        fixed_size: the model takes ``input_size`` only (renders are resampled to it before
            the model); ``None`` looks at a timm patch embedding's ``strict_img_size``.
        trained: whether the weights were trained: ``False`` for a named model built with
            random weights (every report, page and record of it says so), ``None`` when
            featviz cannot know (a module passed in).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        input_size: int | None = None,
        min_size: int = 32,
        labels: Labels | None = None,
        name: str | None = None,
        prefix_tokens: int | None = None,
        trained: bool | None = None,
        fixed_size: bool | None = None,
    ) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise FeatvizError(f"mean and std need 3 values (RGB), got {mean!r} and {std!r}")
        self.module = module
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        # Patch-embedding transformers (timm ViTs) accept only the size they were built for.
        patch_embed = getattr(module, "patch_embed", None)
        if fixed_size is None:
            fixed_size = bool(getattr(patch_embed, "strict_img_size", False))
        self.fixed_size = fixed_size
        if input_size is None:
            built = getattr(patch_embed, "img_size", None) if self.fixed_size else None
            input_size = int(built[0]) if built else 224
        self.input_size = int(input_size)
        self.min_size = int(min_size)
        self.labels = labels
        self.name = name or type(module).__name__
        if prefix_tokens is None:
            prefix_tokens = getattr(module, "num_prefix_tokens", None)
        self.prefix_tokens = prefix_tokens
        self.trained = trained
        #: how :func:`featviz.load_model` built it, JSON-ready, for a record to load it again
        #: (:func:`featviz.models.zoo.load_again`); empty for a module passed in
        self.source: dict[str, Any] = {}
        self._modules = dict(module.named_modules())
        self._layouts: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"ModelAdapter({self.name!r}, input_size={self.input_size})"

    @property
    def untrained_note(self) -> str | None:
        """A sentence for every output of a model with random weights, else ``None``."""
        if self.trained is not False:
            return None
        return (
            f"{self.name} has random weights (not trained): what it draws, ranks and attributes "
            "says nothing about a trained model"
        )

    # -- running -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> ModelAdapter:
        self.module.to(device)
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] RGB images to the model's input space."""
        scale = 1.0 / images.new_tensor(self.std).view(1, 3, 1, 1)
        shift = -images.new_tensor(self.mean).view(1, 3, 1, 1) * scale
        return torch.addcmul(shift, images, scale)  # (x - mean) / std in one pass

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.check_size(images.shape[-2], images.shape[-1])
        if self.fixed_size and tuple(images.shape[-2:]) != (self.input_size, self.input_size):
            # a model that takes one size only (a ViT's patch grid) sees any image resampled to it
            images = torch.nn.functional.interpolate(
                images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True
            )
        try:
            output = self.module(self.normalize(images))
        except TypeError as err:  # a forward that needs more than an image (text, masks, ...)
            raise RenderError(
                f"{self.name}'s forward cannot run on an image batch alone ({err}): featviz calls "
                "module(images); wrap the model in an nn.Module whose forward takes only the images"
            ) from err
        return self.logits_of(output)

    def logits_of(self, output: Any) -> torch.Tensor:
        """The logits in what the module's forward returns: a tensor, a tuple or list whose
        first item is one (an auxiliary head's outputs follow), or an object or dict with
        ``logits`` (Hugging Face's outputs)."""
        if isinstance(output, torch.Tensor):
            return output
        found = output.get("logits") if isinstance(output, dict) else getattr(output, "logits", None)
        if found is None and isinstance(output, (tuple, list)) and output:
            found = output[0]
        if not isinstance(found, torch.Tensor):
            raise RenderError(
                f"{self.name}'s forward returned {type(output).__name__}: expected a tensor of logits, a tuple whose "
                "first item is one, or an object with .logits"
            )
        return found

    def set_labels(self, labels: Labels | Sequence[str] | str | Path) -> None:
        """Name the model's classes: a :class:`Labels`, a list of names, or a text file with
        one name a line; refused when the count is not the model's number of outputs."""
        if isinstance(labels, (str, Path)):
            path = Path(labels)
            try:
                names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            except OSError as err:
                raise FeatvizError(f"cannot read the labels file {path}: {err.strerror or err}") from None
            labels = names
        found = labels if isinstance(labels, Labels) else Labels(list(labels))
        side = self.input_size
        with torch.no_grad():
            outputs = self(torch.full((1, 3, side, side), 0.5, device=self.device)).shape[-1]
        if len(found) != outputs:
            raise FeatvizError(
                f"{len(found)} class names for {self.name}, which has {outputs} outputs: one name a class"
            )
        self.labels = found

    def check_size(self, height: int, width: int) -> None:
        if min(height, width) < self.min_size:
            raise RenderError(
                f"image size {height}x{width} is too small for {self.name}: "
                f"expected at least {self.min_size}x{self.min_size} pixels"
            )

    @torch.no_grad()
    def predict(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """Top-k (index, name, probability) for each image of a [0, 1] batch (all classes
        when the model has fewer than ``k``)."""
        was_training = self.module.training
        self.module.eval()
        try:
            probs = self(images.to(self.device)).softmax(-1)
        finally:
            self.module.train(was_training)
        top = probs.topk(min(k, probs.shape[-1]), dim=-1)
        out = []
        for values, indices in zip(top.values.tolist(), top.indices.tolist(), strict=False):
            names = [self.labels.name(i) if self.labels else str(i) for i in indices]
            out.append(list(zip(indices, names, values, strict=False)))
        return out

    # -- layers ------------------------------------------------------------------------------
    def layers(self) -> list[str]:
        """Dotted paths of every submodule, in definition order (the root excluded)."""
        return [n for n in self._modules if n]

    def layer_name(self, layer: str | nn.Module) -> str:
        """Validate a layer given by name or module; return its dotted path."""
        if isinstance(layer, nn.Module):
            for name, mod in self._modules.items():
                if mod is layer and name:
                    return name
            raise UnknownLayerError(f"module {type(layer).__name__} is not part of {self.name}")
        if layer in PSEUDO_LAYERS or (layer in self._modules and layer):
            return layer
        names = self.layers()
        hint = suggestion(layer, names + list(PSEUDO_LAYERS)) if len(layer) <= 200 else ""
        raise UnknownLayerError(
            f"unknown layer {shorten(layer)} in {self.name} ({len(names)} layers; `featviz layers` lists them).{hint}"
        )

    def layout(self, layer: str) -> Any:
        """Where ``layer`` keeps its channels (:class:`~featviz.models.layout.Layout`: NCHW,
        NHWC, tokens, vector), found once per model by looking at how it computes them."""
        name = self.layer_name(layer)
        found = self.layouts()
        if name not in found:
            raise UnknownLayerError(f"layer {name!r} of {self.name} gives no tensor for an image")
        return found[name]

    def layouts(self) -> dict[str, Any]:
        """Every layer's layout, in the order the layers finish in a forward pass (one pass
        of a grey image at the input size, made once)."""
        from featviz.models.layout import layouts

        if self._layouts is None:
            grey = torch.full((1, 3, self.input_size, self.input_size), 0.5, device=self.device)
            self._layouts = layouts(self.module, self.normalize(grey))
        return self._layouts

    def get_module(self, layer: str) -> nn.Module:
        return self._modules[self.layer_name(layer)]

    def class_index(self, key: int | str) -> int:
        if self.labels is None:
            if isinstance(key, int) or str(key).isdigit():
                return int(key)
            raise UnknownClassError(f"{self.name} has no class labels; give a class index, not {shorten(key)}")
        return self.labels.index(key)

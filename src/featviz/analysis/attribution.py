"""Attribution on captum, shared by explain, the Microscope and neuron groups: the score of a
class, gradient x activation of a layer, Grad-CAM and integrated gradients maps, and the
channels of an earlier layer that feed a later layer's channels.

Every layer is read as its grid ``[N, C, H, W]`` (:func:`~featviz.models.grids.to_grid`:
tokens on their patch grid, channels-last permuted), so a ViT's or a ConvNeXt's layers
attribute as a ResNet's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from featviz.errors import FeatvizError
from featviz.models import LOGITS, ModelAdapter
from featviz.models.grids import grid_shape, to_grid
from featviz.models.hooks import capture, eval_mode
from featviz.models.layers import stages
from featviz.models.layout import NCHW, NHWC, TOKENS
from featviz.optvis.objectives import as_grid

GRIDS = (NCHW, NHWC, TOKENS)  # the layouts whose channels have positions


def default_layers(adapter: ModelAdapter) -> tuple[str, str]:
    """The layer to explain with (the last stage before pooling: ``blocks.6``, ``layer4``)
    and the earlier one its circuit reaches into (the stage before it). A stage whose grid the
    logits do not depend on is passed over: a ViT's last block, when its head reads the class
    token only, so that its patch tokens have no gradient and nothing to attribute."""
    found = stages(adapter)
    if len(found) < 2:
        top = [n for n in adapter.layers() if "." not in n]
        found = [n for n in top if adapter.layout(n).kind in GRIDS]
    while len(found) > 2 and adapter.layout(found[-1]).kind == TOKENS and not reaches_logits(adapter, found[-1]):
        found = found[:-1]
    if len(found) < 2:
        raise FeatvizError(f"cannot choose layers of {adapter.name} by itself: name them (--layer L --earlier E)")
    return found[-1], found[-2]


def reaches_logits(adapter: ModelAdapter, layer: str) -> bool:
    """Whether the logits depend on ``layer``'s grid (its gradient on a grey image is not 0)."""
    grey = torch.full((1, 3, adapter.input_size, adapter.input_size), 0.5, device=adapter.device)
    with eval_mode(adapter), capture(adapter, [layer, LOGITS]) as cap:
        acts = cap(grey)
        (grad,) = torch.autograd.grad(acts[LOGITS].sum(), acts[layer])
    return bool(to_grid(adapter, layer, grad).abs().sum() > 0)


def spatial(adapter: ModelAdapter, layer: str, what: str) -> tuple[int, ...]:
    """The ``(C, H, W)`` grid of a layer explain can read (a conv map with channels first or
    last, a token sequence on its patch grid), else one line saying why not."""
    name = adapter.layer_name(layer)
    layout = adapter.layout(name) if name != LOGITS else None
    shape = grid_shape(adapter, name) if layout is not None and layout.kind in GRIDS else None
    if shape is None or shape[1] * shape[2] < 2:
        found = list(layout.shape) if layout is not None else "the logits"
        raise FeatvizError(
            f"{what} {name!r} has no spatial output (its output is {found}): expected a conv map "
            "([C, H, W] or [H, W, C]) or a token sequence ([T, C])"
        )
    return shape


def class_score(adapter: ModelAdapter, cls: int, versus: int | None) -> Any:
    """The scalar per image that is explained: the class logit, or its lead over ``versus``."""

    def forward(images: torch.Tensor) -> torch.Tensor:
        logits = adapter(images)
        return logits[:, cls] - (logits[:, versus] if versus is not None else 0)

    return forward


def layer_gradients(
    adapter: ModelAdapter, x: torch.Tensor, layer: str, score: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of the score with respect to ``layer`` and the layer's activation (captum's
    layer gradient and activation), both as the layer's grid ``[1, C, H, W]``
    (:func:`~featviz.models.grids.to_grid`: tokens on their patch grid, channels last permuted)."""
    from captum.attr import LayerActivation, LayerGradientXActivation

    module = adapter.get_module(layer)
    with eval_mode(adapter):
        grads = LayerGradientXActivation(score, module, multiply_by_inputs=False).attribute(x)
        acts = LayerActivation(score, module).attribute(x)
    return to_grid(adapter, layer, grads.detach()), to_grid(adapter, layer, acts.detach())


def class_gradients(
    adapter: ModelAdapter, x: torch.Tensor, layer: str, cls: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For a batch ``x``: the gradient of each image's ``cls`` logit with respect to ``layer``
    and the layer's activation, both as the layer's grid ``[B, C, H, W]``, and the logits
    ``[B, classes]``, from one forward and one backward (what :func:`layer_gradients` gives with
    :func:`class_score`, which runs the model once more for the activation and a data pass once
    more for the logits)."""
    with torch.enable_grad(), capture(adapter, [layer, LOGITS]) as cap:
        out = cap(x.detach().requires_grad_(True))  # the layer's output in the graph, whatever its weights
        (grads,) = torch.autograd.grad(out[LOGITS][:, cls].sum(), out[layer])
    acts, logits = out[layer].detach(), out[LOGITS].detach()
    return to_grid(adapter, layer, grads), to_grid(adapter, layer, acts), logits


def maps(x: torch.Tensor, grads: torch.Tensor, acts: torch.Tensor, score: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of the layer whose grid gradient and activation are given (each channel
    weighted by its mean gradient, summed, rectified, upsampled to the photo: captum's
    ``LayerGradCam`` computed on the grid, so that token and channels-last layers have one too)
    and captum's integrated gradients from a black image."""
    from captum.attr import IntegratedGradients

    cam = (grads.mean((2, 3), keepdim=True) * acts).sum(1, keepdim=True).clamp(min=0)
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    ig = IntegratedGradients(score).attribute(x, baselines=torch.zeros_like(x), n_steps=32, internal_batch_size=8)
    return cam[0, 0].clamp(min=0).cpu(), ig[0].detach().abs().sum(0).cpu()


def channel_inputs(
    adapter: ModelAdapter,
    images: torch.Tensor | Sequence[torch.Tensor],
    layer: str,
    earlier: str,
    channels: Sequence[int],
    *,
    spatial_mean: bool = False,
) -> torch.Tensor:
    """``[len(channels), C_earlier]``: how much each channel of ``earlier`` feeds each of
    ``channels`` of ``layer`` -- captum's layer gradient x activation at ``earlier`` of the
    channel's spatial sum (or mean) at ``layer``, summed over ``earlier``'s positions and
    averaged over the images. ``images`` is one batch for all channels, or one batch per channel
    (the Microscope's: each channel on its own top examples)."""
    from captum.attr import LayerGradientXActivation

    def reduced(batch: torch.Tensor) -> torch.Tensor:
        with capture(adapter, [layer]) as cap:
            grid = as_grid(cap(batch), layer)
            return grid.mean((2, 3)) if spatial_mean else grid.sum((2, 3))

    for name in (layer, earlier):
        adapter.layout(name)  # probed now if unknown: a probe inside the attribution would overwrite captum's capture
    attribution = LayerGradientXActivation(reduced, adapter.get_module(earlier))
    rows = []
    with eval_mode(adapter):
        if isinstance(images, torch.Tensor):  # one batch, attributed to each channel in turn
            batch = images.to(adapter.device)
            for c in channels:
                attr = attribution.attribute(batch, target=int(c))
                rows.append(to_grid(adapter, earlier, attr.detach()).sum((2, 3)).mean(0))
            return torch.stack(rows).cpu()
        # every channel's own images in one batch, each image's target its channel
        sizes = [len(batch) for batch in images]
        target = [int(c) for c, n in zip(channels, sizes, strict=True) for _ in range(n)]
        attr = attribution.attribute(torch.cat(list(images)).to(adapter.device), target=target)
    per_image = to_grid(adapter, earlier, attr.detach()).sum((2, 3))
    return torch.stack([part.mean(0) for part in per_image.split(sizes)]).cpu()

"""The one optimization loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from featviz import objectives as O
from featviz.callbacks import BlurEvery, Callback, RecordFrames, StepState
from featviz.errors import FeatvizError, RenderError
from featviz.hooks import Activations, capture
from featviz.models import INPUT, ModelAdapter, load_model, resolve_device
from featviz.param import FourierImage, MacoImage, Parameterization, PixelImage
from featviz.recipes import DEFAULT_RECIPE, Recipe, get_recipe
from featviz.record import make_record
from featviz.redirect import redirect_relus
from featviz.transforms import Compose, Resize, Transform
from featviz.units import parse_objective

ObjectiveLike = O.Objective | str | Sequence[O.Objective | str]
OptimizerLike = str | Callable[[list[nn.Parameter]], torch.optim.Optimizer]

_OPTIMIZERS: dict[str, Any] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
    "nadam": torch.optim.NAdam,
    "adamw": torch.optim.AdamW,
}
_FUSED = ("adam", "adamw")
_PENALTIES = {"l1": O.l1, "l2": O.l2, "tv": O.total_variation}
_NAN_CHECK_EVERY = 16


@dataclass
class RenderResult:
    """What a render returns: images in [0, 1] (CPU), the objective per step and image, the
    final score of every image (measured without transforms) and the run record."""

    images: torch.Tensor
    curve: torch.Tensor
    final: torch.Tensor
    record: dict[str, Any]
    frames: list[torch.Tensor] = field(default_factory=list)

    def save(self, path: str) -> list[str]:
        """Write PNG(s) and a JSON sidecar each; see :func:`featviz.io.records.save_result`."""
        from featviz.io.records import save_result

        return [str(p) for p in save_result(self, path)]


def to_objective(objective: ObjectiveLike, adapter: ModelAdapter) -> tuple[O.Objective, int]:
    """An objective and the batch size it asks for (a list renders one unit per image)."""
    if isinstance(objective, O.Objective):
        return objective, 1
    if isinstance(objective, str):
        return parse_objective(objective, adapter), 1
    if isinstance(objective, Sequence) and objective:
        objs = [to_objective(o, adapter)[0] for o in objective]
        return O.batched(objs), len(objs)
    raise FeatvizError(f"expected an Objective, a unit string or a list of them, got {objective!r}")


def make_param(recipe: Recipe, size: int, batch: int, generator: torch.Generator, init: Any = None) -> Parameterization:
    kwargs = dict(recipe.param_kwargs)
    if init is not None:
        kwargs["init"] = init
    if recipe.param == "pixel":
        return PixelImage(size, batch, generator=generator, **kwargs)
    if recipe.param == "fourier":
        return FourierImage(size, batch, generator=generator, **kwargs)
    if recipe.param == "maco":
        return MacoImage(size, batch, generator=generator, **kwargs)
    raise FeatvizError(f"unknown parameterization {recipe.param!r}: expected pixel, fourier or maco")


def _optimizer(
    optimizer: OptimizerLike, params: list[nn.Parameter], lr: float, options: dict[str, Any] | None = None
) -> torch.optim.Optimizer:
    if callable(optimizer):
        return optimizer(params)
    if optimizer not in _OPTIMIZERS:
        raise FeatvizError(f"unknown optimizer {optimizer!r}: expected one of {', '.join(_OPTIMIZERS)} or a callable")
    options = dict(options or {})
    if optimizer in _FUSED and all(p.dtype in (torch.float32, torch.float64) for p in params):
        # One kernel for the whole update instead of a handful of passes: ~3x cheaper on CPU.
        try:
            return _OPTIMIZERS[optimizer](params, lr=lr, fused=True, **options)
        except (RuntimeError, TypeError):  # a device without the fused kernel
            pass
    try:
        return _OPTIMIZERS[optimizer](params, lr=lr, **options)
    except TypeError as err:
        raise FeatvizError(f"optimizer {optimizer!r} does not take the options {options}: {err}") from err


def _scores(objective: O.Objective, acts: Activations, image: torch.Tensor, copies: int) -> torch.Tensor:
    """Objective per original image, averaged over the ``copies`` crops of each."""
    b = image.shape[0]
    total = None
    for k in range(copies):
        chunk = Activations(acts.adapter, {n: a[k * b : (k + 1) * b] for n, a in acts.items()})
        chunk[INPUT] = image
        s = objective(chunk).expand(b)
        total = s if total is None else total + s
    assert total is not None
    return total / copies


def render(
    model: str | nn.Module | ModelAdapter,
    objective: ObjectiveLike,
    *,
    recipe: str | Recipe = DEFAULT_RECIPE,
    param: Parameterization | None = None,
    transforms: Transform | None = None,
    optimizer: OptimizerLike | None = None,
    lr: float | None = None,
    steps: int | None = None,
    size: int | None = None,
    redirect_relu: int | None = None,
    batch: int | None = None,
    init: Any = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    callbacks: Sequence[Callback] = (),
    record_every: int = 0,
    progress: bool = True,
) -> RenderResult:
    """Optimize images to maximize ``objective`` and return them with their record.

    ``objective`` is an :class:`~featviz.objectives.Objective`, a unit string such as
    ``"blocks.5:51"`` or ``"logits:hen"``, or a list of those (one image per unit, one
    forward pass per step for all). Explicit arguments override the recipe's values.
    ``record_every=k`` keeps the images every k steps (and the last) in ``result.frames``.
    ``redirect_relu=n`` redirects ReLU gradients for the first n steps
    (:mod:`featviz.redirect`), so that a unit that starts dead still gets a gradient.

    >>> result = render("efficientnet_lite0", "blocks.1:3", steps=4, size=64, progress=False)
    >>> result.images.shape, result.record["seed"]
    (torch.Size([1, 3, 64, 64]), 0)
    """
    start = time.perf_counter()
    adapter = load_model(model)
    dev = _device(model, adapter, device)
    rec = get_recipe(recipe)
    overrides = {"lr": lr, "steps": steps, "size": size, "redirect_relu": redirect_relu}
    rec = rec.replace(**{k: v for k, v in overrides.items() if v is not None})
    obj, units = to_objective(objective, adapter)
    batch = batch or units
    obj = obj - sum(w * _PENALTIES[name]() for w, name in rec.penalties) if rec.penalties else obj
    img_size = rec.size or adapter.input_size
    adapter.check_size(img_size, img_size)
    if rec.steps < 1:
        raise FeatvizError(f"steps must be at least 1, got {rec.steps}")

    gen = torch.Generator().manual_seed(seed)
    param = (param or make_param(rec, img_size, batch, gen, init)).to(dev)
    tfm = transforms or rec.build_transforms()
    if adapter.fixed_size:  # the model takes one size only: resample whatever the transforms made
        tfm = Compose([tfm, Resize(adapter.input_size)])
    tfm = tfm.to(dev)
    opt = _optimizer(optimizer or rec.optimizer, list(param.parameters()), rec.lr, rec.optimizer_kwargs)
    # Blur acts on the pixels before frames are taken, so a frame shows what the next step sees.
    cbs = list(callbacks) + ([BlurEvery(rec.blur_every, rec.blur_sigma)] if rec.blur_every else [])
    recorder = RecordFrames(record_every) if record_every > 0 else None
    cbs += [recorder] if recorder else []
    sched = _schedule(opt, rec)
    curve = _loop(adapter, obj, param, tfm, opt, rec.steps, gen, cbs, progress, sched, rec.redirect_relu)

    with torch.no_grad():
        images = param().detach()
        final = _final_scores(adapter, obj, images)
    record = make_record(
        adapter,
        objective,
        obj,
        rec,
        seed=seed,
        batch=batch,
        size=img_size,
        device=dev,
        curve=curve,
        final=final,
        seconds=time.perf_counter() - start,
    )
    frames = recorder.frames if recorder else []
    return RenderResult(images.float().cpu(), curve, final, record, frames)


_SCHEDULES = ("constant", "cosine")


def _schedule(opt: torch.optim.Optimizer, rec: Recipe) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule a recipe names: ``cosine`` anneals from ``lr`` to
    ``lr_final * lr`` over the run, which settles the fine detail in the last steps."""
    if rec.lr_schedule not in _SCHEDULES:
        raise FeatvizError(f"unknown lr_schedule {rec.lr_schedule!r}: expected one of {', '.join(_SCHEDULES)}")
    if rec.lr_schedule == "constant":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=rec.steps, eta_min=rec.lr * rec.lr_final)


def _device(model: Any, adapter: ModelAdapter, device: str | torch.device) -> torch.device:
    """A model loaded by name goes to ``device``; a caller's module stays where it is under
    "auto" (moving it would change the caller's model) and moves only when asked."""
    if str(device) == "auto" and not isinstance(model, str):
        return adapter.device
    dev = resolve_device(device)
    adapter.to(dev)
    return dev


def _loop(
    adapter: ModelAdapter,
    obj: O.Objective,
    param: Parameterization,
    tfm: Transform,
    opt: torch.optim.Optimizer,
    steps: int,
    gen: torch.Generator,
    callbacks: list[Callback],
    progress: bool,
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
    redirect_steps: int = 0,
) -> torch.Tensor:
    from tqdm.auto import tqdm

    copies = tfm.copies
    history: list[torch.Tensor] = []
    bar = tqdm(total=steps, disable=not progress, desc=adapter.name, leave=False)
    with capture(adapter, obj.layers) as cap, ExitStack() as stack:
        redirect = stack.enter_context(redirect_relus(adapter.module)) if redirect_steps > 0 else None
        for step in range(steps):
            if redirect is not None and step == redirect_steps:
                redirect.remove()
            opt.zero_grad(set_to_none=True)
            image = param()
            x = _tile(image, copies)
            scores = _scores(obj, cap(tfm(x, gen)), image, copies)
            (-scores.sum()).backward()
            opt.step()
            if sched is not None:
                sched.step()
            param.constrain_()
            history.append(scores.detach())
            for cb in callbacks:
                cb(StepState(step, steps, param, history[-1]))
            if (step + 1) % _NAN_CHECK_EVERY == 0 or step == steps - 1:
                _check_finite(history, step)
                bar.set_postfix(score=f"{history[-1].mean().item():.3f}")
                bar.update(step + 1 - bar.n)
    bar.close()
    return torch.stack(history).float().cpu()


def _tile(image: torch.Tensor, copies: int) -> torch.Tensor:
    """The batch ``copies`` times over, for transforms that make several views of each image;
    a single image is tiled as a view (the transforms read it, nothing writes it)."""
    if copies == 1:
        return image
    return image.expand(copies, -1, -1, -1) if len(image) == 1 else image.repeat(copies, 1, 1, 1)


def _check_finite(history: list[torch.Tensor], step: int) -> None:
    recent = torch.stack(history[-_NAN_CHECK_EVERY:])
    if not torch.isfinite(recent).all():
        raise RenderError(
            f"the objective became NaN or infinite by step {step + 1}; "
            "lower the learning rate or check the objective's arithmetic (0 / 0?)"
        )


def _final_scores(adapter: ModelAdapter, obj: O.Objective, images: torch.Tensor) -> torch.Tensor:
    """The objective on the final images as they are (no transforms)."""
    x = Resize(adapter.input_size)(images) if adapter.fixed_size else images
    with capture(adapter, obj.layers) as cap:
        return _scores(obj, cap(x), images, 1).float().cpu()

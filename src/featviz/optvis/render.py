"""The one optimization loop, and :func:`replay` of a run record."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from typing_extensions import Unpack

from featviz.errors import FeatvizError, RenderError
from featviz.models import INPUT, ModelAdapter, load_again
from featviz.models.hooks import Activations, capture
from featviz.models.speed import fast_inference
from featviz.optvis import objectives as O
from featviz.optvis.callbacks import Callback, RecordFrames, StepState
from featviz.optvis.param.images import digest
from featviz.optvis.recipes import DEFAULT_RECIPE, Recipe
from featviz.optvis.record import make_record, weights_fields
from featviz.optvis.redirect import redirect_relus
from featviz.optvis.spec import (
    CALLBACKS,
    ModelLike,
    ObjectiveLike,
    Overrides,
    Plan,
    RunSpec,
    build_param,
    check_overrides,
    objective_of,
    resolve,
)
from featviz.optvis.transforms import Resize

_NAN_CHECK_EVERY = 16


@dataclass
class RenderResult:
    """What a render returns: images in [0, 1] (CPU), the objective per step and image, the
    final score of every image (measured without transforms) and the run record.
    ``interrupted`` is true when Ctrl-C stopped the loop early: the images are those reached
    by then, and the record says so. Write it with :func:`featviz.save`."""

    images: torch.Tensor
    curve: torch.Tensor
    final: torch.Tensor
    record: dict[str, Any]
    frames: list[torch.Tensor] = field(default_factory=list)
    interrupted: bool = False

    def __repr__(self) -> str:
        b, _, h, w = self.images.shape
        scores = ", ".join(f"{s:.3f}" for s in self.final.tolist()[:4]) + (", ..." if b > 4 else "")
        state = ", interrupted" if self.interrupted else ""
        return f"RenderResult({b} image{'s' * (b > 1)} {h}x{w}, {len(self.curve)} steps, final [{scores}]{state})"

    def pick(self, index: int) -> RenderResult:
        """Image ``index`` of a batch as a result of its own; its record keeps the whole
        batch's run (what a replay needs for the same pixels) and says which image it is."""
        b = self.images.shape[0]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < b:
            raise FeatvizError(f"expected an image index from 0 to {b - 1}, got {index!r}")
        one = slice(index, index + 1)
        curve = self.curve[:, one] if self.curve.dim() == 2 else self.curve
        frames = [f[one] for f in self.frames]
        return RenderResult(
            self.images[one], curve, self.final[one], dict(self.record, index=index), frames, self.interrupted
        )


class RenderOptions(Overrides, total=False):
    """:class:`~featviz.optvis.spec.Overrides`, and how the loop reports: ``record_every``
    and ``progress``."""

    record_every: int | None
    progress: bool | None


def render(
    model: ModelLike,
    objective: ObjectiveLike,
    recipe: str | Recipe = DEFAULT_RECIPE,
    **overrides: Unpack[RenderOptions],
) -> RenderResult:
    """Optimize images to maximize ``objective`` and return them with their record.

    ``objective`` is an :class:`~featviz.optvis.objectives.Objective`, a unit string such as
    ``"blocks.5:51"`` or ``"logits:hen"``, a function of the activations
    (``lambda acts: acts["blocks.4"][:, 7].mean((1, 2))``), or a list of those (one image per
    unit, one forward pass per step for all). ``recipe`` is a name (``featviz recipes``) or a
    :class:`~featviz.optvis.recipes.Recipe`; ``overrides`` (:class:`~featviz.optvis.spec.Overrides`)
    replace any of its fields and take objects for its parts; the record says what ran
    (:mod:`featviz.optvis.spec`). ``transforms``
    takes a :class:`~featviz.optvis.transforms.Transform`, a list, or any module or function
    of an image batch; ``optimizer`` a name (featviz's, ``torch.NAME``, a registered one), a
    ``torch.optim`` class, a function of the parameters, or a torch optimizer built on
    ``param``'s tensors. Pieces registered with :func:`featviz.register` are recorded by name
    and replay. ``init`` is a photo to
    start from (a ``[3, H, W]`` tensor, a file or ``skimage:NAME``). ``record_every=k`` keeps
    the images every k steps (and the last) in ``result.frames``. ``redirect_relu=n``
    redirects ReLU gradients for the first n steps (:mod:`featviz.optvis.redirect`), so that
    a unit that starts dead still gets a gradient. Ctrl-C stops the loop and returns the
    images reached so far (``result.interrupted``).

    >>> result = render("efficientnet_lite0", "blocks.1:3", steps=4, size=64, progress=False)
    >>> result.images.shape, result.record["seed"], result.record["recipe"]["optimizer"]
    (torch.Size([1, 3, 64, 64]), 0, 'adam')
    """
    start = time.perf_counter()
    given = check_overrides(dict(overrides), tuple(RenderOptions.__annotations__))
    record_every, progress = given.pop("record_every", 0), given.pop("progress", True)
    plan = resolve(model, objective, recipe, **given)
    return run(plan, record_every=record_every, progress=progress, start=start)


def run(plan: Plan, *, record_every: int = 0, progress: bool = True, start: float | None = None) -> RenderResult:
    """Run a resolved plan through the loop and make its result and record."""
    start = time.perf_counter() if start is None else start
    recorder = RecordFrames(record_every) if record_every > 0 else None
    callbacks = plan.callbacks + ([recorder] if recorder else [])
    curve, interrupted = _loop(plan, callbacks, progress)
    with torch.no_grad():
        images = plan.param().detach()
    final = score_images(plan.adapter, plan.objective, images)
    spec = plan.spec
    fields = {
        **spec.to_dict(),
        "objective": repr(plan.objective),
        "param": plan.param.describe(),
        "steps": spec.recipe.steps,
        "steps_done": len(curve),
        "final_score": final.tolist(),
        "curve": curve.mean(1).tolist() if len(curve) else [],
        **weights_fields(plan.adapter),
    }
    status = "interrupted" if interrupted else "done"
    record = make_record("render", fields, seconds=time.perf_counter() - start, status=status)
    frames = recorder.frames if recorder else []
    return RenderResult(images.float().cpu(), curve, final, record, frames, interrupted)


def replay(
    record: dict[str, Any],
    *,
    model: ModelLike | None = None,
    objective: ObjectiveLike | None = None,
    **objects: Any,
) -> RenderResult:
    """Render again what a render's run record describes (the JSON written beside its image);
    :func:`featviz.replay` takes the records of every tool and hands a render's to this.

    On the machine that made it, the pixels are the same. Parts the record could only name
    (listed in its ``needs``: a model given as a module, a photo given as a tensor, a custom
    optimizer, transform, parameterization or callbacks) must be passed again as keyword
    arguments (``model=``, ``init=``, ``optimizer=``, ``transforms=``, ``param=``,
    ``callbacks=``); ``device=`` and ``progress=`` are passed through.

    >>> first = render("efficientnet_lite0", "blocks.1:3", steps=3, size=48, optimizer="sgd", progress=False)
    >>> again = replay(first.record, progress=False)
    >>> torch.equal(first.images, again.images), again.record["recipe"]["optimizer"]
    (True, 'sgd')
    """
    spec = RunSpec.from_record(record)
    allowed = {"init", "optimizer", "transforms", "param", "callbacks", "device", "progress", "record_every"}
    unknown = sorted(set(objects) - allowed)
    if unknown:
        raise FeatvizError(f"replay takes model, objective and {', '.join(sorted(allowed))}; got {unknown}")
    given = {**objects, **({"objective": objective} if objective is not None else {})}
    missing = [n for n in spec.needs if n not in given]
    if missing:
        raise FeatvizError(
            f"the record names {', '.join(missing)} passed as objects it cannot rebuild: pass "
            + ", ".join(f"{n}=..." for n in missing)
            + " to replay"
        )
    kwargs: dict[str, Any] = {k: v for k, v in objects.items() if k not in ("record_every",)}
    if "init" not in objects and spec.init is not None:
        kwargs["init"] = _replay_init(spec.init)
    if "param" not in objects and spec.param_seed is not None:
        kwargs["param"] = build_param(
            spec.recipe, spec.size, spec.batch, torch.Generator().manual_seed(spec.param_seed), kwargs.get("init")
        )
        kwargs.pop("init", None)
    if "callbacks" not in objects:
        kwargs["callbacks"] = [_replay_callback(d) for d in spec.callbacks]
    kwargs.setdefault("device", "cpu" if spec.device == "cpu" else "auto")
    if model is None:
        model = load_again(spec.model, spec.load) if spec.load else spec.model
    plan = resolve(
        model,
        objective if objective is not None else objective_of(spec),
        recipe=spec.recipe,
        seed=spec.seed,
        batch=spec.batch,
        **{k: v for k, v in kwargs.items() if k != "progress"},
    )
    return run(plan, record_every=objects.get("record_every", 0), progress=kwargs.get("progress", True))


def _replay_callback(described: Any) -> Any:
    """A callback of a record, built again; a description that is not one of featviz's is refused."""
    kind = described.get("class") if isinstance(described, dict) else None
    if kind not in CALLBACKS:
        raise FeatvizError(f"the record's callbacks hold {described!r}: expected one of {', '.join(CALLBACKS)}")
    try:
        return CALLBACKS[kind](**{k: v for k, v in described.items() if k != "class"})
    except TypeError as err:
        raise FeatvizError(f"the record's callback {described!r} cannot be built again: {err}") from None


def _replay_init(init: dict[str, Any]) -> torch.Tensor:
    from featviz.data.photos import load_image

    if not isinstance(init.get("source"), str):
        raise FeatvizError(f"the record's run.init is {init!r}: expected an object with its photo's source")
    photo = load_image(init["source"])
    if digest(photo) != init.get("digest"):
        raise FeatvizError(f"the photo {init['source']} is not the one the record started from (its digest differs)")
    return photo


def _loop(plan: Plan, callbacks: list[Callback], progress: bool) -> tuple[torch.Tensor, bool]:
    """The optimization steps; returns the objective per step and image, and whether Ctrl-C
    stopped it (the images then are those of the last finished step)."""
    from tqdm.auto import tqdm

    adapter, obj, param, tfm, opt = plan.adapter, plan.objective, plan.param, plan.transforms, plan.optimizer
    steps, redirect_steps = plan.spec.recipe.steps, plan.spec.recipe.redirect_relu
    copies = tfm.copies
    history: list[torch.Tensor] = []
    interrupted = False
    bar = tqdm(total=steps, disable=not progress, desc=adapter.name, leave=False)
    try:
        with fast_inference(adapter, keep=obj.layers), capture(adapter, obj.layers) as cap, ExitStack() as stack:
            stop = stack.enter_context(_ctrl_c_stops_after_the_step())
            redirect = stack.enter_context(redirect_relus(adapter.module)) if redirect_steps > 0 else None
            for step in range(steps):
                if stop.is_set():
                    raise KeyboardInterrupt
                if redirect is not None and step == redirect_steps:
                    redirect.remove()
                opt.zero_grad(set_to_none=True)
                image = param()
                x = _tile(image, copies)
                scores = _scores(obj, cap(tfm(x, plan.generator)), image, copies)
                (-scores.sum()).backward()
                opt.step()
                if plan.schedule is not None:
                    plan.schedule.step()
                param.constrain_()
                history.append(scores.detach())
                for cb in callbacks:
                    cb(StepState(step, steps, param, history[-1]))
                if (step + 1) % _NAN_CHECK_EVERY == 0 or step == steps - 1:
                    _check_finite(history, step)
                    # The score the loop sees: through the transforms (crops, jitter...), not the final one.
                    bar.set_postfix_str(f"score on transformed copies {history[-1].mean().item():.3f}")
                    bar.update(step + 1 - bar.n)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()  # before any message, so that it prints on its own line
    if not history:
        return torch.zeros(0, param.batch), interrupted
    return torch.stack(history).float().cpu(), interrupted


@contextmanager
def _ctrl_c_stops_after_the_step() -> Iterator[threading.Event]:
    """Ctrl-C (SIGINT) sets the event, which the loop checks before each step, so the render
    stops between steps with the images of the last one finished. A KeyboardInterrupt raised
    wherever the signal lands can be lost: Python swallows it when it lands in a finalizer
    (``__del__``, a weakref callback), and the render would go on. A second Ctrl-C raises at
    once, for a step that does not end. Only in the main thread, and only where SIGINT still
    has Python's default handler (a caller's own handler is left alone)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


@torch.no_grad()
def score_images(adapter: ModelAdapter, obj: O.Objective, images: torch.Tensor) -> torch.Tensor:
    """The objective on images as they are (no transforms), one score per image (CPU)."""
    x = Resize(adapter.input_size)(images) if adapter.fixed_size else images
    with capture(adapter, obj.layers) as cap:
        return _scores(obj, cap(x.to(adapter.device)), images.to(adapter.device), 1).float().cpu()

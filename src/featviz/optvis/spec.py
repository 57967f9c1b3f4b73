"""Resolve, then run: everything a render depends on becomes one value before the first step.

:func:`resolve` folds the recipe, every override and every object passed in (optimizer,
parameterization, transforms, init photo, callbacks) into a :class:`RunSpec` and builds the
objects the loop needs from it (a :class:`Plan`). The run record is written from the spec,
so it says what ran -- ``optimizer="sgd"`` with a ``PixelImage`` and an empty ``Compose``
is recorded as exactly that -- and :func:`featviz.replay` builds the same run again from it.
Parts passed as objects that a record cannot rebuild (a custom optimizer factory, a custom
transform class, a photo given as a tensor) are named in ``RunSpec.needs``; a replay asks
for them instead of guessing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypedDict

import torch
from torch import nn
from typing_extensions import Unpack

from featviz.errors import FeatvizError, suggestion
from featviz.models import ModelAdapter, load_model, place
from featviz.optvis import objectives as O
from featviz.optvis.callbacks import BlurEvery, Callback, RecordFrames
from featviz.optvis.optim import OPTIMIZERS, build, cosine
from featviz.optvis.param import FourierImage, MacoImage, Parameterization, PixelImage
from featviz.optvis.param.images import digest
from featviz.optvis.param.spectrum import natural_spectrum, spectrum_of
from featviz.optvis.recipes import DEFAULT_RECIPE, Recipe, get_recipe
from featviz.optvis.record import INTEGER, LIST, MAPPING, TEXT, check_fields
from featviz.optvis.transforms import Compose, FunctionTransform, Resize, Transform
from featviz.optvis.units import names_concepts, objective_from_repr, parse_objective

ObjectiveLike = O.Objective | str | Callable[..., torch.Tensor] | Sequence[O.Objective | str]
TransformLike = Transform | Callable[[torch.Tensor], torch.Tensor] | Sequence[Any]
OptimizerLike = str | Callable[[list[nn.Parameter]], Any]
ModelLike = str | nn.Module | ModelAdapter


PENALTIES = {"l1": O.l1, "l2": O.l2, "tv": O.total_variation}
SCHEDULES = ("constant", "cosine")
PARAMS: dict[str, Callable[..., Parameterization]] = {"pixel": PixelImage, "fourier": FourierImage, "maco": MacoImage}
CALLBACKS: dict[str, type] = {"BlurEvery": BlurEvery, "RecordFrames": RecordFrames}
CUSTOM = "custom:"  # prefix of a recipe field that names an object the record cannot rebuild


@dataclass(frozen=True)
class RunSpec:
    """What a render runs, resolved: every field is JSON-ready and goes into the record.

    ``recipe`` has the overrides and the passed objects folded in (its ``optimizer``,
    ``param``, ``transforms``, ``lr``, ``steps`` and ``size`` are what ran). ``unit`` is the
    objective as asked (unit syntax, or an objective's ``repr`` when ``unit_form`` is
    ``"repr"``; a concept unit, ``blocks.6/concepts:3``, is kept as its direction's
    ``repr``, values and all). ``param_seed`` is the seed of a parameterization the caller built (``None``:
    the run built it from ``seed``). ``needs`` names the parts a replay must be given again.
    """

    model: str
    unit: str | list[str]
    unit_form: str
    recipe: Recipe
    seed: int
    batch: int
    size: tuple[int, int]
    device: str
    init: dict[str, Any] | None = None
    param_seed: int | None = None
    callbacks: tuple[dict[str, Any], ...] = ()
    needs: tuple[str, ...] = ()
    load: dict[str, Any] | None = None  # how the model was loaded by name (weights, labels), if not by name alone

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.update(recipe=self.recipe.to_dict(), size=list(self.size), callbacks=list(self.callbacks))
        out["needs"] = list(self.needs)
        if self.load is None:
            del out["load"]
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunSpec:
        """The spec of a render's run record (the JSON written beside its image)."""
        if record.get("kind", "render") != "render":
            raise FeatvizError(f"expected the record of a render, got one of kind {record.get('kind')!r}")
        check_fields(record, _RECORD_FIELDS, "run", optional=_OPTIONAL)
        size = record["size"]
        if isinstance(size, list) and not (len(size) == 2 and all(isinstance(s, int) for s in size)):
            raise FeatvizError(f"the record's run.size is {size!r}: expected an integer or [height, width]")
        index = record.get("index")
        if index is not None and not (type(index) is int and 0 <= index < record["batch"]):
            raise FeatvizError(
                f"the record's index is {index!r}: expected one of its batch's images, 0 to {record['batch'] - 1}"
            )
        return cls(
            model=record["model"],
            unit=record["unit"],
            unit_form=record.get("unit_form", "unit"),
            recipe=Recipe.from_dict(record["recipe"]),
            seed=int(record["seed"]),
            batch=int(record["batch"]),
            size=(int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1])),
            device=str(record.get("device", "cpu")),
            init=record.get("init"),
            param_seed=record.get("param_seed"),
            callbacks=tuple(record.get("callbacks", ())),
            needs=tuple(record.get("needs", ())),
            load=record.get("load"),
        )


_RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "model": (TEXT,),
    "unit": (TEXT, LIST),
    "unit_form": (TEXT,),
    "recipe": (MAPPING,),
    "seed": (INTEGER,),
    "batch": (INTEGER,),
    "size": (INTEGER, LIST),
    "device": (TEXT,),
    "init": (MAPPING, "null"),
    "param_seed": (INTEGER, "null"),
    "callbacks": (LIST,),
    "needs": (LIST,),
    "load": (MAPPING,),
}
_OPTIONAL = ("unit_form", "device", "init", "param_seed", "callbacks", "needs", "load")


@dataclass
class Plan:
    """A resolved spec and the objects built from it, ready for the loop."""

    spec: RunSpec
    adapter: ModelAdapter
    objective: O.Objective  # the unit's objective with the recipe's penalties
    param: Parameterization
    transforms: Transform
    optimizer: Any  # a torch.optim.Optimizer
    schedule: Any  # a torch.optim.lr_scheduler.LRScheduler, or None
    callbacks: list[Callback]
    generator: torch.Generator
    device: torch.device


class Overrides(TypedDict, total=False):
    """What :func:`resolve` (and :func:`featviz.render`) take besides the model, the objective
    and the recipe. Recipe fields (``steps``, ``lr``, ``size``, ``lr_schedule``, ``penalties``...)
    replace the recipe's; ``param``, ``transforms`` and ``optimizer`` take a name or an object;
    the rest say how to run (``batch``, ``init``, ``seed``, ``device``, ``callbacks``).
    ``None`` is the same as not given."""

    param: Parameterization | str | None
    param_kwargs: dict[str, Any] | None
    transforms: TransformLike | None
    optimizer: OptimizerLike | None
    optimizer_kwargs: dict[str, Any] | None
    lr: float | None
    lr_schedule: str | None
    lr_final: float | None
    steps: int | None
    size: int | Sequence[int] | None
    penalties: Sequence[tuple[float, str]] | None
    blur_every: int | None
    blur_sigma: float | None
    redirect_relu: int | None
    batch: int | None
    init: torch.Tensor | str | None
    seed: int | None
    device: str | torch.device | None
    callbacks: Sequence[Callback] | None


def check_overrides(given: dict[str, Any], known: Sequence[str]) -> dict[str, Any]:
    """``given`` without the ``None`` values (not given); a name not in ``known`` is refused
    with the nearest names."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise FeatvizError(
            f"render takes no {', '.join(unknown)}: it takes {', '.join(sorted(known))}."
            + suggestion(unknown[0], known)
        )
    return {k: v for k, v in given.items() if v is not None}


def resolve(
    model: ModelLike, objective: ObjectiveLike, recipe: str | Recipe = DEFAULT_RECIPE, **overrides: Unpack[Overrides]
) -> Plan:
    """Check everything, fold it into one :class:`RunSpec` and build the run's objects."""
    given = check_overrides(dict(overrides), tuple(Overrides.__annotations__))
    param = given.pop("param", None)
    transforms = given.pop("transforms", None)
    optimizer = given.pop("optimizer", None)
    size, batch, init = given.pop("size", None), given.pop("batch", None), given.pop("init", None)
    seed, device = given.pop("seed", 0), given.pop("device", "auto")
    callbacks: Sequence[Callback] = given.pop("callbacks", ())
    if isinstance(param, str):
        given["param"], param = param, None
    if "penalties" in given:
        given["penalties"] = tuple((float(w), str(n)) for w, n in given["penalties"])
    adapter = load_model(model)
    rec = get_recipe(recipe).replace(**given)
    check_recipe(rec)
    obj, units = to_objective(objective, adapter)
    unit, unit_form = describe_unit(objective)
    if unit_form == "unit" and names_concepts(unit):  # kept as the directions, so a replay needs no dictionary
        asked = obj if isinstance(objective, str) else [to_objective(o, adapter)[0] for o in unit]
        unit, unit_form = describe_unit(asked)
    needs: list[str] = ["objective"] if unit_form == "function" else []
    if param is not None:
        rec, batch, shape = _fold_param(rec, param, batch, size, needs)
    else:
        shape = _size(size if size is not None else rec.size, adapter.input_size)
        batch = batch or units
    if batch < 1:
        raise FeatvizError(f"batch must be at least 1, got {batch}")
    adapter.check_size(*shape)
    rec = rec.replace(size=shape[0] if shape[0] == shape[1] else shape)
    photo, init_desc = _init(init, needs)
    if transforms is None:
        rec = _fit_crops(rec, adapter, obj)
    rec, tfm = _fold_transforms(rec, transforms, needs)
    dev = place(adapter, model, device)
    check_memory(adapter, tfm, shape, batch, dev)
    named = _optimizer_name(optimizer, param) if optimizer is not None and not isinstance(optimizer, str) else None
    if named is not None:  # a torch.optim or registered class, or a torch optimizer of the param's tensors
        rec = rec.replace(**named)
    elif optimizer is not None and not isinstance(optimizer, str):
        rec = rec.replace(optimizer=CUSTOM + getattr(optimizer, "__qualname__", type(optimizer).__name__))
        needs.append("optimizer")
    elif optimizer is not None:
        rec = rec.replace(optimizer=optimizer)
        check_recipe(rec)
    cbs = list(callbacks)
    described = tuple(describe_callback(cb) for cb in cbs)
    if any(d["class"] not in CALLBACKS for d in described):
        needs.append("callbacks")
    spec = RunSpec(
        model=adapter.name,
        unit=unit,
        unit_form=unit_form,
        recipe=rec,
        seed=int(seed),
        batch=int(batch),
        size=shape,
        device="",
        init=init_desc,
        param_seed=param.seed if param is not None else None,
        callbacks=described,
        needs=tuple(needs),
        load=adapter.source or None,
    )
    spec = dataclasses.replace(spec, device=str(dev), recipe=_renamed(rec, get_recipe(recipe)))
    return _build(spec, adapter, obj, param, tfm, optimizer, photo, cbs, dev)


def _build(
    spec: RunSpec,
    adapter: ModelAdapter,
    obj: O.Objective,
    param: Parameterization | None,
    tfm: Transform,
    optimizer: OptimizerLike | None,
    photo: torch.Tensor | None,
    callbacks: list[Callback],
    dev: torch.device,
) -> Plan:
    rec = spec.recipe
    gen = torch.Generator().manual_seed(spec.seed)
    if rec.penalties:
        obj = obj - sum(w * PENALTIES[name]() for w, name in rec.penalties)
    param = (param or build_param(rec, spec.size, spec.batch, gen, photo)).to(dev)
    if adapter.fixed_size:  # the model takes one size only: resample whatever the transforms made
        tfm = Compose([tfm, Resize(adapter.input_size)])
    tfm = tfm.to(dev)
    factory = optimizer if optimizer is not None and not isinstance(optimizer, str) else rec.optimizer
    opt = make_optimizer(factory, list(param.parameters()), rec.lr, rec.optimizer_kwargs)
    # Blur acts on the pixels before frames are taken, so a frame shows what the next step sees.
    cbs = callbacks + ([BlurEvery(rec.blur_every, rec.blur_sigma)] if rec.blur_every else [])
    return Plan(spec, adapter, obj, param, tfm, opt, make_schedule(opt, rec), cbs, gen, dev)


def to_objective(objective: ObjectiveLike, adapter: ModelAdapter) -> tuple[O.Objective, int]:
    """An objective and the batch size it asks for (a list renders one unit per image)."""
    if isinstance(objective, O.Objective):
        return objective, 1
    if isinstance(objective, str):
        return parse_objective(objective, adapter), 1
    if isinstance(objective, Sequence) and objective:
        objs = [to_objective(o, adapter)[0] for o in objective]
        return O.batched(objs), len(objs)
    if callable(objective):
        return O.from_function(objective, adapter), 1
    raise FeatvizError(
        f"expected an Objective, a unit string, a function of the activations or a list of them, got {objective!r}"
    )


def describe_unit(objective: ObjectiveLike) -> tuple[str | list[str], str]:
    """The objective as the record keeps it, and in which form: ``"unit"`` (unit syntax, a
    string or a list of strings) or ``"repr"`` (objectives' ``repr``, which
    :func:`~featviz.optvis.units.objective_from_repr` reads back).

    >>> describe_unit(["blocks.1:0", O.channel("blocks.1", 1)])
    (["channel('blocks.1', 0)", "channel('blocks.1', 1)"], 'repr')
    """
    if isinstance(objective, str):
        return objective, "unit"
    if isinstance(objective, O.Objective):
        return repr(objective), "repr"
    if callable(objective) and not isinstance(objective, Sequence):
        return f"<function {getattr(objective, '__qualname__', type(objective).__name__)}>", "function"
    items = list(objective)
    if all(isinstance(o, str) for o in items):
        return [str(o) for o in items], "unit"
    return [repr(o if isinstance(o, O.Objective) else parse_objective(str(o))) for o in items], "repr"


def objective_of(spec: RunSpec) -> ObjectiveLike:
    """The objective a spec names, ready for :func:`resolve`."""
    if spec.unit_form == "unit":
        return spec.unit
    if spec.unit_form == "function":
        raise FeatvizError(f"the record's objective was the function {spec.unit}: pass it again (objective=...)")
    if isinstance(spec.unit, list):
        return [objective_from_repr(u) for u in spec.unit]
    return objective_from_repr(spec.unit)


def describe_callback(cb: Any) -> dict[str, Any]:
    """A callback's class and settings (its dataclass fields, recorded frames left out)."""
    out: dict[str, Any] = {"class": type(cb).__name__}
    if dataclasses.is_dataclass(cb):
        for f in dataclasses.fields(cb):
            value = getattr(cb, f.name)
            if isinstance(value, (int, float, str, bool)) or value is None:
                out[f.name] = value
    return out


def _renamed(rec: Recipe, base: Recipe) -> Recipe:
    """The resolved recipe, its description naming what differs from the recipe it started as."""
    changed = [
        f.name
        for f in dataclasses.fields(rec)
        if f.name not in ("name", "description", "size") and getattr(rec, f.name) != getattr(base, f.name)
    ]
    if not changed or rec.description.startswith(f"{base.name} with "):
        return rec
    return rec.replace(description=f"{base.name} with {', '.join(changed)} changed")


def check_memory(
    adapter: ModelAdapter, transforms: Transform, shape: tuple[int, int], batch: int, device: torch.device
) -> None:
    """Refuse a render whose estimated memory exceeds what ``device`` has free, naming the
    estimate and the largest square size that fits (:mod:`featviz.models.memory`)."""
    from featviz.models.memory import available_bytes, gib, render_bytes

    def need(h: int, w: int) -> float:
        model_input = (adapter.input_size,) * 2 if adapter.fixed_size else transforms.output_size(h, w)
        return render_bytes(adapter, (h, w), model_input, batch, transforms.copies)

    have = available_bytes(device)
    if need(*shape) <= 0.9 * have:
        return
    lo, hi = adapter.min_size - 1, max(shape)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid, mid) <= 0.9 * have else (lo, mid - 1)
    fits = f"the largest size that fits is about {lo} px" if lo >= adapter.min_size else "no size fits"
    images = f"{batch} image{'s' * (batch > 1)}"
    raise FeatvizError(
        f"a {shape[0]}x{shape[1]} render of {images} needs about {gib(need(*shape))} (estimated), more than "
        f"the {gib(have)} free on {device}: {fits}"
    )


def check_recipe(rec: Recipe) -> None:
    """Refuse a recipe that cannot run (no steps, a learning rate not above 0, unknown parts)."""
    if rec.steps < 1:
        raise FeatvizError(f"steps must be at least 1, got {rec.steps}")
    if not rec.lr > 0:
        raise FeatvizError(f"the learning rate must be positive, got {rec.lr}")
    if not rec.optimizer.startswith(CUSTOM) and rec.optimizer not in OPTIMIZERS and not _torch_optimizer(rec.optimizer):
        raise FeatvizError(
            f"unknown optimizer {rec.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}, torch.NAME (a "
            "torch.optim class), a registered name or a callable"
        )
    if rec.lr_schedule not in SCHEDULES:
        raise FeatvizError(f"unknown lr_schedule {rec.lr_schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if not rec.param.startswith(CUSTOM) and rec.param not in PARAMS:
        raise FeatvizError(f"unknown parameterization {rec.param!r}: expected one of {', '.join(PARAMS)}")
    bad = [name for _, name in rec.penalties if name not in PENALTIES]
    if bad:
        raise FeatvizError(f"unknown penalties {bad}: expected some of {', '.join(PENALTIES)}")


def _size(size: Any, default: int) -> tuple[int, int]:
    if size is None:
        return default, default
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _fold_param(
    rec: Recipe, param: Parameterization, batch: int | None, size: Any, needs: list[str]
) -> tuple[Recipe, int, tuple[int, int]]:
    """The recipe with a caller's parameterization written into it."""
    if not isinstance(param, Parameterization):
        raise FeatvizError(f"param must be a featviz Parameterization, got {type(param).__name__}")
    shape = (param.height, param.width)
    if size is not None and _size(size, 0) != shape:
        raise FeatvizError(f"size {size} disagrees with the parameterization's {shape[0]}x{shape[1]}: give one")
    if batch is not None and batch != param.batch:
        raise FeatvizError(f"batch {batch} disagrees with the parameterization's batch of {param.batch}")
    kind = next((k for k, cls in PARAMS.items() if type(param) is cls), None)
    settings = {k: v for k, v in param.settings.items() if not (k == "init" and isinstance(v, dict))}
    if kind is None:
        needs.append("param")
    elif param.seed is None or isinstance(param.settings.get("init"), dict):
        needs.append("param")  # its start came from a used generator or a photo tensor
    if kind == "maco":
        settings["spectrum"] = None if settings.get("spectrum") == digest(shipped_spectrum(*shape)) else CUSTOM
        if settings["spectrum"] is not None:
            needs.append("param")
    rec = rec.replace(param=kind or CUSTOM + type(param).__name__, param_kwargs=settings)
    return rec, param.batch, shape


def _fit_crops(rec: Recipe, adapter: ModelAdapter, obj: O.Objective) -> Recipe:
    """Resolve a crops transform's ``shallow_k``: its number of crops for an objective whose
    every layer keeps at least a quarter of the input's resolution (stride 4 or less, a
    small receptive field), else ``k``; the recipe recorded says which ran."""
    from featviz.models import INPUT, LOGITS
    from featviz.models.layers import output_shape

    if not any(name == "crops" and kw.get("shallow_k") for name, kw in rec.transforms):
        return rec
    probe = 64
    layers = [layer for layer in dict.fromkeys(obj.layers) if layer != INPUT]
    shallow = bool(layers) and LOGITS not in layers  # a class needs no probe: it is as deep as it gets
    if shallow:
        shapes = [output_shape(adapter, layer, probe) for layer in layers]
        shallow = all(len(s) == 3 and s[-1] * 4 >= probe for s in shapes)
    fitted = []
    for name, kw in rec.transforms:
        if name == "crops" and kw.get("shallow_k"):
            kw = {k: v for k, v in kw.items() if k != "shallow_k"} | ({"k": kw["shallow_k"]} if shallow else {})
        fitted.append((name, kw))
    return rec.replace(transforms=tuple(fitted))


def _fold_transforms(rec: Recipe, transforms: TransformLike | None, needs: list[str]) -> tuple[Recipe, Transform]:
    if transforms is None:
        return rec, rec.build_transforms()
    transforms = as_transform(transforms)
    try:
        specs = tuple(transforms.specs())
    except FeatvizError:
        needs.append("transforms")
        return rec.replace(transforms=((CUSTOM + "transforms", {"repr": repr(transforms)}),)), transforms
    return rec.replace(transforms=specs), transforms


def as_transform(given: Any) -> Transform:
    """A featviz :class:`Transform` of what a caller passes as ``transforms=``: a Transform,
    a list of transforms (applied in order), or any ``nn.Module`` or function of an image
    batch (``[B, 3, H, W]`` in, images out; random ones draw from torch's global generator,
    so a seed reproduces them only when set before the render)."""
    if isinstance(given, Transform):
        return given
    if isinstance(given, (list, tuple)):
        return Compose([as_transform(t) for t in given])
    if callable(given):
        return FunctionTransform(given)
    raise FeatvizError(
        f"transforms must be a featviz Transform, an nn.Module, a function of an image batch or a list of them, "
        f"got {type(given).__name__}"
    )


def _init(init: torch.Tensor | str | None, needs: list[str]) -> tuple[torch.Tensor | None, dict[str, Any] | None]:
    """The photo to start from and how the record describes it."""
    if init is None:
        return None, None
    if isinstance(init, str):
        from featviz.data.photos import load_image

        photo = load_image(init)
        return photo, {"source": init, "digest": digest(photo)}
    if not isinstance(init, torch.Tensor):
        raise FeatvizError(f"init must be a photo (a [3, H, W] tensor, a file or skimage:NAME), got {init!r}")
    needs.append("init")
    return init, {"photo": list(init.shape), "digest": digest(init)}


def build_param(
    rec: Recipe, size: tuple[int, int], batch: int, generator: torch.Generator, init: torch.Tensor | None = None
) -> Parameterization:
    """The recipe's parameterization, its random start drawn from ``generator``."""
    kwargs = dict(rec.param_kwargs)
    if init is not None:
        kwargs["init"] = init
    if rec.param not in PARAMS:
        raise FeatvizError(f"the parameterization {rec.param!r} was passed as an object: pass it again (param=...)")
    if rec.param == "maco":
        folder = kwargs.pop("spectrum", None)
        if folder == CUSTOM:
            raise FeatvizError("this MACO spectrum was passed as a tensor: pass the parameterization again (param=...)")
        kwargs["spectrum"] = shipped_spectrum(*size) if folder is None else folder_spectrum(str(folder), *size)
    try:
        return PARAMS[rec.param](size, batch, generator=generator, **kwargs)
    except TypeError as err:
        raise FeatvizError(f"parameterization {rec.param!r} does not take {sorted(kwargs)}: {err}") from None


@lru_cache(maxsize=8)
def _reference(folder: str | None) -> torch.Tensor:
    from featviz.data.photos import image_files, load_image, natural_images

    photos = list(natural_images().values()) if folder is None else [load_image(p) for p in image_files(folder)]
    return spectrum_of(photos, 256, 256)


def shipped_spectrum(height: int, width: int) -> torch.Tensor:
    """MACO's amplitude spectrum from the photos that ship with scikit-image and scikit-learn."""
    return natural_spectrum(height, width, _reference(None))


def folder_spectrum(folder: str, height: int, width: int) -> torch.Tensor:
    """MACO's amplitude spectrum from the images in ``folder``."""
    return natural_spectrum(height, width, _reference(folder))


def make_optimizer(
    optimizer: OptimizerLike, params: list[nn.Parameter], lr: float, options: dict[str, Any] | None = None
) -> Any:
    """The optimizer a recipe names (:mod:`featviz.optvis.optim`, ``torch.NAME`` for a
    ``torch.optim`` class, a registered one), what a callable builds, or a torch optimizer
    made by the caller for the parameterization's tensors."""
    import torch.optim

    given: Any = optimizer
    if isinstance(given, torch.optim.Optimizer):
        return given
    a_class = isinstance(given, type) and issubclass(given, torch.optim.Optimizer)
    if callable(given) and not a_class:
        return given(params)
    cls: Any = given if isinstance(given, type) else _torch_optimizer(given) or OPTIMIZERS[given]
    try:
        return build(cls, params, lr, dict(options or {}))
    except TypeError as err:
        raise FeatvizError(f"optimizer {optimizer!r} does not take {dict(options or {})}: {err}") from None


def _optimizer_name(optimizer: Any, param: Parameterization | None) -> dict[str, Any] | None:
    """The recipe fields that name ``optimizer`` so that a replay builds it again: a
    ``torch.optim`` class as ``torch.NAME``, a registered class by its name, and a torch
    optimizer made for ``param``'s tensors as its class with its learning rate and the
    options it was given; ``None`` for anything else (a function, an unregistered class)."""
    import inspect

    import torch.optim

    cls: Any = type(optimizer) if isinstance(optimizer, torch.optim.Optimizer) else optimizer
    name = next((k for k, v in OPTIMIZERS.items() if v is cls), None)
    if name is None and isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
        short = str(cls.__name__)
        name = f"torch.{short}" if getattr(torch.optim, short, None) is cls else None
    if name is None:
        return None
    if not isinstance(optimizer, torch.optim.Optimizer):
        return {"optimizer": name}
    mine = {id(p) for p in (param.parameters() if param is not None else ())}
    theirs = [p for group in optimizer.param_groups for p in group["params"]]
    if not theirs or any(id(p) not in mine for p in theirs) or len(optimizer.param_groups) != 1:
        raise FeatvizError(
            f"a {cls.__name__} instance must hold the tensors of the param= passed with it, in one group: pass "
            f"param= too, or the class (torch.optim.{cls.__name__}) or a function of the parameters"
        )
    group = optimizer.param_groups[0]
    defaults = {k: v.default for k, v in inspect.signature(cls.__init__).parameters.items()}
    options = {
        k: v
        for k, v in group.items()
        if k not in ("params", "lr", "initial_lr")
        and k in defaults
        and v != defaults[k]
        and isinstance(v, (int, float, bool))
    }
    return {"optimizer": name, "lr": float(group["lr"]), "optimizer_kwargs": options}


def _torch_optimizer(name: str) -> Any:
    """The ``torch.optim`` class ``torch.NAME`` names, else None."""
    import torch.optim

    prefix, _, attr = name.partition(".")
    found = getattr(torch.optim, attr, None) if prefix == "torch" else None
    return found if isinstance(found, type) and issubclass(found, torch.optim.Optimizer) else None


def make_schedule(opt: Any, rec: Recipe) -> Any:
    """The learning-rate schedule a recipe names: ``cosine`` anneals from ``lr`` to
    ``lr_final * lr`` over the run, which settles the fine detail in the last steps."""
    if rec.lr_schedule == "constant":
        return None
    return cosine(opt, rec.steps, rec.lr_final)

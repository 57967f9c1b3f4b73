"""One decorator registers a component by name, a user's as featviz's own.

A recipe, a run record and a replay name their parts: transforms (``("roll", {"pixels":
8})``), the parameterization (``"fourier"`` with its settings), the optimizer, the penalties,
the callbacks and, in an objective's ``repr``, its constructors (``channel('blocks.5', 51)``).
:func:`register` puts a component of one's own in the same tables, so that it is recorded by
name and arguments and a replay builds it again, provided the module that registers it is
imported first::

    @featviz.register("transform", "shift")
    class Shift(featviz.optvis.transforms.Transform):
        def __init__(self, pixels: int = 2) -> None:
            super().__init__()
            self.pixels = pixels

        def forward(self, images, generator=None):
            return images.roll(self.pixels, dims=-1)

    featviz.render(model, "blocks.4:7", transforms=Shift(3))  # recorded as ("shift", {"pixels": 3})

Kinds: ``transform`` (a :class:`~featviz.optvis.transforms.Transform` class), ``param`` (a
:class:`~featviz.optvis.param.Parameterization` class taking ``size``, ``batch`` and
``generator=``), ``objective`` (a function returning an
:class:`~featviz.optvis.objectives.Objective`: its result is named by the call, so it reads
back from a record), ``optimizer`` (a ``torch.optim.Optimizer`` class, or one of featviz's),
``penalty`` (a function returning an Objective on the image) and ``callback`` (a class). A
transform or parameterization class that does not say what builds it again (``settings``)
gets its constructor's arguments recorded.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from featviz.errors import FeatvizError

T = TypeVar("T")

KINDS = ("transform", "param", "objective", "optimizer", "penalty", "callback")


def tables() -> dict[str, dict[str, Any]]:
    """Every registry by kind: the tables recipes, records and replays read."""
    from featviz.optvis import spec, transforms, units
    from featviz.optvis.optim import OPTIMIZERS

    return {
        "transform": transforms.TRANSFORMS,
        "param": spec.PARAMS,
        "objective": units._CONSTRUCTORS,
        "optimizer": OPTIMIZERS,
        "penalty": spec.PENALTIES,
        "callback": spec.CALLBACKS,
    }


def register(kind: str, name: str | None = None, *, replace: bool = False) -> Callable[[T], T]:
    """Register a component under ``name`` (default: its ``__name__``); see the module's
    docstring. A name already taken by another component is refused unless ``replace``.

    >>> from featviz.optvis import objectives as O
    >>> @register("objective", "twice")
    ... def twice(layer, index):
    ...     return 2 * O.channel(layer, index)
    >>> twice("blocks.2", 3)
    twice('blocks.2', 3)
    >>> from featviz.optvis.units import objective_from_repr
    >>> objective_from_repr("twice('blocks.2', 3) - l2()")
    twice('blocks.2', 3) - l2()
    """
    if kind not in KINDS:
        raise FeatvizError(f"unknown kind of component {kind!r}: expected one of {', '.join(KINDS)}")

    def decorate(component: T) -> T:
        key = name or getattr(component, "__name__", None)
        if not isinstance(key, str) or not key.isidentifier():
            raise FeatvizError(f"a {kind} registers under a name that is an identifier, got {key!r}")
        table = tables()[kind]
        known = table.get(key)
        if known is not None and not replace and not _same(getattr(known, "__wrapped__", known), component):
            raise FeatvizError(f"the {kind} name {key!r} is taken by {known!r}: choose another or pass replace=True")
        built = _prepare(kind, key, component)
        table[key] = built
        return built  # type: ignore[no-any-return]

    return decorate


def _same(known: Any, component: Any) -> bool:
    """Whether ``component`` is ``known`` or its definition run again (a notebook cell or a
    module reloaded: the same module and qualified name), which replaces it."""
    return known is component or (
        getattr(known, "__module__", None) == getattr(component, "__module__", 0)
        and getattr(known, "__qualname__", None) == getattr(component, "__qualname__", 0)
    )


def _prepare(kind: str, key: str, component: Any) -> Any:
    """The component as its table keeps it: checked, named, its arguments recorded."""
    from torch.optim import Optimizer as TorchOptimizer

    from featviz.optvis.param import Parameterization
    from featviz.optvis.transforms import Transform

    if kind == "transform":
        _subclass(component, Transform, kind)
        component.name = key
        if "settings" not in _own(component, Transform):
            _keep_arguments(component, skip=())
        return component
    if kind == "param":
        _subclass(component, Parameterization, kind)
        _keep_arguments(component, skip=("size", "batch", "generator", "init"))
        return component
    if kind == "optimizer":
        if not (inspect.isclass(component) and issubclass(component, TorchOptimizer)):
            raise FeatvizError(f"an optimizer registers as a torch.optim.Optimizer class, got {component!r}")
        return component
    if kind == "objective":
        return _named_objective(key, component)
    if not callable(component):
        raise FeatvizError(f"a {kind} registers as a callable, got {component!r}")
    return component


def _subclass(component: Any, base: type, kind: str) -> None:
    if not (inspect.isclass(component) and issubclass(component, base)):
        raise FeatvizError(f"a {kind} registers as a subclass of {base.__qualname__}, got {component!r}")


def _own(cls: type, base: type) -> set[str]:
    """Names ``cls`` or a class between it and ``base`` defines."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is base:
            break
        names |= set(vars(klass))
    return names


def _keep_arguments(cls: Any, skip: tuple[str, ...]) -> None:
    """Wrap ``cls.__init__`` so an instance keeps the arguments it was built with: as a
    transform's ``settings()``, or a parameterization's ``settings`` (and its start's seed)
    when its own ``__init__`` left them empty."""
    from featviz.optvis.param import Parameterization
    from featviz.optvis.param.images import generator_seed

    init = vars(cls).get("__init__") or cls.__init__
    signature = inspect.signature(init)
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values()):
        raise FeatvizError(f"{cls.__name__} takes *args or **kwargs: a record cannot name its arguments")
    param = issubclass(cls, Parameterization)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        seed = generator_seed(bound.arguments.get("generator"))  # before the start draws from it
        values = {k: v for k, v in list(bound.arguments.items())[1:] if k not in skip}
        init(self, *args, **kwargs)
        if param and self.settings:  # the class says itself what builds it again
            return
        other = sorted(k for k, v in values.items() if not _plain(v))
        if other:
            raise FeatvizError(
                f"{cls.__name__}'s arguments {other} are not numbers, text or lists: a record cannot keep them"
            )
        if param:
            self.settings, self.seed = values, seed
        else:
            self._featviz_settings = values

    cls.__init__ = __init__
    if not param:
        cls.settings = lambda self: dict(self._featviz_settings)


def _plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return value is None or isinstance(value, (str, int, float, bool))


def _named_objective(key: str, make: Callable[..., Any]) -> Callable[..., Any]:
    """``make`` whose objectives are named by the call (``key(args)``), so that their
    ``repr`` reads back with :func:`~featviz.optvis.units.objective_from_repr`."""
    from featviz.optvis.objectives import Objective, _args

    if not callable(make):
        raise FeatvizError(f"an objective registers as a function returning an Objective, got {make!r}")

    @functools.wraps(make)
    def build(*args: Any, **kwargs: Any) -> Objective:
        made = make(*args, **kwargs)
        if not isinstance(made, Objective):
            raise FeatvizError(f"{key}(...) returned {type(made).__name__}: expected an Objective")
        bad = [a for a in (*args, *kwargs.values()) if not _plain(a)]
        if bad:
            raise FeatvizError(f"{key}(...) was given {bad[0]!r}: a record keeps numbers, text and lists only")
        return Objective(made._fn, made.layers, f"{key}({_args(*args, **kwargs)})")

    return build

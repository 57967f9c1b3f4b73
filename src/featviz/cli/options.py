"""What the commands share: their options, declared once, and the helpers that turn what was
parsed into library calls (loading a model, checking an output path, one-line messages).

An option decorator keeps the name, type, default and ``show_default`` a command has always
had; where commands describe an option differently, the help is a parameter.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from featviz.errors import FeatvizError
from featviz.models import DEFAULT_MODEL

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

#: The package whose warnings the command line shows, one line each.
_PACKAGE = str(Path(__file__).parent.parent)


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave: the rest keep the library's own defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _image_target(out: str | None, *default: str) -> Path:
    """Where an image goes: ``out`` (``.png`` added when it has no suffix) or a safe default
    name; checked for a known format and a writable folder."""
    from featviz.io.images import image_format
    from featviz.io.outputs import check_writable, default_name

    target = Path(out) if out else Path(default_name(*default))
    if target.is_dir():
        raise FeatvizError(f"--out {out} is a folder: expected an image file name, e.g. {target / 'render.png'}")
    target = target if target.suffix else target.with_name(target.name + ".png")
    image_format(target)
    return check_writable(target)


def _say(message: str) -> None:
    """A message on its own line on stderr (after any progress bar)."""
    click.echo(message, err=True)


def _stem(image: str) -> str:
    """A photo's name for default output names: ``skimage:chelsea`` -> ``chelsea``."""
    return image.split(":", 1)[1] if image.startswith("skimage:") else Path(image).stem


class _Group(click.Group):
    """Turns a FeatvizError into a one-line message and exit status 2, not a traceback, and
    each warning into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        def show(message: Any, category: Any, filename: str, *args: Any, **kwargs: Any) -> None:
            # featviz's own warnings, one line each; the libraries' deprecation notes are not
            # the command line user's to act on.
            if filename.startswith(_PACKAGE) or issubclass(category, UserWarning) and "featviz" in str(category):
                _say(f"warning: {message}")

        with warnings.catch_warnings():
            warnings.showwarning = show
            try:
                return super().invoke(ctx)
            except FeatvizError as err:
                _say(f"error: {err}")
                sys.exit(2)


class _UnitCommand(click.Command):
    """A command whose UNIT may start with a minus (``-logits:hen``, ``-(blocks.5:1)``): such
    an argument is a unit, not a bundle of short options, so it needs no ``--`` first."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        units = [
            " " + a if a.startswith("-") and not a.startswith("--") and (":" in a or "(" in a) else a for a in args
        ]
        return super().parse_args(ctx, units)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"featviz_{param.name}"] = value
    return value


def _load(model: str, weights: str | None = None, pretrained: bool = False) -> Any:
    """The adapter of MODEL as ``model_options`` asked for it (weights, trained weights, labels)."""
    import featviz
    from featviz.models.weights import is_weights_file

    kwargs: dict[str, Any] = {}
    if weights is not None:
        file_ok = model.startswith("timm:") and is_weights_file(weights)
        if not (model.startswith("torchvision:") or file_ok):
            raise FeatvizError(f"--weights is for torchvision:NAME models (or a FILE for timm:NAME), not {model}")
        kwargs["weights"] = weights
    if pretrained:
        if not model.startswith("timm:"):
            raise FeatvizError(f"--pretrained is for timm:NAME models, not {model}")
        kwargs["pretrained"] = True
    labels = click.get_current_context().meta.get("featviz_labels")
    return featviz.load_model(model, labels=labels, **kwargs)


def _stack(*decorators: Decorator[Any]) -> Decorator[Any]:
    """Several options as one decorator, listed in ``--help`` in the order given."""

    def apply(f: F) -> F:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


# --- the model -------------------------------------------------------------------------------

#: ``--model/-m``, for commands whose first argument is something else (an image, a query).
model_option = click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True)

#: How MODEL is loaded: ``--weights``, ``--pretrained`` and ``--labels`` (read back by ``_load``).
model_options = _stack(
    click.option(
        "--weights",
        help="torchvision:NAME models: weights to load, e.g. DEFAULT (downloads once); "
        "torchvision: and timm: models: a state dict FILE (.pth, .safetensors)",
    ),
    click.option("--pretrained", is_flag=True, help="timm:NAME models: trained weights (downloads once)"),
    click.option(
        "--labels",
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=_remember,
        help="class names, one a line (a classifier of your own: as many as it has outputs)",
    ),
)

# --- the run ---------------------------------------------------------------------------------

_STEPS = "optimization steps (recipe's value when left out)"
_SIZE = "image size in pixels (the model's input size when left out)"

seed_option = click.option("--seed", type=int, default=0, show_default=True)

recipe_option = click.option("--recipe", default="default", show_default=True, help="preset: see `featviz recipes`")


def device_option(help: str = "auto, cpu, cuda, cuda:1, mps") -> Decorator[Any]:
    return click.option("--device", default="auto", show_default=True, help=help)


def steps_option(help: str = _STEPS, steps_type: click.ParamType | type = int) -> Decorator[Any]:
    return click.option("--steps", type=steps_type, help=help)


def size_option(help: str | None = _SIZE, **default: Any) -> Decorator[Any]:
    """``--size``; ``default`` gives a default (with ``show_default``) where a command has one."""
    return click.option("--size", type=int, help=help, **default)


def lr_option(help: str = "learning rate (recipe's value when left out)") -> Decorator[Any]:
    return click.option("--lr", type=float, help=help)


def recipe_options(size_help: str = _SIZE, steps_type: click.ParamType | type = int, lr: bool = True) -> Decorator[Any]:
    """``--recipe``, ``--steps``, ``--size`` and (with ``lr``) ``--lr``: what a render takes
    from its recipe unless told otherwise."""
    steps, size = steps_option(steps_type=steps_type), size_option(size_help)
    return _stack(recipe_option, steps, size, *([lr_option()] if lr else []))


# --- what is written -------------------------------------------------------------------------

overwrite_option = click.option("--overwrite", is_flag=True, help="replace OUT even when it holds another run")


def out_option(help: str, required: bool = False) -> Decorator[Any]:
    return click.option("--out", "-o", required=required, help=help)


def fps_option(default: float) -> Decorator[Any]:
    return click.option("--fps", type=float, default=default, show_default=True, help="animation frames per second")


def quiet_option(help: str = "no progress bar") -> Decorator[Any]:
    return click.option("--quiet", "-q", is_flag=True, help=help)

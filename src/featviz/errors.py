"""Typed errors. Every error raised for bad user input derives from :class:`FeatvizError`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FeatvizError(Exception):
    """Base class of every error featviz raises on purpose."""


class UnknownModelError(FeatvizError, KeyError):
    """A model name that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownLayerError(FeatvizError, KeyError):
    """A layer name that is not one of the model's ``named_modules()``."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownClassError(FeatvizError, KeyError):
    """A class name or index that the label set does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnitError(FeatvizError, ValueError):
    """A unit (layer, channel, position) that does not fit the layer it names."""


class ImageError(FeatvizError, ValueError):
    """A file that cannot be read as an image, or an image of the wrong shape."""


class RenderError(FeatvizError, RuntimeError):
    """The optimization could not proceed: NaN objective, input too small, ..."""


def nearest(word: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """Closest matches of ``word`` among ``choices``, best first.

    >>> nearest("blocks.5.O", ["blocks.5.0", "blocks.6.0", "conv_head"], n=2)
    ['blocks.5.0', 'blocks.6.0']
    """
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.5)
    out = [lowered[h] for h in hits]
    # Prefix matches help for layer paths ("blocks.5" -> "blocks.5.0"), which difflib undervalues.
    for c in choices:
        if len(out) >= n:
            break
        if c.lower().startswith(word.lower()) and c not in out:
            out.append(c)
    return out


def suggestion(word: str, choices: Iterable[str], n: int = 5) -> str:
    """A ' Did you mean ...?' clause, or '' when nothing is close."""
    hits = nearest(word, choices, n)
    return f" Did you mean: {', '.join(repr(h) for h in hits)}?" if hits else ""


def shorten(text: object, limit: int = 80) -> str:
    """``repr`` of ``text``, cut to about ``limit`` characters for messages.

    >>> shorten("x" * 100, 10)
    "'xxxxxxx...'"
    """
    s = str(text)
    return repr(s if len(s) <= limit else s[: limit - 3] + "...")

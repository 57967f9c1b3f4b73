"""Class labels: names <-> indices, case-insensitive, with close matches for typos."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from featviz.errors import UnknownClassError, shorten, suggestion


class Labels:
    """An ordered list of class names that looks up in both directions.

    >>> labels = imagenet_labels()
    >>> labels.index("Hen"), labels.name(285)
    (8, 'Egyptian cat')
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._by_name = {n.lower(): i for i, n in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Labels({len(self)} classes)"

    def name(self, index: int) -> str:
        if not 0 <= index < len(self.names):
            raise UnknownClassError(f"class index {index} out of range: expected 0..{len(self) - 1}")
        return self.names[index]

    def index(self, key: int | str) -> int:
        """Index of a class given as an int, a numeric string or a name."""
        if isinstance(key, int):
            self.name(key)
            return key
        text = key.strip()
        if text.lstrip("-").isdigit():
            return self.index(int(text))
        found = self._by_name.get(text.lower())
        if found is None:
            hint = suggestion(text, self.names) if len(text) <= 200 else ""
            raise UnknownClassError(f"unknown class {shorten(key)} ({len(self)} classes).{hint}")
        return found

    def search(self, query: str = "") -> list[tuple[int, str]]:
        """Classes whose name contains ``query`` (case-insensitive); all classes for ''."""
        q = query.lower()
        return [(i, n) for i, n in enumerate(self.names) if q in n.lower()]


@lru_cache(maxsize=1)
def imagenet_labels() -> Labels:
    """The 1000 ImageNet-1k class names, in the usual index order."""
    text = resources.files("featviz.models").joinpath("imagenet_classes.txt").read_text("utf-8")
    return Labels([line for line in text.splitlines() if line])

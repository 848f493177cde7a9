"""A named registry that refuses duplicates and answers unknown names with the closest match."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from ..errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """``name -> item``, for backbones, tasks and other components chosen by name in a config.

    ``kind`` names what is registered ("backbone", "task") in error messages; ``loader``
    (optional) is called once before the first lookup, to import the modules that
    register the built-in items.
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loader = loader

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader()

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name``; a name registered twice is a programming error."""
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = item
        return item

    def get(self, name: str, where: str = "") -> T:
        """The item named ``name``; an unknown name raises ``UnknownNameError`` with the closest match."""
        self._load()
        if name not in self._items:
            close = difflib.get_close_matches(str(name), list(self._items), n=1, cutoff=0.4)
            hint = f"did you mean '{close[0]}'? " if close else ""
            place = f" ({where})" if where else ""
            raise UnknownNameError(f"unknown {self.kind} '{name}'{place}; {hint}choose from: "
                                   f"{', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        self._load()
        return iter(self._items[name] for name in sorted(self._items))

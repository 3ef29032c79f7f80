"""A tiny generic registry used for every plugin kind (port methods, scorers, tasks, executors).

METHODS: Registry[type[PortMethod]] = Registry("port method")

@METHODS.register("mean")
class Mean(PortMethod): ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from loraport.errors import LoraportError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    """Plugins of one kind by name. A name is registered once (a second registration raises
    ValueError); a miss raises `error` naming the closest registered name and listing the valid
    ones; iteration and `names()` are sorted.

        COLOURS: Registry[str] = Registry("colour")
        COLOURS.add("red", "#f00")
        COLOURS.get("rde")      # LoraportError: unknown colour 'rde' (did you mean 'red'?); valid: red
    """

    def __init__(self, kind: str, error: type[LoraportError] = LoraportError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that adds the decorated object under `name` and returns it unchanged."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Add `obj` under `name`; ValueError when the name is taken."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj

    def get(self, name: str) -> T:
        """The object registered under `name`; `error` with the closest name and the valid ones."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise self.error(
                f"unknown {self.kind} {name!r}{closest(name, self._items)}; valid: {valid}"
            ) from None

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

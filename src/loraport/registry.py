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
    def __init__(self, kind: str, error: type[LoraportError] = LoraportError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise self.error(
                f"unknown {self.kind} {name!r}{closest(name, self._items)}; valid: {valid}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

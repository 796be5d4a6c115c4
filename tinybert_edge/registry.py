"""One small registry type for backends, converters and loss terms: names map to lazily imported values."""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to values; a value may be given as a "module:attribute" string and is imported on first use."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, value: T | str | None = None) -> Callable[[T], T] | T | str:
        """Register `value` under `name`; without a value, return a decorator that registers what it decorates."""
        if value is None:

            def decorate(obj: T) -> T:
                self.register(name, obj)
                return obj

            return decorate
        if name in self._entries:
            raise ValueError(f"duplicate {self.kind} '{name}': already registered")
        self._entries[name] = value
        return value

    def get(self, name: str) -> T:
        from tinybert_edge.errors import ConfigError

        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} '{name}'; available: {', '.join(sorted(self._entries))}")
        value = self._entries[name]
        if isinstance(value, str):
            module_name, _, attribute = value.partition(":")
            value = getattr(importlib.import_module(module_name), attribute)
            self._entries[name] = value
        return value  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

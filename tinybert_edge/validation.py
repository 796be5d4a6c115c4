"""The one way a configuration checks itself: every config dataclass of the SDK (core, converters, benchmarks)
validates its fields with these functions in `__post_init__`, so every bad value fails the same way, with a
ConfigError that names the field, the value and what is allowed.

A field is named either as a config-file key with its table (`owner="distill"`: "distill.temperature = -1.0") or,
for settings given as Python keyword arguments, by the keyword alone (`owner=None`: "opset=9").
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from tinybert_edge.errors import ConfigError


def subject(owner: str | None, name: str, value: Any) -> str:
    """How a field and its value are named in an error message."""
    return f"{name}={value!r}" if owner is None else f"{owner}.{name} = {value!r}"


def invalid(owner: str | None, name: str, value: Any, allowed: str) -> ConfigError:
    """The error for a value that is not allowed; `allowed` says what is."""
    return ConfigError(f"{subject(owner, name, value)} is not allowed; allowed: {allowed}")


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_number(owner: str | None, name: str, value: Any, *, minimum: float | None = None,
                 maximum: float | None = None, exclusive: bool = False, integer: bool = False,
                 optional: bool = False, unit: str = "") -> None:
    """A finite number (an integer with `integer`) >= `minimum` (> with `exclusive`) and <= `maximum`; None is
    accepted with `optional`."""
    if value is None and optional:
        return
    ok = _is_number(value) and (not integer or isinstance(value, int))
    if ok and minimum is not None:
        ok = value > minimum if exclusive else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        kind = "an integer" if integer else "a finite number" + (f" of {unit}" if unit else "")
        bounds = []
        if minimum is not None and maximum is not None and not exclusive:
            bounds.append(f"from {minimum} to {maximum}")
        else:
            if minimum is not None:
                bounds.append(f"{'>' if exclusive else '>='} {minimum}")
            if maximum is not None:
                bounds.append(f"<= {maximum}")
        text = f"{kind} {' and '.join(bounds)}".strip()
        raise invalid(owner, name, value, f"None or {text}" if optional else text)


def check_positive(owner: str | None, name: str, value: Any, *, allow_zero: bool = False,
                   optional: bool = False) -> None:
    """A number > 0 (>= 0 with `allow_zero`)."""
    check_number(owner, name, value, minimum=0, exclusive=not allow_zero, optional=optional)


def check_fraction(owner: str | None, name: str, value: Any, *, upper_open: bool = False) -> None:
    """A number in [0, 1] ([0, 1) with `upper_open`)."""
    ok = _is_number(value) and 0 <= value and (value < 1 if upper_open else value <= 1)
    if not ok:
        raise invalid(owner, name, value, f"a number in [0, 1{')' if upper_open else ']'}")


def check_choice(owner: str | None, name: str, value: Any, choices: Sequence[Any], quoted: bool = True) -> None:
    """One of `choices`, listed as Python values ("allowed values are 'a', 'b'") or, with `quoted=False`, as the
    names a command line takes ("allowed: a, b")."""
    if value not in choices:
        if quoted:
            raise ConfigError(f"{subject(owner, name, value)} is not allowed; allowed values are "
                              f"{', '.join(map(repr, choices))}")
        raise invalid(owner, name, value, ", ".join(map(str, choices)))


def check_bool(owner: str | None, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise invalid(owner, name, value, "True or False")


def int_tuple(owner: str | None, name: str, value: Any, *, minimum: int = 1, allow_empty: bool = False,
              distinct: bool = True, sort: bool = False, example: str = "(64, 128)") -> tuple[int, ...]:
    """A list or tuple of integers >= `minimum` (distinct unless told otherwise), returned as a tuple (sorted with
    `sort`); a single integer is a tuple of one."""
    values = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    ok = isinstance(values, (list, tuple)) and (allow_empty or len(values) > 0) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values)
    if ok and distinct:
        ok = len(set(values)) == len(values)
    if not ok:
        empty = "" if allow_empty else "non-empty "
        repeats = "distinct " if distinct else ""
        raise invalid(owner, name, value, f"a {empty}tuple of {repeats}integers >= {minimum}, e.g. {example}")
    return tuple(sorted(values)) if sort else tuple(values)


def string_tuple(owner: str | None, name: str, value: Any, choices: Sequence[str] | None = None,
                 allow_empty: bool = False, quoted: bool = True) -> tuple[str, ...]:
    """A list or tuple of strings (each one of `choices` when given, named in the error as `check_choice` does),
    returned as a tuple; a single string is a tuple of one."""
    values = (value,) if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not (allow_empty or len(values) > 0) or not all(
            isinstance(v, str) for v in values):
        example = f"[{', '.join(map(repr, choices))}]" if choices else "['a', 'b']"
        raise invalid(owner, name, value, f"a {'' if allow_empty else 'non-empty '}list of strings such as {example}")
    for item in values:
        if choices is not None:
            check_choice(owner, name, item, choices, quoted)
    return tuple(values)


def freeze(instance: Any, name: str, value: Any) -> None:
    """Set a normalised value on a frozen dataclass during `__post_init__`."""
    object.__setattr__(instance, name, value)

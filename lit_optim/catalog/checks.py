"""One checker for every number a user gives: a recipe value, a kwarg, a callback argument.

Every range check in lit-optim goes through ``check_number`` (or ``check_count`` for step
counts), so they all agree: booleans are not numbers (``True`` is not an lr), NaN and inf are
rejected unless asked for, and the message names the value and the range it must be in.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from lit_optim.catalog.errors import ConfigError

__all__ = ["check_count", "check_non_negative", "check_number", "load_yaml"]


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
    note: str = "",
) -> float:
    """``value`` as a float if it is a number in the range, else ConfigError.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``; ``None`` is unbounded.
    Infinite values are rejected unless ``allow_inf`` (a norm type may be inf; an lr may not).
    """
    if not _is_number(value) or not _in_range(value, low, high, low_open, high_open, allow_inf):
        raise ConfigError(
            f"{name} must be {_describe(low, high, low_open, high_open, allow_inf)}"
            f"{note}, got {value!r}"
        )
    return float(value)


def _in_range(
    value: float,
    low: float | None,
    high: float | None,
    low_open: bool,
    high_open: bool,
    allow_inf: bool,
) -> bool:
    ok = not math.isnan(value) and (allow_inf or math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    return ok


def _describe(low, high, low_open, high_open, allow_inf) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        bound = f"{'>' if low_open else '≥'} {low:g}"
    elif high is not None:
        bound = f"{'<' if high_open else '≤'} {high:g}"
    else:
        return "a number" if allow_inf else "a finite number"
    return f"{bound} or inf" if allow_inf else f"a finite number {bound}"


def check_non_negative(name: str, value: object) -> float:
    """``value`` as a float if it is a number >= 0 (a plugin kwarg's or a Trainer setting's
    domain check), else ConfigError."""
    return check_number(name, value, low=0)


def check_count(name: str, value: object, *, note: str = "") -> int:
    """A step count, interval or budget: an int >= 1 (``True`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1{note}, got {value!r}")
    return value


def load_yaml(text: str) -> Any:
    """``yaml.safe_load``, except that a key given twice in one mapping is an error (PyYAML
    keeps the last one silently, so a recipe's first ``max_epochs`` would just vanish):
    ``yaml.YAMLError`` naming the key and both lines."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key != "<<" and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark,
                )
            seen.setdefault(key, line)
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass

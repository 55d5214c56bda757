"""The errors lit-optim raises for bad input.

Each one says what was wrong and how to fix it. The CLI prints them as one line and exits
with status 2 (like an argument error) instead of showing a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatasetNotFoundError",
    "LitOptimError",
    "UnknownNameError",
    "check_count",
]


class LitOptimError(Exception):
    """Base class of the errors the CLI reports without a traceback."""


class ConfigError(LitOptimError, ValueError):
    """A value in a recipe, on the command line or in a Python call is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup found no entry under that name.

    Subclasses KeyError so ``name in registry``-style code can catch it, but keeps the plain
    message: ``KeyError.__str__`` would wrap it in quotes.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(LitOptimError, FileNotFoundError):
    """Dataset files are missing and downloading is off (or failed)."""


def check_count(name: str, value: object, *, note: str = "") -> None:
    """A step count, interval or budget: an int >= 1 (``True`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1{note}, got {value!r}")

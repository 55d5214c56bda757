"""The errors lit-optim raises for bad input.

Each one says what was wrong and how to fix it. The CLI prints them as one line and exits
with status 2 (like an argument error) instead of showing a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatasetNotFoundError",
    "LitOptimError",
    "MissingPackageError",
    "UnknownNameError",
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



class MissingPackageError(LitOptimError, ImportError):
    """An optional package that a chosen plugin needs is not installed; says how to install it."""

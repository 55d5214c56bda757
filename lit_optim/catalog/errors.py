"""The errors lit-optim raises for bad input.

Each one says what was wrong and how to fix it. The CLI prints them as one line and exits
with status 2 (like an argument error) instead of showing a traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

__all__ = [
    "ConfigError",
    "DatasetNotFoundError",
    "DirectionError",
    "LitOptimError",
    "MissingPackageError",
    "UnknownNameError",
    "chained_error",
    "disk_fault",
    "disk_fault_words",
    "error_chain",
]

# A full disk, an exhausted quota, a failing device: where the files go is at fault, not the
# input. (A read-only folder is checked before anything runs, and said so, where it matters.)
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


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


class DirectionError(ConfigError):
    """A metric's direction is unknown, or declared twice in contradiction."""


class DatasetNotFoundError(LitOptimError, FileNotFoundError):
    """Dataset files are missing and downloading is off (or failed)."""


class MissingPackageError(LitOptimError, ImportError):
    """An optional package that a chosen plugin needs is not installed; says how to install it."""


def error_chain(err: BaseException | None) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from or while handling (``__cause__``, else
    ``__context__``), once each."""
    seen = set()
    while err is not None and id(err) not in seen:
        yield err
        seen.add(id(err))
        err = err.__cause__ or err.__context__


def chained_error(err: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """The first exception of type ``kind`` in ``err``'s chain, ``err`` itself included."""
    return next((e for e in error_chain(err) if isinstance(e, kind)), None)


def disk_fault(err: BaseException | None) -> OSError | None:
    """The OSError of a full disk (or exhausted quota, or I/O error) in ``err``'s
    chain: torch.save reports a full disk as a RuntimeError ("unexpected pos …") raised while
    handling it, a journal storage as the OSError itself."""
    return next(
        (e for e in error_chain(err) if isinstance(e, OSError) and e.errno in DISK_ERRNOS), None
    )


def disk_fault_words(err: OSError) -> str:
    """``No space left on device: /path`` (the path where the OSError names one)."""
    return f"{err.strerror or err}: {err.filename}" if err.filename else str(err.strerror or err)

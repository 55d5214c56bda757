"""What many tests share (``tests/`` is on sys.path: pytest puts a rootdir conftest's folder
there): the repository's root, and a command's ``main(argv)`` run inside the test process as
its console script runs it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["ROOT", "exit_status"]

ROOT = Path(__file__).resolve().parents[1]  # the repository


def exit_status(main: Callable[[Sequence[str]], object], *args: str) -> int:
    """The exit status ``main(list(args))`` gives its process: 0 when it returns, else its
    SystemExit's, read as Python reads it (None is 0, a message is 1)."""
    try:
        main(list(args))
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        return 1
    return 0

"""SIGTERM / SIGINT: end the current trial as failed (not counted: it is run again), print the
summary and exit non-zero, instead of Lightning's SIGTERM exit 0 with the trial left RUNNING.
Worker processes die with their parent."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Interrupted", "die_with_parent", "on_signals"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
    """The run was stopped by a signal (not a LitOptimError: no handler of bad input may take
    it for one)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


@contextmanager
def on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise ``Interrupted`` (Lightning calls handlers it
    finds installed, and re-raises what they raise out of ``trainer.fit``)."""
    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (a killed ``lit-tune run`` must not
    leave workers behind that fight the next run over the same trials). No-op elsewhere."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    import os

    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)

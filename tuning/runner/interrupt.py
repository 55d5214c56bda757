"""SIGTERM / SIGINT: end the current trial as failed (not counted: it is run again), print the
summary and exit non-zero, instead of Lightning's SIGTERM exit 0 with the trial left RUNNING.
Worker processes die with their parent."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tuning.runner.errors import Interrupted

__all__ = [
    "die_with_parent",
    "held_signals",
    "interrupted",
    "on_signals",
    "raise_if_interrupted",
]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


_received: list[int] = []  # signals seen inside on_signals(), until the block ends


@contextmanager
def on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise ``Interrupted`` (Lightning calls handlers it
    finds installed, and re-raises what they raise out of ``trainer.fit``).

    A handler's exception is lost when the signal lands in a ``__del__`` (Python only prints
    it), so the signal is also remembered and ``raise_if_interrupted`` raises it again at the
    next safe point (each training batch, each trial).
    """

    def handler(signum, frame):
        _received.append(signum)
        raise Interrupted(signum)

    def unraisable(info) -> None:  # the lost raise: remembered above, so not printed
        if not isinstance(info.exc_value, Interrupted):
            default_hook(info)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    default_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        sys.unraisablehook = default_hook
        _received.clear()


@contextmanager
def held_signals() -> Iterator[None]:
    """Inside ``on_signals()``: a few lines that must finish together (ask a trial and claim
    it). A SIGTERM/SIGINT that lands in them is remembered, and raised as ``Interrupted`` when
    the block ends, so the caller knows the trials it asked and can fail them: raised halfway
    through ``study.ask()`` it left a trial RUNNING that no one knew to fail."""
    held: list[int] = []

    def handler(signum, frame):
        _received.append(signum)
        held.append(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if held:
        raise Interrupted(held[0])


def interrupted() -> bool:
    """A SIGTERM/SIGINT arrived inside ``on_signals()`` (its exception may have been lost or
    wrapped by the code it landed in)."""
    return bool(_received)


def raise_if_interrupted() -> None:
    if _received:
        raise Interrupted(_received[0])


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (a killed ``lit-tune run`` must not
    leave workers behind that fight the next run over the same trials). No-op elsewhere.

    ``parent_pid`` is the parent as it was when this process was started, not ``os.getppid()``
    now: a worker still importing torch when its parent was killed has already been re-parented
    (to init or a subreaper), and asking then would tie it to the wrong parent for good.
    """

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)

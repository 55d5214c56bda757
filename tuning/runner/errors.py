"""What ends a study run early, as exceptions: a signal (``Interrupted``) and a recipe that
fails every trial (``TooManyFailuresError``). ``tuning.cli`` turns each into one line and its
exit status."""

from __future__ import annotations

import signal

from lit_optim import LitOptimError

__all__ = ["Interrupted", "TooManyFailuresError"]


class Interrupted(Exception):
    """The run was stopped by a signal (not a LitOptimError: no handler of bad input may take
    it for one). An Exception, which the study loop catches to fail the running trials for
    rerun; ``lit-optim``'s is ``lit_optim.cli.errors.Interrupted``, a BaseException."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class TooManyFailuresError(LitOptimError):
    """Several trials in a row raised: the recipe or space is broken, not one trial's values."""

"""What ends a ``lit-optim`` command other than bad input (``ConfigError``, exit 2): a fit
that ended diverged (exit 1) and Ctrl-C (exit 130). ``lit_optim.cli.main`` turns each into
one line."""

from __future__ import annotations

from lit_optim.catalog.errors import LitOptimError

__all__ = ["Interrupted", "TrainingDiverged"]


class TrainingDiverged(LitOptimError):
    """The fit ran, but ended on NaN/Inf or diverged: not a configuration error (exit 1, not 2)."""


class Interrupted(BaseException):
    """Ctrl-C during a command. Not a KeyboardInterrupt, which Lightning turns into its own
    message and ``sys.exit(1)``; a BaseException, so that no ``except Exception`` in a user's
    module swallows it (Lightning runs its callbacks' ``on_exception`` and re-raises it).
    (``lit-tune``'s is ``tuning.runner.errors.Interrupted``, an Exception its study loop
    catches to fail the running trials for rerun.)"""

"""The one place lit-tune uses a private Optuna API, tested against the Optuna in use by
``tests/test_optuna_private.py`` (pyproject bounds the Optuna versions it was tested with).

lit-tune asks for trials itself, under a file lock, so that N workers never overshoot the
budget (``study.optimize`` with ``MaxTrialsCallback`` checks only after a trial ends). Outside
``study.optimize`` nothing beats a trial's heartbeat, and Optuna's heartbeat thread is only
reachable through ``optuna.storages._heartbeat`` with the trial's storage id.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread

__all__ = ["heartbeat"]


def heartbeat(study: optuna.Study, trial: optuna.Trial) -> AbstractContextManager:
    """Beats ``trial``'s heartbeat while the block runs, as ``study.optimize`` does (a no-op for
    storages without heartbeats, such as the journal file)."""
    return get_heartbeat_thread(trial._trial_id, study._storage)

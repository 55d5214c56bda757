"""The one place lit-tune uses private Optuna APIs, tested against the Optuna in use by
``tests/test_optuna_private.py`` (pyproject bounds the Optuna versions it was tested with).

``heartbeat``: lit-tune asks for trials itself, under a file lock, so that N workers never overshoot the
budget (``study.optimize`` with ``MaxTrialsCallback`` checks only after a trial ends). Outside
``study.optimize`` nothing beats a trial's heartbeat, and Optuna's heartbeat thread is only
reachable through ``optuna.storages._heartbeat`` with the trial's storage id.

``report_all``: a population reports N members' values each epoch. ``Trial.report`` is one
RDB transaction each (a session, two lookups, a commit: 1.5–2.5 ms on SQLite), N per epoch;
Optuna has no public batch write, so the RDB storage's own per-value helper runs N times
inside one of its sessions (``bench/population_throughput.py`` figures in the README).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread

__all__ = ["heartbeat", "report_all"]


def heartbeat(study: optuna.Study, trial: optuna.Trial) -> AbstractContextManager:
    """Beats ``trial``'s heartbeat while the block runs, as ``study.optimize`` does (a no-op for
    storages without heartbeats, such as the journal file)."""
    return get_heartbeat_thread(trial._trial_id, study._storage)


def report_all(study: optuna.Study, reports: list[tuple[optuna.Trial, float]], step: int) -> None:
    """``trial.report(value, step)`` for every pair, in one transaction on an RDB storage (the
    same rows, checks and first-report-wins rule); one by one on any other storage."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # optuna wraps RDBStorage in a cache
    fresh = [(t, float(v)) for t, v in reports
             if step not in t._cached_frozen_trial.intermediate_values]
    if not isinstance(backend, optuna.storages.RDBStorage) or len(fresh) < 2:
        for trial, value in reports:
            trial.report(value, step)
        return
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session, True) as session:
        for trial, value in fresh:
            backend._set_trial_intermediate_value_without_commit(session, trial._trial_id,
                                                                 int(step), value)
    for trial, value in fresh:  # what Trial.report keeps for its first-report-wins check
        trial._cached_frozen_trial.intermediate_values[int(step)] = value

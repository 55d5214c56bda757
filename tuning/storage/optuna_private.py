"""The one place lit-tune uses private Optuna APIs, tested against the Optuna in use by
``tests/tuning/test_optuna_private.py`` (pyproject bounds the Optuna versions it was tested with).

``heartbeat``: lit-tune asks for trials itself, under a file lock, so that N workers never
overshoot the budget (``study.optimize`` with ``MaxTrialsCallback`` checks only after a trial
ends). Outside
``study.optimize`` nothing beats a trial's heartbeat, and Optuna's heartbeat thread is only
reachable through ``optuna.storages._heartbeat`` with the trial's storage id; lit-tune beats it
with the storage's ``record_heartbeat`` in a thread of its own, which a failing storage does not
end with a traceback.

``set_user_attrs``: a trial left RUNNING by a dead process is failed by another process, with a
``fail_reason``; ``study.tell`` takes a trial number, but setting an attribute on a trial that
is not this process's ``Trial`` needs its storage id (``FrozenTrial._trial_id``).

``report_all``: a population reports N members' values each epoch. ``Trial.report`` is one
RDB transaction each (a session, two lookups, a commit: bench/README.md, costs), N per epoch;
Optuna has no public batch write, so the N rows go in as one insert in one of the RDB
storage's sessions, after the checks its per-value method makes, for all N at once
(``bench/population_throughput.py`` figures in the README).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import optuna
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

__all__ = ["StudySnapshot", "heartbeat", "report_all", "set_user_attrs"]


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Beats ``trial``'s heartbeat while the block runs, as ``study.optimize`` does (nothing for
    storages without heartbeats, such as the journal file). Optuna's own thread dies with a
    traceback when the storage fails (a lost PostgreSQL connection); this one stops beating
    quietly, and the run's next write reports the storage's failure in one line."""
    storage = study._storage
    if not is_heartbeat_enabled(storage):
        yield
        return
    beating = cast(BaseHeartbeat, storage)  # what is_heartbeat_enabled found it to be
    interval = beating.get_heartbeat_interval()
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                beating.record_heartbeat(trial._trial_id)
            except Exception:  # noqa: BLE001 - the main thread's next write says what failed
                return
            if stop.wait(timeout=interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat of trial {trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def set_user_attrs(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, attrs: dict[str, object]
) -> None:
    """``trial.set_user_attr(key, value)`` for each item, for a trial known only by its record."""
    for key, value in attrs.items():
        study._storage.set_trial_user_attr(trial._trial_id, key, value)


def report_all(study: optuna.Study, reports: list[tuple[optuna.Trial, float]], step: int) -> None:
    """``trial.report(value, step)`` for every pair, in one transaction on an RDB storage (the
    same rows, checks and first-report-wins rule); one by one on any other storage."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # optuna wraps RDBStorage in a cache
    fresh = [
        (t, float(v)) for t, v in reports if step not in t._cached_frozen_trial.intermediate_values
    ]
    if not isinstance(backend, optuna.storages.RDBStorage) or len(fresh) < 2:
        for trial, value in reports:
            trial.report(value, step)
        return
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    ids = [trial._trial_id for trial, _ in fresh]
    with _create_scoped_session(backend.scoped_session, True) as session:
        # Two lookups and one insert for all: the checks set_trial_intermediate_value makes
        # per value (the trial exists and is running; the step is not stored yet).
        states = dict(
            session.query(models.TrialModel.trial_id, models.TrialModel.state).filter(
                models.TrialModel.trial_id.in_(ids)
            )
        )
        for trial_id in ids:
            if trial_id not in states:
                raise KeyError(f"no trial with id {trial_id}")
            backend.check_trial_is_updatable(trial_id, states[trial_id])
        rows = models.TrialIntermediateValueModel
        stored = {
            trial_id
            for (trial_id,) in session.query(rows.trial_id).filter(
                rows.trial_id.in_(ids), rows.step == int(step)
            )
        }
        for trial, value in fresh:
            if trial._trial_id in stored:
                continue
            kept, kind = rows.intermediate_value_to_stored_repr(value)
            session.add(
                rows(
                    trial_id=trial._trial_id,
                    step=int(step),
                    intermediate_value=kept,
                    intermediate_value_type=kind,
                )
            )
    for trial, value in fresh:  # what Trial.report keeps for its first-report-wins check
        trial._cached_frozen_trial.intermediate_values[int(step)] = value


class StudySnapshot:
    """A study as of one ``get_trials`` read, for a pruner that reads it and writes only
    trial system attrs (successive halving's rung marks): those go to the storage and into
    the snapshot, so a later member in the same epoch sees them, as it would in the storage.
    It offers exactly what those pruners use of a study (as Optuna's own ``_BracketStudy``
    offers a fixed list): ``SuccessiveHalvingPruner.prune`` writes through ``study._storage``
    by trial id, which is why it lives in this adapter."""

    def __init__(self, study: optuna.Study) -> None:
        self.direction, self.directions = study.direction, study.directions
        self._trials = study.get_trials(deepcopy=False)
        self._position = {t._trial_id: i for i, t in enumerate(self._trials)}
        self._number = {t.number: i for i, t in enumerate(self._trials)}
        self._storage = _WriteThrough(study._storage, self)

    def get_trials(self, deepcopy: bool = True, states=None) -> list[optuna.trial.FrozenTrial]:
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    @property
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.get_trials()

    def frozen(self, number: int) -> optuna.trial.FrozenTrial:
        return self._trials[self._number[number]]

    def set_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        """A copy of the trial with the attr (the read's trials may be the storage cache's)."""
        position = self._position[trial_id]
        updated = copy.copy(self._trials[position])
        updated.system_attrs = {**updated.system_attrs, key: value}
        self._trials[position] = updated


class _WriteThrough:
    """The snapshot's storage: a pruner's ``set_trial_system_attr`` goes to the study's
    storage and into the snapshot."""

    def __init__(self, storage: Any, snapshot: StudySnapshot) -> None:
        self._storage, self._snapshot = storage, snapshot

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._storage.set_trial_system_attr(trial_id, key, value)
        self._snapshot.set_system_attr(trial_id, key, value)

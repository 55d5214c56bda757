"""The one private Optuna API lit-tune uses (tuning/storage/optuna_private.py): the heartbeat
thread. Fails if an Optuna release moves or changes it; pyproject bounds Optuna to the tested
versions."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from tuning.storage.optuna_private import heartbeat


def test_a_trial_under_heartbeat_is_alive_and_goes_stale_when_it_stops(tmp_path):
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=1, grace_period=2
    )
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with heartbeat(study, trial):
        time.sleep(3)
        optuna.storages.fail_stale_trials(study)
        assert study.trials[trial.number].state == TrialState.RUNNING
    time.sleep(3)
    optuna.storages.fail_stale_trials(study)
    assert study.trials[trial.number].state == TrialState.FAIL


def _study(storage):
    return optuna.create_study(storage=storage, study_name="r", direction="maximize")


def test_report_all_writes_what_trial_report_writes(tmp_path):
    from tuning.storage.optuna_private import report_all

    for storage in (
        f"sqlite:///{tmp_path / 'r.db'}",
        optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "r.log"))
        ),
    ):
        study = _study(storage)
        batch = [study.ask() for _ in range(3)]
        alone = study.ask()
        for epoch in range(2):
            report_all(study, [(t, 0.1 * i + epoch) for i, t in enumerate(batch)], epoch)
            alone.report(0.5 + epoch, epoch)
        report_all(study, [(batch[0], 99.0), (batch[1], 98.0)], 1)  # first report wins
        # Read back through a storage of its own, as lit-tune report and the optuna CLI do.
        if isinstance(storage, str):
            again = optuna.load_study(study_name="r", storage=storage)
        else:
            again = optuna.load_study(
                study_name="r",
                storage=optuna.storages.JournalStorage(
                    optuna.storages.journal.JournalFileBackend(str(tmp_path / "r.log"))
                ),
            )
        got = {t.number: t.intermediate_values for t in again.trials}
        assert got == {
            0: {0: 0.0, 1: 1.0},
            1: {0: 0.1, 1: 1.1},
            2: {0: 0.2, 1: 1.2},
            3: {0: 0.5, 1: 1.5},
        }
        assert batch[2].should_prune() is False  # the pruner reads the stored values
        study.tell(batch[0], 1.0)
        with pytest.raises(RuntimeError):  # a finished trial takes no reports
            report_all(study, [(batch[0], 1.0), (batch[1], 1.0)], 5)


def test_set_user_attrs_writes_on_a_trial_known_only_by_its_record(tmp_path):
    from tuning.storage.optuna_private import set_user_attrs

    storage = f"sqlite:///{tmp_path / 'a.db'}"
    study = _study(storage)
    study.ask()
    other = optuna.load_study(study_name="r", storage=storage)  # another process's view
    (frozen,) = other.get_trials(states=(TrialState.RUNNING,))
    set_user_attrs(other, frozen, {"fail_reason": "lost", "rerun": True})
    assert study.trials[0].user_attrs == {"fail_reason": "lost", "rerun": True}


def test_successive_halving_judges_through_a_snapshot_and_writes_its_rung_marks_through(tmp_path):
    # What StudySnapshot relies on: SuccessiveHalvingPruner.prune reads the study through
    # get_trials and writes its rung marks with study._storage.set_trial_system_attr. Two
    # members judged from one snapshot: the storage holds each mark, and the second member
    # is judged against the first's (the first, 0.9, promoted; the second, 0.1, pruned).
    from tuning.storage.optuna_private import StudySnapshot

    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize", pruner=pruner
    )
    first, second = study.ask(), study.ask()
    first.report(0.9, 1)  # rung 0 is judged from step min_resource × η⁰ = 1
    second.report(0.1, 1)
    snapshot = StudySnapshot(study)
    assert not pruner.prune(snapshot, snapshot.frozen(first.number))
    assert pruner.prune(snapshot, snapshot.frozen(second.number))
    stored = {t.number: t.system_attrs for t in study.get_trials()}
    assert stored[first.number]["completed_rung_0"] == 0.9
    assert stored[second.number]["completed_rung_0"] == 0.1

"""The one private Optuna API lit-tune uses (tuning/optuna_private.py): the heartbeat thread.
Fails if an Optuna release moves or changes it; pyproject bounds Optuna to the tested versions."""

from __future__ import annotations

import time

import optuna
from optuna.trial import TrialState

from tuning.optuna_private import heartbeat


def test_a_trial_under_heartbeat_is_alive_and_goes_stale_when_it_stops(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=1,
                                         grace_period=2)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with heartbeat(study, trial):
        time.sleep(3)
        optuna.storages.fail_stale_trials(study)
        assert study.trials[trial.number].state == TrialState.RUNNING
    time.sleep(3)
    optuna.storages.fail_stale_trials(study)
    assert study.trials[trial.number].state == TrialState.FAIL

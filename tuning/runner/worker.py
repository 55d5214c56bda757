"""One optimization loop: ask a trial under the budget lock, run it, tell the result. The body
of ``lit-tune run`` with one worker, and of each ``--n-workers`` process.

The budget counts every trial that ran to an answer (finished, or failed by its own error) and
every running one; a trial whose process died is failed once that is known (heartbeat expiry,
or the next start for a journal) and replaced. A run ends only when the budget is used and no
trial is still running, so a killed worker's trial is re-run by whichever process is alive.
"""

from __future__ import annotations

import bisect
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock
from optuna.trial import TrialState

from tuning.runner.algorithms import MAX_FAILURES
from tuning.runner.errors import Interrupted, TooManyFailuresError
from tuning.runner.interrupt import held_signals, raise_if_interrupted
from tuning.runner.owners import (
    claim,
    fail_dead_trials,
    fail_for_rerun,
    is_rerun,
    owner_alive_here,
    same_run,
)
from tuning.runner.trainable import Trainable
from tuning.search.preflight import MetricNotLoggedError
from tuning.storage.backends import StorageFault, storage_fault
from tuning.storage.optuna_private import heartbeat

__all__ = [
    "FINISHED",
    "beyond_budget",
    "counted",
    "evaluate",
    "fail_for_rerun_if_possible",
    "fail_lost_trials",
    "run_worker",
    "sampler_seed",
    "tell",
    "wait_for_running",
]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that use up the budget: finished, running, or failed by their own error.

    A trial that raised counts (it ran, with its values; asking again would loop forever on a
    broken recipe). A trial failed because its process died or was interrupted (``rerun``, or
    no ``fail_reason`` as Optuna's heartbeat check leaves it) does not: it never ran to an
    answer and is replaced.
    """
    return [
        t
        for t in trials
        if t.state in (*FINISHED, TrialState.RUNNING)
        or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs and not is_rerun(t))
    ]


def over_budget(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """Whether ``trial``, just asked, is beyond the budget (see ``beyond_budget``)."""
    return bool(beyond_budget(study, [trial], n_trials))


def beyond_budget(study: optuna.Study, trials: list[optuna.Trial], n_trials: int) -> set[int]:
    """The numbers of the just-asked ``trials`` that are beyond the budget: more counted
    trials up to their number than ``n_trials``, from one read of the study. The ask's lock
    covers the processes of one run folder only; processes with their own folders on one
    database (several machines on PostgreSQL) can each find one trial left and ask it
    together. Trial numbers are the storage's order of asking, so exactly the first
    ``n_trials`` keep theirs; a later one is failed as not run (``rerun``: it uses no budget,
    so it no longer counts for the next) and its process ends or waits like one that found
    none."""
    numbers = sorted(t.number for t in counted(study.get_trials(deepcopy=False)))
    beyond = set()
    for trial in sorted(trials, key=lambda t: t.number):
        if bisect.bisect_right(numbers, trial.number) <= n_trials:
            continue
        fail_for_rerun(
            study,
            trial,
            f"over the budget of {n_trials}: another process asked the last trial first",
        )
        numbers.remove(trial.number)
        beyond.add(trial.number)
    return beyond


def sampler_seed(seed: int, rank: int, *, created: bool) -> int:
    """``seed + rank`` for a study this run created (a fresh study with --seed is reproducible);
    a new random seed when joining or resuming one, so that a restart or a second process does
    not draw the points already drawn (TPE seeded alike asks the same points again)."""
    return seed + rank if created else random.SystemRandom().randrange(2**31)


def fail_lost_trials(study: optuna.Study, *, heartbeats: bool, heartbeat_s: float) -> bool:
    """Fail the RUNNING trials whose process is known dead (``tuning.runner.owners``; on an RDB
    storage also those whose heartbeat went stale): True if any was."""
    lost = bool(fail_dead_trials(study, grace_s=heartbeat_s))
    if heartbeats:  # Optuna's check says nothing of what it failed: count before and after
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        optuna.storages.fail_stale_trials(study)
        lost |= len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) < running
    return lost


def wait_for_running(
    study: optuna.Study, *, heartbeats: bool, heartbeat_s: float, waited: set[int]
) -> bool:
    """The budget is used up. True when the caller should ask again: a trial was found dead and
    failed (its place in the budget is free), or one is still running that may yet die, after
    a wait of at most a second and a line (once per trial) saying what it waits for. False when
    nothing is left to wait for: a run ends only when no trial it can see die is running.

    Waited for: trials of live processes on this machine (they finish, or die and are
    replaced), trials no process has claimed yet (dead after one heartbeat interval), and, on a
    storage with heartbeats, any trial (Optuna's check fails it when its heartbeat stops). A
    journal trial of another machine cannot be judged and is not waited for."""
    if fail_lost_trials(study, heartbeats=heartbeats, heartbeat_s=heartbeat_s):
        return True
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    watch = [t for t in running if heartbeats or owner_alive_here(t) or "pid" not in t.user_attrs]
    if not watch:
        return False
    for trial in watch:
        if trial.number in waited or same_run(trial):  # a worker of this run: nothing to say
            continue
        waited.add(trial.number)
        owner = (
            f"process {trial.user_attrs['pid']} on {trial.user_attrs.get('host', '?')}"
            if "pid" in trial.user_attrs
            else "no process yet"
        )
        print(
            f"budget used; waiting for trial {trial.number} ({owner}) to finish, or to be "
            f"found dead and replaced",
            file=sys.stderr,
        )
    time.sleep(min(1.0, heartbeat_s))
    return True


def run_worker(
    study: optuna.Study,
    trainable: Trainable,
    *,
    n_trials: int,
    lock_path: Path,
    heartbeats: bool,
    heartbeat_s: float = 10.0,
    max_failures: int = MAX_FAILURES,
    progress: Any = None,
    deadline: float | None = None,
) -> None:
    """Ask, run and tell trials until the budget is used and nothing is left running.

    Args:
        heartbeats: the storage records heartbeats (an RDB storage opened with an interval),
            so a trial running elsewhere can be told alive from dead by waiting.
        progress: called with the study after each trial.
        deadline: ``time.time()`` after which no trial is started (``--timeout``).
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    failures_in_a_row = 0
    waited: set[int] = set()
    while True:
        # Ask under a lock over "counted < budget", so workers on this machine never start
        # more trials than the budget (optuna's MaxTrialsCallback checks only after a trial
        # ends, so N workers can overshoot by N-1).
        raise_if_interrupted()
        if deadline is not None and time.time() >= deadline:
            return
        trial = None
        try:
            # The workers of one machine, one ask at a time; a signal waits for the claim.
            with FileLock(lock_path), held_signals():
                trials = study.get_trials(deepcopy=False)
                trial = study.ask() if len(counted(trials)) < n_trials else None
                if trial is not None:
                    claim(trial)  # which process runs it: how another one tells it alive or dead
                    if over_budget(study, trial, n_trials):
                        trial = None
        except Interrupted as err:
            if trial is not None:
                fail_for_rerun(study, trial, str(err))  # not counted: run again
            raise
        if trial is None:
            if wait_for_running(
                study, heartbeats=heartbeats, heartbeat_s=heartbeat_s, waited=waited
            ):
                continue
            return
        state, value = _run_one(study, trainable, trial)
        exhausted = tell(study, trial, state, value)
        if progress is not None:
            progress(study)
        if exhausted:
            return
        failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
        if failures_in_a_row >= max_failures:
            reason = study.trials[trial.number].user_attrs.get("fail_reason", "?")
            raise TooManyFailuresError(
                f"{failures_in_a_row} trials failed in a row, the last (trial {trial.number}) "
                f"with {reason}; fix the recipe or search space (or raise --max-failures)"
            )


def tell(study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None) -> bool:
    """``study.tell``; True when it found the grid exhausted. GridSampler calls study.stop()
    once every grid point has run, which is only allowed inside study.optimize. The trial's
    state is stored before the sampler's hook runs, so the grid being exhausted simply means
    nothing is left to ask."""
    try:
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise
        return True
    return False


def _run_one(
    study: optuna.Study, trainable: Trainable, trial: optuna.Trial
) -> tuple[TrialState, float | None]:
    """The trial under its heartbeat; an interruption or a study-stopping error is told as FAIL
    before it propagates, so no trial is left RUNNING by a live process."""
    with heartbeat(study, trial):
        try:
            return evaluate(trainable, trial)
        except Interrupted as err:
            fail_for_rerun(study, trial, str(err))  # not counted: run again
            raise
        except StorageFault as err:
            fail_for_rerun_if_possible(study, [trial], str(err))
            raise
        except MetricNotLoggedError as err:
            trial.set_user_attr("fail_reason", str(err))
            study.tell(trial, state=TrialState.FAIL)
            raise


def fail_for_rerun_if_possible(
    study: optuna.Study, trials: list[optuna.Trial], reason: str
) -> None:
    """Fail ``trials`` for rerun after a storage fault, as far as the storage still takes the
    write: where it does not (the disk is still full), they stay RUNNING, and the next run
    finds them dead and replaces them; not counted either way."""
    for trial in trials:
        try:
            fail_for_rerun(study, trial, reason)
        except Exception:  # noqa: BLE001 - the same fault again; the rerun settles it
            return


def evaluate(trainable: Trainable, trial: optuna.Trial) -> tuple[TrialState, float | None]:
    """Run one trial the way study.optimize would: pruned, failed or complete. A failure is one
    line on stderr and its ``fail_reason``; the traceback goes to ``trial_<n>/error.txt``."""
    try:
        return TrialState.COMPLETE, trainable(trial)
    except optuna.TrialPruned:
        return TrialState.PRUNED, None
    except (MetricNotLoggedError, Interrupted):
        raise
    except Exception as err:  # noqa: BLE001 - one broken trial must not stop the study
        # A signal whose exception the code it landed in wrapped as another error (inspect's
        # getfullargspec, called by Lightning each step, re-raises anything as TypeError) is
        # an interruption, not this trial's failure.
        raise_if_interrupted()
        fault = storage_fault(err)
        if fault is not None:  # the disk's failure, not the trial's: every next one would fail
            raise fault from err
        reason = f"{type(err).__name__}: {' '.join(str(err).split())}"
        trial.set_user_attr("fail_reason", reason)
        log = trainable.run_dir / f"trial_{trial.number}" / "error.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        print(f"trial {trial.number} failed: {reason} (traceback in {log})", file=sys.stderr)
        return TrialState.FAIL, None

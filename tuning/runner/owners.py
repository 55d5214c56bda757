"""Who runs a RUNNING trial, and whether that process is still alive.

Right after it asks a trial, the process that will run it writes itself into the trial's user
attributes (``pid``, ``host``, ``pid_started``: the process's start time, so a recycled pid is
not taken for the owner). A trial left RUNNING is then judged without waiting where that can
be known:

- owned by a process on this machine: dead when that process is gone (a journal study has no
  heartbeat, and a SQLite one need not wait for its heartbeat to go stale);
- owned by no one: its process died between ``ask`` and writing its name (or the disk was
  full); dead once it has been RUNNING for longer than one heartbeat interval, judged by its
  start time (Optuna's heartbeat check never sees it: it has no heartbeat record);
- owned by a process on another machine: alive until Optuna's heartbeat check says otherwise
  (RDB storages); a journal study cannot tell, and does not wait for it.

A trial judged dead is failed with a ``fail_reason`` and ``rerun: True``: it did not run to an
answer, so it does not use up the budget and is asked again (``tuning.runner.worker.counted``).
A trial is never failed because another run started, so two runs on one study share it.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from tuning.storage.optuna_private import set_user_attrs

__all__ = [
    "HOST",
    "RUN",
    "claim",
    "fail_dead_trials",
    "fail_for_rerun",
    "is_rerun",
    "owner_alive_here",
    "same_run",
    "why_dead",
]

HOST = socket.gethostname()
_STARTED_SLACK_S = 1.0  # psutil's create_time is rounded to the clock tick


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:  # NoSuchProcess, AccessDenied, ZombieProcess
        return None


# The lit-tune run a process belongs to: its own pid, or the pid of the run that spawned it as
# a --n-workers process (inherited through the environment).
RUN = os.environ.setdefault("LIT_TUNE_RUN", f"{HOST}:{os.getpid()}")


@functools.cache
def _started_here(pid: int) -> float | None:
    """When this process started (psutil reads /proc: once per process, not per trial)."""
    return _process_started(pid)


def claim(trial: optuna.Trial) -> None:
    """This process runs ``trial``: recorded right after it is asked."""
    pid = os.getpid()
    trial.set_user_attr("pid", pid)
    trial.set_user_attr("host", HOST)
    trial.set_user_attr("pid_started", _started_here(pid))
    trial.set_user_attr("run", RUN)


def same_run(trial: FrozenTrial) -> bool:
    """``trial`` is run by this lit-tune run (this process or one of its workers)."""
    return trial.user_attrs.get("run") == RUN


def _owner_here(trial: FrozenTrial) -> int | None:
    pid = trial.user_attrs.get("pid")
    return pid if isinstance(pid, int) and trial.user_attrs.get("host") == HOST else None


def owner_alive_here(trial: FrozenTrial) -> bool:
    """The trial's owner is a live process on this machine."""
    pid = _owner_here(trial)
    if pid is None:
        return False
    started = _process_started(pid)
    claimed = trial.user_attrs.get("pid_started")
    return started is not None and (claimed is None or abs(started - claimed) <= _STARTED_SLACK_S)


def why_dead(trial: FrozenTrial, *, grace_s: float, now: float | None = None) -> str | None:
    """Why RUNNING ``trial``'s process is known to be dead; None if alive or not known here."""
    now = time.time() if now is None else now
    if "pid" not in trial.user_attrs:
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        if now - started > grace_s:
            return (
                f"no process took it up in the {now - started:.0f} s since it was asked "
                "(its process died before recording itself)"
            )
        return None
    pid = _owner_here(trial)
    if pid is None or owner_alive_here(trial):
        return None
    return f"its process {pid} on {HOST} is gone"


def fail_for_rerun(study: optuna.Study, trial: optuna.Trial | FrozenTrial, reason: str) -> bool:
    """Fail ``trial`` as one that did not run to an answer (its process died, or the run was
    interrupted): ``fail_reason`` says why, ``rerun`` keeps it out of the budget, so the next
    ask replaces it. False if it was finished meanwhile (told by its owner first)."""
    attrs = {"fail_reason": reason, "rerun": True}
    try:
        if isinstance(trial, optuna.Trial):
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
        else:  # a trial of another process: only its frozen record is at hand
            set_user_attrs(study, trial, attrs)
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    except RuntimeError:  # UpdateFinishedTrialError: its owner told it first (and GridSampler's
        return False  # study.stop() outside optimize, once the told trial ends the grid)
    return True


def is_rerun(trial: FrozenTrial) -> bool:
    return bool(trial.user_attrs.get("rerun"))


def fail_dead_trials(study: optuna.Study, *, grace_s: float) -> list[str]:
    """Fail every RUNNING trial whose process is known dead (see ``why_dead``); one line each,
    returned and printed."""
    lines = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = why_dead(trial, grace_s=grace_s)
        if reason is None:
            continue
        if fail_for_rerun(study, trial, f"lost: {reason}"):
            lines.append(f"trial {trial.number} was left RUNNING: {reason}; failed, and run again")
    for line in lines:
        print(line, file=sys.stderr)
    return lines

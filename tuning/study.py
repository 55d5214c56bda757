"""Studies: samplers and pruners by name, running (one or several worker processes), the
best trial, and its export as a recipe."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread  # what study.optimize uses
from optuna.trial import TrialState

from lit_optim import ConfigError, LitOptimError, UnknownNameError
from lit_optim.registry import did_you_mean
from lit_optim.validation import check_count
from tuning.objective import Objective, trial_trainer_args
from tuning.preflight import MetricNotLoggedError, check_before_trial_0
from tuning.recipe import apply_overrides, load_recipe, write_recipe
from tuning.record import check_same_record, recipe_of, record_of
from tuning.space import SearchSpace, load_space, load_space_dict
from tuning.storage import HEARTBEAT_S, journal_path, open_storage

__all__ = ["MAX_FAILURES", "PRUNERS", "SAMPLERS", "TooManyFailuresError", "counted", "export_best",
           "load_study", "make_pruner", "make_sampler", "run_study"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_FAILURES = 3  # consecutive failed trials that stop a study (--max-failures)


class TooManyFailuresError(LitOptimError):
    """Several trials in a row raised: the recipe or space is broken, not one trial's values."""


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that use up the budget: finished, running, or failed by their own error.

    A trial that raised counts (it ran, with its values; asking again would loop forever on a
    broken recipe). A trial failed because its process died (no ``fail_reason``: marked by
    heartbeat expiry or at the next start) does not: it never ran to an answer and is replaced.
    """
    return [t for t in trials if t.state in (*FINISHED, TrialState.RUNNING)
            or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs)]

SAMPLERS: dict[str, Callable[[SearchSpace, int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda space, seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda space, seed: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda space, seed: optuna.samplers.QMCSampler(seed=seed),
    "cmaes": lambda space, seed: optuna.samplers.CmaEsSampler(seed=seed),
    "gp": lambda space, seed: optuna.samplers.GPSampler(seed=seed),
    "grid": lambda space, seed: optuna.samplers.GridSampler(space.grid(), seed=seed),
}
PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(),
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
    "none": lambda: optuna.pruners.NopPruner(),
}


def _pick(table: dict[str, Any], name: str, kind: str):
    if name not in table:
        hint = did_you_mean(name, table, cutoff=0.5) or f"choose one of: {', '.join(table)}"
        raise UnknownNameError(f"unknown {kind} {name!r}; {hint}")
    return table[name]


def make_sampler(name: str, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    return _pick(SAMPLERS, name, "sampler")(space, seed)


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    return _pick(PRUNERS, name, "pruner")()


def load_study(name: str, storage_url: str) -> optuna.Study:
    """An existing study; a missing one is an error (``best`` and ``report`` never create)."""
    storage = open_storage(storage_url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if name not in names:
        hint = did_you_mean(name, names, cutoff=0.5) or f"studies there: {', '.join(names) or 'none'}"
        raise ConfigError(f"no study {name!r} in {storage_url}; {hint}")
    return optuna.load_study(study_name=name, storage=storage)


def _mark_orphans_failed(study: optuna.Study) -> int:
    """Journal storage has no heartbeat: trials left RUNNING by a killed run are failed here,
    when a new run starts (one `lit-tune run` per journal at a time)."""
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return len(orphans)


def _worker(study_name: str, storage_url: str, recipe_path: str, space_path: str,
            run_dir: str, n_trials: int, sampler: str, pruner: str, seed: int,
            accelerator: str, devices: Any, n_workers: int, heartbeat_s: float,
            max_failures: int = MAX_FAILURES) -> None:
    """One optimization loop; also the body of each ``--n-workers`` process."""
    import logging
    import warnings

    # One line per trial from optuna's progress bar, not Lightning's per-fit banner.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # LightningCLI warns when it gets args while sys.argv holds lit-tune's own arguments.
    warnings.filterwarnings(
        "ignore", ".*(does not have many workers|Tip:|LeafSpec|heartbeat|args parameter).*")
    if n_workers > 1 and accelerator == "cpu":
        import torch

        # Share the cores instead of every worker spinning up one thread per core.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_workers))
    space = load_space(space_path)
    storage = open_storage(storage_url, n_workers=n_workers, heartbeat_s=heartbeat_s)
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=make_sampler(sampler, space, seed),
                              pruner=make_pruner(pruner))
    if isinstance(storage, optuna.storages.RDBStorage):
        # A trial left RUNNING by a killed worker whose heartbeat stopped becomes FAIL.
        optuna.storages.fail_stale_trials(study)
    objective = Objective(load_recipe(recipe_path), space, Path(run_dir),
                          accelerator=accelerator, devices=devices)
    lock_path = Path(run_dir) / ".ask.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    progress = None
    if n_workers == 1:
        from tqdm import tqdm

        progress = tqdm(total=n_trials, desc=f"study {study_name}", unit="trial",
                        initial=len(counted(study.get_trials(deepcopy=False))))
    failures_in_a_row = 0
    while True:
        # Ask under a lock over "finished + running < budget", so workers on this machine
        # never start more trials than the budget (optuna's MaxTrialsCallback checks only
        # after a trial ends, so N workers can overshoot by N-1).
        with _file_lock(lock_path):
            if len(counted(study.get_trials(deepcopy=False))) >= n_trials:
                break
            trial = study.ask()
        # study.optimize would beat the heart for us; the budget lock means we ask ourselves,
        # so we start optuna's heartbeat thread the way optimize does (a no-op thread for
        # storages without heartbeats).
        with get_heartbeat_thread(trial._trial_id, study._storage):
            try:
                state, value = _evaluate(objective, trial)
            except MetricNotLoggedError as err:
                trial.set_user_attr("fail_reason", str(err))
                study.tell(trial, state=TrialState.FAIL)
                raise
        exhausted = False
        try:
            study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        except RuntimeError as err:
            # GridSampler calls study.stop() once every grid point has run; that is only
            # allowed inside study.optimize. The trial's state is stored before the sampler's
            # hook runs, so the grid being exhausted simply ends this worker.
            if "Study.stop" not in str(err):
                raise
            exhausted = True
        if progress is not None:
            progress.update(1)
            best = _best_value(study)
            progress.set_postfix_str(f"best {space.metric} {best:.4f}" if best is not None else "")
        if exhausted:
            break
        failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
        if failures_in_a_row >= max_failures:
            if progress is not None:
                progress.close()
            reason = study.trials[trial.number].user_attrs.get("fail_reason", "?")
            raise TooManyFailuresError(
                f"{failures_in_a_row} trials failed in a row, the last (trial {trial.number}) "
                f"with {reason}; fix the recipe or search space (or raise --max-failures)")
    if progress is not None:
        progress.close()


def _evaluate(objective: Objective, trial: optuna.Trial) -> tuple[TrialState, float | None]:
    """Run one trial the way study.optimize would: pruned, failed or complete. A failure is one
    line on stderr and its ``fail_reason``; the traceback goes to ``trial_<n>/error.txt``."""
    import sys
    import traceback

    try:
        return TrialState.COMPLETE, objective(trial)
    except optuna.TrialPruned:
        return TrialState.PRUNED, None
    except MetricNotLoggedError:
        raise
    except Exception as err:  # noqa: BLE001 - one broken trial must not stop the study
        reason = f"{type(err).__name__}: {' '.join(str(err).split())}"
        trial.set_user_attr("fail_reason", reason)
        log = objective.run_dir / f"trial_{trial.number}" / "error.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        print(f"trial {trial.number} failed: {reason} (traceback in {log})", file=sys.stderr)
        return TrialState.FAIL, None


def _best_value(study: optuna.Study) -> float | None:
    try:
        return study.best_value
    except ValueError:
        return None


class _file_lock:
    """An exclusive lock file shared by the worker processes of one machine."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        import fcntl

        self._fh = open(self.path, "a+")
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def run_study(*, recipe: str, space: str, study_name: str, storage_url: str, run_dir: Path,
              n_trials: int, n_workers: int = 1, sampler: str = "tpe", pruner: str = "median",
              seed: int = 0, accelerator: str = "auto",
              heartbeat_s: float = HEARTBEAT_S, max_failures: int = MAX_FAILURES,
              accept_changes: bool = False) -> optuna.Study:
    """Create or resume ``study_name`` and run it until ``n_trials`` trials have used the budget
    (finished, or failed by their own error).

    A resumed study must have been made with the same recipe, space, metric and direction
    (``tuning.record``), unless ``accept_changes``.
    """
    parsed = load_space(space)  # every check before anything is written
    recipe_dict = load_recipe(recipe)
    make_sampler(sampler, parsed, seed)
    make_pruner(pruner)
    if n_trials < 1 or n_workers < 1:
        raise ConfigError(f"n_trials and n_workers must be >= 1, got {n_trials}, {n_workers}")
    check_count("max_failures", max_failures)
    check_before_trial_0(recipe_dict, parsed, trial_trainer_args(accelerator))
    record = record_of(recipe_dict, load_space_dict(space), parsed.metric, parsed.direction)
    storage = open_storage(storage_url, n_workers=n_workers, create=True)
    if study_name in optuna.study.get_all_study_names(storage):
        study = optuna.load_study(study_name=study_name, storage=storage)
        # Checked before anything is written, so a refused resume leaves the study as it was.
        check_same_record(study, record, accept_changes=accept_changes, where=storage_url)
    else:
        study = optuna.create_study(study_name=study_name, storage=storage,
                                    direction=parsed.direction)
    for key, value in record.items():
        study.set_user_attr(key, value)
    study.set_user_attr("recipe", str(Path(recipe).resolve()))
    if journal_path(storage_url) is not None:
        _mark_orphans_failed(study)
    args = (study_name, storage_url, recipe, space, str(run_dir), n_trials, sampler, pruner)
    if n_workers == 1:
        _worker(*args, seed, accelerator, "auto", 1, heartbeat_s, max_failures)
    else:
        gpus = _gpu_count() if accelerator in ("auto", "gpu", "cuda") else 0
        ctx = mp.get_context("spawn")
        procs = []
        for rank in range(n_workers):
            # Each worker its own GPU when there are enough; its own sampler seed.
            devices = [rank % gpus] if gpus else "auto"
            p = ctx.Process(target=_worker, args=(*args, seed + rank,
                                                 accelerator if gpus else ("cpu" if accelerator == "auto" else accelerator),
                                                 devices, n_workers, heartbeat_s, max_failures))
            p.start()
            procs.append(p)
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):  # e.g. MetricNotLoggedError in a worker
            failed = optuna.load_study(study_name=study_name, storage=open_storage(
                storage_url, n_workers=n_workers)).get_trials(states=(TrialState.FAIL,))
            reasons = [t.user_attrs["fail_reason"] for t in failed if "fail_reason" in t.user_attrs]
            raise LitOptimError(reasons[-1] if reasons else "a worker process failed; see above")
    return optuna.load_study(study_name=study_name, storage=open_storage(storage_url, n_workers=n_workers))


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def export_best(study: optuna.Study, path: str | Path) -> Path:
    """The recipe the best trial ran, as a file ``lit-optim fit --config`` takes."""
    best = study.best_trial
    # The recipe the study ran, as stored in it (the file may have changed since).
    recipe = recipe_of(study) or load_recipe(study.user_attrs["recipe"])
    merged = apply_overrides(recipe, dict(best.params))
    path = Path(path)
    if not path.parent.is_dir():  # create only what the user asked for: the file
        raise ConfigError(f"cannot export to {path}: folder {path.parent} does not exist")
    header = (f"lit-optim fit --config {path}\n\nbest trial {best.number} of study "
              f"{study.study_name}: {study.user_attrs.get('metric', 'value')} = {best.value:.6f}")
    return write_recipe(merged, path, header=header)

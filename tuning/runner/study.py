"""Studies: samplers and pruners by name, running (one or several worker processes), the
best trial, and its export as a recipe."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.study import StudyDirection
from optuna.trial import TrialState

from lit_optim import ConfigError, LitOptimError
from lit_optim.catalog import check_count, check_number, did_you_mean
from tuning.runner.algorithms import MAX_FAILURES, check_algorithm, make_pruner, make_sampler
from tuning.runner.errors import Interrupted
from tuning.runner.interrupt import die_with_parent, on_signals
from tuning.runner.owners import is_rerun
from tuning.runner.pbt import QUANTILE, PBTSettings, check_pbt, default_interval, replay_recipe
from tuning.runner.trainable import Trainable, quiet_lightning, trial_trainer_args
from tuning.runner.worker import counted, fail_lost_trials, run_worker, sampler_seed
from tuning.search.preflight import check_before_trial_0, resolve_direction
from tuning.search.recipe import apply_overrides, load_recipe, write_recipe
from tuning.search.space import load_space, load_space_dict, parse_space
from tuning.storage.backends import (
    HEARTBEAT_S,
    StorageFault,
    check_writable,
    open_readonly,
    open_storage,
    settle_sqlite,
    storage_fault,
)
from tuning.storage.record import check_same_record, recipe_of, record_of

__all__ = ["export_best", "load_study", "run_study"]


def run_epochs(recipe: dict[str, Any]) -> int:
    """The recipe's epochs (lit-optim fit's default 20 when it sets none or -1)."""
    epochs = (recipe.get("trainer") or {}).get("max_epochs")
    return epochs if isinstance(epochs, int) and epochs > 0 else 20


def load_study(name: str, storage_url: str) -> optuna.Study:
    """An existing study, read-only; a missing one is an error (``best`` and ``report`` never
    create or write)."""
    storage = open_readonly(storage_url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if name not in names:
        hint = (
            did_you_mean(name, names, cutoff=0.5) or f"studies there: {', '.join(names) or 'none'}"
        )
        raise ConfigError(f"no study {name!r} in {storage_url}; {hint}")
    return optuna.load_study(study_name=name, storage=storage)


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """What one optimization loop needs: plain values, so that a ``--n-workers`` process
    (spawned: a fresh interpreter) gets it pickled."""

    study_name: str
    storage_url: str
    recipe_path: str
    space_path: str
    run_dir: str
    n_trials: int
    sampler: str
    pruner: str
    seed: int
    accelerator: str
    devices: Any = "auto"
    n_workers: int = 1
    heartbeat_s: float = HEARTBEAT_S
    max_failures: int = MAX_FAILURES
    deadline: float | None = None
    population: int = 1
    threads: int | None = None  # torch threads on CPU; None: torch's own (or a worker's share)
    pbt: PBTSettings | None = None  # --algorithm pbt


def _worker(plan: WorkerPlan, ready: Any = None) -> None:
    """One optimization loop (``tuning.runner.worker``) with its storage, sampler and trainable; the
    body of ``lit-tune run`` and of each ``--n-workers`` process. ``ready`` (a worker process's
    Event) is set once SIGINT/SIGTERM end this loop quietly (``_start_and_join``)."""
    quiet_lightning()  # again: a --n-workers process starts fresh
    if plan.n_workers > 1:
        parent = mp.parent_process()  # the process that spawned this worker
        assert parent is not None and parent.pid is not None
        die_with_parent(parent.pid)
    threads = plan.threads
    if threads is None and plan.n_workers > 1 and plan.accelerator == "cpu":
        # Share the cores instead of every worker spinning up one thread per core.
        threads = max(1, (os.cpu_count() or 1) // plan.n_workers)
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        _optimize(plan, ready)
    finally:  # run in-process (one worker), the caller's own count comes back
        torch.set_num_threads(previous)


def _optimize(plan: WorkerPlan, ready: Any) -> None:
    space = load_space(plan.space_path)
    storage = open_storage(
        plan.storage_url, n_workers=plan.n_workers, heartbeat_s=plan.heartbeat_s, writer=True
    )
    recipe = load_recipe(plan.recipe_path)
    study = optuna.load_study(
        study_name=plan.study_name,
        storage=storage,
        sampler=make_sampler(plan.sampler, space, plan.seed),
        pruner=make_pruner(plan.pruner, run_epochs(recipe)),
    )
    heartbeats = isinstance(storage, optuna.storages.RDBStorage)
    # Trials left RUNNING by a dead process (a killed run, or a worker of this one) are failed
    # and replaced; those of live runs on the same study are theirs to finish.
    fail_lost_trials(study, heartbeats=heartbeats, heartbeat_s=plan.heartbeat_s)
    trainable = Trainable(
        recipe, space, Path(plan.run_dir), accelerator=plan.accelerator, devices=plan.devices
    )
    progress = update = None
    # A bar only where someone watches it: in a log file (not a terminal) its \r redraws
    # would pile up, so there, and with several workers, a line per trial.
    if plan.n_workers == 1 and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(
            total=plan.n_trials,
            desc=f"study {plan.study_name}",
            unit="trial",
            initial=_told_count(study),
        )

        def update(study: optuna.Study, done: int = 1) -> None:
            progress.update(done)
            best = _best_value(study)
            progress.set_postfix_str(f"best {space.metric} {best:.4f}" if best is not None else "")
    else:

        def update(study: optuna.Study, done: int = 1) -> None:  # a line per trial
            count = _told_count(study)
            best = _best_value(study)
            for at in range(max(1, count - done + 1), count + 1):  # a population: its members
                print(
                    f"study {plan.study_name}: {at}/{plan.n_trials} trials"
                    + (f", best {space.metric} {best:.4f}" if best is not None else ""),
                    flush=True,
                )

    try:
        with on_signals():
            if ready is not None:
                ready.set()
            if plan.population > 1:
                from tuning.runner.population import run_population_worker

                if plan.sampler == "tpe":  # a batch of asked trials: not N copies of one point
                    study.sampler = optuna.samplers.TPESampler(seed=plan.seed, constant_liar=True)
                run_population_worker(
                    study,
                    trainable,
                    n_trials=plan.n_trials,
                    population=plan.population,
                    lock_path=Path(plan.run_dir) / ".ask.lock",
                    heartbeats=heartbeats,
                    heartbeat_s=plan.heartbeat_s,
                    progress=update,
                    deadline=plan.deadline,
                    max_failures=plan.max_failures,
                    pbt=plan.pbt,
                )
            else:
                run_worker(
                    study,
                    trainable,
                    n_trials=plan.n_trials,
                    lock_path=Path(plan.run_dir) / ".ask.lock",
                    heartbeats=heartbeats,
                    heartbeat_s=plan.heartbeat_s,
                    max_failures=plan.max_failures,
                    progress=update,
                    deadline=plan.deadline,
                )
    finally:
        if progress is not None:
            progress.close()


def _told_count(study: optuna.Study) -> int:
    """The trials of the budget that have an answer: a running trial (a population's member
    still training, a trial of another process) is not done, so it is not counted as done."""
    return sum(t.state != TrialState.RUNNING for t in counted(study.get_trials(deepcopy=False)))


def _worker_process(plan: WorkerPlan, ready: Any, errors: Any) -> None:
    """``_worker`` as the body of a ``--n-workers`` process: an interruption or a study-stopping
    error ends it with a status, not a traceback; the error's line goes to the parent through
    ``errors`` (a full disk cannot write it into the study), and the parent prints it."""
    try:
        _worker(plan, ready)
    except Interrupted as err:
        raise SystemExit(128 + err.signum) from None
    except Exception as err:  # noqa: BLE001 - a study-stopping error, or the storage's fault
        error = err if isinstance(err, LitOptimError) else storage_fault(err)
        if error is None:
            raise  # a bug keeps its traceback
        errors.put((isinstance(error, StorageFault), str(error)))
        raise SystemExit(2) from None


def _auto_lr_range(
    recipe: dict[str, Any], space: dict[str, Any], accelerator: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The range test on the study's recipe: (what it found, the space with its lr range)."""

    from lit_optim.cli import scratch_objects
    from lit_optim.finders import check_takes_lr, run_range_test

    with tempfile.TemporaryDirectory(prefix="lit-tune-lr-range-") as root:
        path = write_recipe(recipe, Path(root) / "recipe.yaml")
        cli = scratch_objects(
            [str(path)],
            [
                f"--trainer.accelerator={accelerator}",
                "--trainer.max_epochs=-1",
                "--trainer.max_steps=100",
            ],
            root,
        )
        name = check_takes_lr(cli.model)
        result = run_range_test(cli.model, cli.datamodule, cli.trainer)
    if result.suggestion is None:
        raise ConfigError(
            "--lr-range auto: the range test ended too early for a suggestion "
            "(see lit-optim lr-find --config <recipe>)"
        )
    low, high = result.search_range
    params = dict(space.get("params") or {})
    key = next(
        (k for k in (f"model.init_args.{name}", f"model.{name}") if k in params), f"model.{name}"
    )
    params[key] = f"log[{low:.4g}, {high:.4g}]"
    note = (
        f"--lr-range auto: {key} over log[{low:.4g}, {high:.4g}] (suggestion "
        f"{result.suggestion:.4g} / 10 to the divergence point "
        f"{result.divergence if result.divergence is not None else 'none; max_lr'})"
    )
    found = {
        "key": key,
        "suggestion": result.suggestion,
        "divergence": result.divergence,
        "range": [low, high],
        "note": note,
    }
    return found, {**space, "params": params}


def _best_value(study: optuna.Study) -> float | None:
    try:
        return study.best_value
    except ValueError:
        return None


def run_study(
    *,
    recipe: str,
    space: str,
    study_name: str,
    storage_url: str,
    run_dir: Path,
    n_trials: int,
    n_workers: int = 1,
    sampler: str = "tpe",
    pruner: str = "median",
    seed: int = 0,
    accelerator: str = "auto",
    heartbeat_s: float = HEARTBEAT_S,
    max_failures: int = MAX_FAILURES,
    accept_changes: bool = False,
    overrides: dict[str, Any] | None = None,
    timeout_s: float | None = None,
    lr_range: str | None = None,
    population: int | str = 1,
    threads: int | str = "auto",
    algorithm: str = "optuna",
    pbt_interval: int | None = None,
    pbt_quantile: float = QUANTILE,
    workers_note: str | None = None,
) -> optuna.Study:
    """Create or resume ``study_name`` and run it until ``n_trials`` trials have used the budget
    (finished, or failed by their own error).

    A resumed study must have been made with the same recipe, space, metric and direction
    (``tuning.storage.record``), unless ``accept_changes``.

    Args:
        overrides: ``{"trainer.max_epochs": 5, …}`` applied to the recipe for every trial (the
            command line's ``--trainer.max_epochs 5``); the merged recipe is the study's.
        timeout_s: no trial is started after this many seconds (running ones finish).
        lr_range: ``"auto"``: run the lr range test once before trial 0 and search the
            module's lr over [suggestion / 10, divergence point] (``lit-optim lr-find``),
            replacing the space's own lr range; the range is in the study's user attributes.
        threads: torch threads per worker on CPU, or ``"auto"`` (``tuning.runner.threads``).
        workers_note: the line that says how ``n_workers`` was chosen (``lit-tune run
            --n-workers auto``: ``tuning.runner.processes``), printed once the run starts.
        algorithm: ``"optuna"`` (the sampler picks, the pruner stops) or ``"pbt"``: population
            based training inside each population, exploiting every ``pbt_interval`` epochs
            (default: a sixth of the run) with the bottom ``pbt_quantile`` copying the top
            (``tuning.runner.pbt``).
    """
    parsed = load_space(space)  # every check before anything is written
    space_dict = load_space_dict(space)
    recipe_dict = apply_overrides(load_recipe(recipe), overrides or {})
    if lr_range not in (None, "auto"):
        raise ConfigError(f"--lr-range must be auto, got {lr_range!r}")
    if timeout_s is not None:
        check_number("timeout", timeout_s, low=0, low_open=True)
    make_sampler(sampler, parsed, seed)
    make_pruner(pruner)
    if n_trials < 1 or n_workers < 1:
        raise ConfigError(f"n_trials and n_workers must be >= 1, got {n_trials}, {n_workers}")
    check_count("max_failures", max_failures)
    from tuning.runner.population import check_population, choose_population, guard_note
    from tuning.runner.threads import check_threads, choose_threads

    check_population(population, sampler, parsed, n_trials=n_trials)
    check_algorithm(algorithm)
    if algorithm == "pbt":
        check_pbt(
            parsed,
            interval=pbt_interval,
            quantile=pbt_quantile,
            population=population,
            sampler=sampler,
            epochs=run_epochs(recipe_dict),
        )
    check_threads(threads)
    check_before_trial_0(recipe_dict, parsed, trial_trainer_args(accelerator))
    direction = resolve_direction(recipe_dict, parsed, trial_trainer_args(accelerator))
    parsed = dataclasses.replace(parsed, direction=direction)
    found = None
    if lr_range == "auto":
        found, space_dict = _auto_lr_range(recipe_dict, space_dict, accelerator)
        parsed = dataclasses.replace(
            parse_space(space_dict, source=f"{space} with --lr-range auto"),
            direction=parsed.direction,
        )
    population, population_note = choose_population(
        population,
        recipe_dict,
        parsed,
        n_trials=n_trials,
        n_workers=n_workers,
        sampler=sampler,
        accelerator=accelerator,
        trainer_args=trial_trainer_args(accelerator),
    )
    if population > 1:  # how the recipe's NonFiniteGuard acts per member, where it differs
        guard = guard_note(recipe_dict)
        population_note = "\n".join(line for line in (population_note, guard) if line) or None
    pbt = None
    if algorithm == "pbt":
        if population < 2:
            raise ConfigError(
                f"--algorithm pbt needs a population of at least 2; {population_note or 'it is 1'}"
            )
        pbt = PBTSettings(
            pbt_interval or default_interval(run_epochs(recipe_dict)), pbt_quantile, seed
        )
    record = record_of(recipe_dict, space_dict, parsed.metric, direction, algorithm)
    check_writable(run_dir)
    try:  # a SQLite study goes back to the default journal however the run ends
        study, created = _open_study(
            study_name, storage_url, n_workers, record, accept_changes=accept_changes
        )
        for key, value in record.items():
            study.set_user_attr(key, value)
        study.set_user_attr("recipe", str(Path(recipe).resolve()))
        if found is not None:
            study.set_user_attr("lr_range", found)
        if overrides:  # the workers read the merged recipe, kept beside the trials
            recipe = str(
                write_recipe(
                    recipe_dict,
                    Path(run_dir) / "recipe.yaml",
                    header=(
                        f"recipe of study {study_name}: {recipe} with "
                        + " ".join(f"--{k} {v}" for k, v in overrides.items())
                    ),
                )
            )
        if found is not None:  # the workers read the space with the range test's lr range
            space = str(Path(run_dir) / "space.yaml")
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            Path(space).write_text(
                f"# {found['note']}\n" + yaml.safe_dump(space_dict, sort_keys=False)
            )
        deadline = None if timeout_s is None else time.time() + timeout_s
        for note in (workers_note, population_note):
            if note:
                print(note, file=sys.stderr)
        worker_threads, threads_note = choose_threads(threads, n_workers, accelerator, population)
        if threads_note:
            print(threads_note, file=sys.stderr)
        plan = WorkerPlan(
            study_name,
            storage_url,
            str(recipe),
            str(space),
            str(run_dir),
            n_trials,
            sampler,
            pruner,
            seed=sampler_seed(seed, 0, created=created),
            accelerator=accelerator,
            heartbeat_s=heartbeat_s,
            max_failures=max_failures,
            deadline=deadline,
            population=population,
            threads=worker_threads,
            pbt=pbt,
        )
        if n_workers == 1:
            _worker(plan)
        else:
            _spawn(plan, n_workers, seed=seed, created=created)
    finally:
        settle_sqlite(storage_url)
    return optuna.load_study(
        study_name=study_name, storage=open_storage(storage_url, n_workers=n_workers)
    )


def _open_study(
    study_name: str,
    storage_url: str,
    n_workers: int,
    record: dict[str, str],
    *,
    accept_changes: bool,
) -> tuple[optuna.Study, bool]:
    """The study, created or loaded (and whether created here); a resumed one must have
    ``record``'s recipe, space, metric, direction and algorithm, or be refused before anything
    is written."""
    # Not yet in WAL mode: a resume refused below must leave the file byte-identical.
    storage = open_storage(storage_url, n_workers=n_workers, create=True)
    created = study_name not in optuna.study.get_all_study_names(storage)
    if created:
        try:
            study = optuna.create_study(
                study_name=study_name,
                storage=storage,
                direction=StudyDirection[record["direction"].upper()],
            )
        except optuna.exceptions.DuplicatedStudyError:  # another process created it just now
            created = False
    if not created:
        study = optuna.load_study(study_name=study_name, storage=storage)
        check_same_record(study, record, accept_changes=accept_changes, where=storage_url)
    return study, created


def _spawn(plan: WorkerPlan, n_workers: int, *, seed: int, created: bool) -> None:
    """``n_workers`` worker processes on ``plan``'s study, each with its own sampler seed (and
    its own GPU where there are enough); a worker's error is raised here in its own words."""
    gpus = _gpu_count() if plan.accelerator in ("auto", "gpu", "cuda") else 0
    accelerator = plan.accelerator
    own = accelerator if gpus else ("cpu" if accelerator == "auto" else accelerator)
    # Each worker its own GPU when there are enough; its own sampler seed.
    procs, errors = _start_and_join(
        [
            dataclasses.replace(
                plan,
                seed=sampler_seed(seed, rank, created=created),
                devices=[rank % gpus] if gpus else "auto",
                n_workers=n_workers,
                accelerator=own,
            )
            for rank in range(n_workers)
        ]
    )
    if errors:  # e.g. MetricNotLoggedError, a full disk: the first worker's words
        fault, line = errors[0]
        raise (StorageFault if fault else LitOptimError)(line)
    if any(p.exitcode in (1, 2) for p in procs):  # a bug: its traceback is above
        failed = optuna.load_study(
            study_name=plan.study_name,
            storage=open_storage(plan.storage_url, n_workers=n_workers),
        ).get_trials(states=(TrialState.FAIL,))
        reasons = [
            t.user_attrs["fail_reason"]
            for t in failed
            if "fail_reason" in t.user_attrs and not is_rerun(t)
        ]
        raise LitOptimError(reasons[-1] if reasons else "a worker process failed; see above")
    if any(p.exitcode for p in procs):
        # A worker was killed or interrupted on its own (128 + signal, or a negative
        # status): its trial may be RUNNING with no one left to finish it;
        # finish the budget here (the worker loop fails it, its process being gone).
        _worker(
            dataclasses.replace(
                plan,
                seed=sampler_seed(seed, 0, created=False),
                accelerator="cpu" if accelerator == "auto" else accelerator,
            )
        )


def _start_and_join(plans: list[WorkerPlan]) -> tuple[list[Any], list[tuple[bool, str]]]:
    """Start a worker process per plan and wait for them; on SIGTERM/SIGINT pass it on to each
    (each fails its trial), then raise ``Interrupted`` once they are gone.

    A worker starts with SIGINT ignored (spawn's exec keeps an ignored signal ignored, and
    Python then installs no KeyboardInterrupt handler) until its own handlers are up and it
    sets its ``ready`` Event: a Ctrl-C that reaches it while it is still importing would
    otherwise end it with a "Process SpawnProcess-2: Traceback … KeyboardInterrupt". The parent
    passes a signal on to a worker only once it is ready (or gone), so none is lost. SIGTERM
    stays as it is: it is how a worker dies with its parent (``die_with_parent``).

    Returns the processes and each study-stopping error the workers sent: (whether it is a
    ``StorageFault``, its line)."""
    ctx = mp.get_context("spawn")
    procs: list[tuple[Any, Any]] = []
    errors = ctx.SimpleQueue()
    try:
        with on_signals():
            # Set aside for the milliseconds the processes take to start (a Ctrl-C then is lost).
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                for plan in plans:
                    ready = ctx.Event()
                    proc = ctx.Process(target=_worker_process, args=(plan, ready, errors))
                    proc.start()
                    procs.append((proc, ready))
            finally:
                signal.signal(signal.SIGINT, previous)
            for proc, _ in procs:
                proc.join()
    except Interrupted as err:
        for proc, ready in procs:  # the same signal: each trial's fail_reason says what stopped it
            while proc.is_alive() and not ready.wait(0.1):
                pass
            if proc.is_alive():
                os.kill(proc.pid, err.signum)
        for proc, _ in procs:
            proc.join()
        raise
    lines = []
    while not errors.empty():
        lines.append(errors.get())
    return [proc for proc, _ in procs], lines


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def export_best(study: optuna.Study, path: str | Path) -> Path:
    """The recipe the best trial ran, as a file ``lit-optim fit --config`` takes."""
    return export_trial(study, study.best_trial, path, label="best trial")


def export_trial(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, path: str | Path, label: str = "trial"
) -> Path:
    """The recipe ``trial`` ran; for a PBT trial (``--algorithm pbt``) the one that replays
    its line: the first lr and weight decay, and a HyperparameterSchedule of the changes."""
    # The recipe the study ran, as stored in it (the file may have changed since).
    recipe = recipe_of(study) or load_recipe(study.user_attrs["recipe"])
    lineage = trial.user_attrs.get("pbt")
    if lineage is None:
        merged = apply_overrides(recipe, dict(trial.params))
    else:
        space = parse_space(yaml.safe_load(study.user_attrs["space_text"]))
        merged = replay_recipe(recipe, dict(trial.params), lineage, space)
    path = Path(path)
    if not path.parent.is_dir():  # create only what the user asked for: the file
        raise ConfigError(f"cannot export to {path}: folder {path.parent} does not exist")
    how = (
        ""
        if lineage is None
        else f"; population based training, generation {lineage['generation']} of trial "
        f"{lineage['root']}'s line: its lr / weight decay changes replayed"
    )
    header = (
        f"lit-optim fit --config {path}\n\n{label} {trial.number} of study "
        f"{study.study_name}: {study.user_attrs.get('metric', 'value')} = {trial.value:.6f}" + how
    )
    return write_recipe(merged, path, header=header)

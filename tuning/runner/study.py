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
from tuning.runner.population import (
    check_population,
    choose_population,
    guard_note,
    run_population_worker,
)
from tuning.runner.threads import check_threads, choose_threads
from tuning.runner.trainable import Trainable, quiet_lightning, trial_trainer_args
from tuning.runner.worker import counted, fail_lost_trials, run_worker, sampler_seed
from tuning.search.preflight import check_before_trial_0, resolve_direction
from tuning.search.recipe import apply_overrides, load_recipe, write_recipe
from tuning.search.space import SearchSpace, load_space, load_space_dict, parse_space
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

__all__ = ["StudyRequest", "export_best", "load_study", "run_study"]


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
    if result.search_range is None:  # no suggestion
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


@dataclasses.dataclass(frozen=True)
class StudyRequest:
    """What a run of a study asks for (``lit-tune run``'s options, ``compare``'s per-entry
    studies): ``run_study`` checks it all before anything is written, opens the study, then
    runs its workers until ``n_trials`` trials have used the budget.

    Attributes:
        overrides: ``{"trainer.max_epochs": 5, …}`` applied to the recipe for every trial (the
            command line's ``--trainer.max_epochs 5``); the merged recipe is the study's.
        accept_changes: continue a study made with another recipe, space, metric, direction
            or algorithm (``tuning.storage.record``); without it such a resume is refused.
        timeout_s: no trial is started after this many seconds (running ones finish).
        lr_range: ``"auto"``: run the lr range test once before trial 0 and search the
            module's lr over [suggestion / 10, divergence point] (``lit-optim lr-find``),
            replacing the space's own lr range; the range is in the study's user attributes.
        population: trials trained at once as one vectorized model, or ``"auto"``
            (``tuning.runner.population.choose_population``).
        threads: torch threads per worker on CPU, or ``"auto"`` (``tuning.runner.threads``).
        algorithm: ``"optuna"`` (the sampler picks, the pruner stops) or ``"pbt"``: population
            based training inside each population, exploiting every ``pbt_interval`` epochs
            (default: a sixth of the run) with the bottom ``pbt_quantile`` copying the top
            (``tuning.runner.pbt``).
        workers_note: the line that says how ``n_workers`` was chosen (``lit-tune run
            --n-workers auto``: ``tuning.runner.processes``), printed once the run starts.
    """

    recipe: str
    space: str
    study_name: str
    storage_url: str
    run_dir: Path
    n_trials: int
    n_workers: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    accelerator: str = "auto"
    heartbeat_s: float = HEARTBEAT_S
    max_failures: int = MAX_FAILURES
    accept_changes: bool = False
    overrides: dict[str, Any] | None = None
    timeout_s: float | None = None
    lr_range: str | None = None
    population: int | str = 1
    threads: int | str = "auto"
    algorithm: str = "optuna"
    pbt_interval: int | None = None
    pbt_quantile: float = QUANTILE
    workers_note: str | None = None

    def __post_init__(self) -> None:  # a caller's str folder works as a Path
        object.__setattr__(self, "run_dir", Path(self.run_dir))


@dataclasses.dataclass(frozen=True)
class _Checked:
    """A request as its checks leave it: the merged recipe, the space (its direction
    resolved, its lr range the range test's under ``lr_range: auto``), the population size and
    the line that says so, PBT's settings, and the record a resumed study must match."""

    recipe: dict[str, Any]
    space: SearchSpace
    space_dict: dict[str, Any]
    found_lr_range: dict[str, Any] | None
    population: int
    population_note: str | None
    pbt: PBTSettings | None
    record: dict[str, str]


def run_study(request: StudyRequest) -> optuna.Study:
    """Create or resume ``request.study_name`` and run it until ``request.n_trials`` trials
    have used the budget (finished, or failed by their own error): check, open, run."""
    checked = _check(request)
    check_writable(request.run_dir)
    try:  # a SQLite study goes back to the default journal however the run ends
        study, created = _open_study(
            request.study_name,
            request.storage_url,
            request.n_workers,
            checked.record,
            accept_changes=request.accept_changes,
        )
        plan = _write_plan(request, checked, study, created)
        if request.n_workers == 1:
            _worker(plan)
        else:
            _spawn(plan, request.n_workers, seed=request.seed, created=created)
    finally:
        settle_sqlite(request.storage_url)
    return optuna.load_study(
        study_name=request.study_name,
        storage=open_storage(request.storage_url, n_workers=request.n_workers),
    )


def _check(request: StudyRequest) -> _Checked:
    """Every check of ``request``, before anything is written: one line each (ConfigError)."""
    space = load_space(request.space)
    recipe = apply_overrides(load_recipe(request.recipe), request.overrides or {})
    if request.lr_range not in (None, "auto"):
        raise ConfigError(f"--lr-range must be auto, got {request.lr_range!r}")
    if request.timeout_s is not None:
        check_number("timeout", request.timeout_s, low=0, low_open=True)
    make_sampler(request.sampler, space, request.seed)
    make_pruner(request.pruner)
    if request.n_trials < 1 or request.n_workers < 1:
        raise ConfigError(
            f"n_trials and n_workers must be >= 1, got {request.n_trials}, {request.n_workers}"
        )
    check_count("max_failures", request.max_failures)
    check_population(request.population, request.sampler, space, n_trials=request.n_trials)
    check_algorithm(request.algorithm)
    if request.algorithm == "pbt":
        check_pbt(
            space,
            interval=request.pbt_interval,
            quantile=request.pbt_quantile,
            population=request.population,
            sampler=request.sampler,
            epochs=run_epochs(recipe),
        )
    check_threads(request.threads)
    trainer_args = trial_trainer_args(request.accelerator)
    check_before_trial_0(recipe, space, trainer_args)
    direction = resolve_direction(recipe, space, trainer_args)
    space = dataclasses.replace(space, direction=direction)
    space_dict, found = load_space_dict(request.space), None
    if request.lr_range == "auto":
        found, space_dict = _auto_lr_range(recipe, space_dict, request.accelerator)
        space = dataclasses.replace(
            parse_space(space_dict, source=f"{request.space} with --lr-range auto"),
            direction=direction,
        )
    population, note = _population(request, recipe, space)
    pbt = None
    if request.algorithm == "pbt":
        if population < 2:
            raise ConfigError(
                f"--algorithm pbt needs a population of at least 2; {note or 'it is 1'}"
            )
        interval = request.pbt_interval or default_interval(run_epochs(recipe))
        pbt = PBTSettings(interval, request.pbt_quantile, request.seed)
    record = record_of(recipe, space_dict, space.metric, direction, request.algorithm)
    return _Checked(recipe, space, space_dict, found, population, note, pbt, record)


def _population(
    request: StudyRequest, recipe: dict[str, Any], space: SearchSpace
) -> tuple[int, str | None]:
    """The population size and the lines that say how it was chosen and how the recipe's
    NonFiniteGuard acts per member, where that differs from a trial run alone."""
    population, note = choose_population(
        request.population,
        recipe,
        space,
        n_trials=request.n_trials,
        n_workers=request.n_workers,
        sampler=request.sampler,
        accelerator=request.accelerator,
        trainer_args=trial_trainer_args(request.accelerator),
    )
    if population > 1:
        guard = guard_note(recipe)
        note = "\n".join(line for line in (note, guard) if line) or None
    return population, note


def _write_plan(
    request: StudyRequest, checked: _Checked, study: optuna.Study, created: bool
) -> WorkerPlan:
    """Record the request on the opened ``study`` (its record, recipe, lr range), write the
    merged recipe and space the workers read, say how many workers, members and threads
    train, and return the workers' plan."""
    recipe, space = request.recipe, request.space
    for key, value in checked.record.items():
        study.set_user_attr(key, value)
    study.set_user_attr("recipe", str(Path(recipe).resolve()))
    if checked.found_lr_range is not None:
        study.set_user_attr("lr_range", checked.found_lr_range)
    if request.overrides:  # the workers read the merged recipe, kept beside the trials
        header = f"recipe of study {request.study_name}: {recipe} with " + " ".join(
            f"--{k} {v}" for k, v in request.overrides.items()
        )
        recipe = str(write_recipe(checked.recipe, request.run_dir / "recipe.yaml", header=header))
    if checked.found_lr_range is not None:  # the workers read the space with its lr range
        space = str(request.run_dir / "space.yaml")
        request.run_dir.mkdir(parents=True, exist_ok=True)
        Path(space).write_text(
            f"# {checked.found_lr_range['note']}\n"
            + yaml.safe_dump(checked.space_dict, sort_keys=False)
        )
    deadline = None if request.timeout_s is None else time.time() + request.timeout_s
    for note in (request.workers_note, checked.population_note):
        if note:
            print(note, file=sys.stderr)
    threads, threads_note = choose_threads(
        request.threads, request.n_workers, request.accelerator, checked.population
    )
    if threads_note:
        print(threads_note, file=sys.stderr)
    return WorkerPlan(
        request.study_name,
        request.storage_url,
        recipe,
        space,
        str(request.run_dir),
        request.n_trials,
        request.sampler,
        request.pruner,
        seed=sampler_seed(request.seed, 0, created=created),
        accelerator=request.accelerator,
        heartbeat_s=request.heartbeat_s,
        max_failures=request.max_failures,
        deadline=deadline,
        population=checked.population,
        threads=threads,
        pbt=checked.pbt,
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

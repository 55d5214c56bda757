"""``lit-tune run --population N``: up to N asked trials trained at once as one vectorized
model (``lit_optim.population.PopulationTask``), each member reporting to its own trial.

The loop asks up to N trials (TPE with ``constant_liar`` so a batch is not N copies of one
point), groups them by everything that must be shared, and trains each group of two or more
as one population. Two implementations, one interface (``member_metrics``, ``alive``,
``dropped``, ``drop``):

- a user's own LightningModule: ``lit_optim.population.ModulePopulation`` (torch.func over the
  module's own steps). Members may differ only in the scalar init args a module hands to its
  optimizer and schedule (``MODULE_SCALARS``: lr, weight_decay, momentum, betas, eps, *_lr,
  warmup_*, optimizer_kwargs, scheduler_kwargs); any other init arg differing puts trials in
  separate groups, since one template runs every member's step;
- ClassificationTask: ``PopulationTask`` (batched matmuls; faster on its MLP chain).

A trial alone in its group, or one a population cannot train (a step that cannot run under
vmap, an optimizer without a population rule, a callback that cannot act per member …), runs
on the sequential path with one line that says why; every batch says how many trained
together. Budget,
failure and resume rules are the sequential loop's: every asked trial is told COMPLETE,
PRUNED (with ``pruned_reason``) or FAIL (with ``fail_reason``) before the next batch is asked;
a member that is pruned or diverges is told the epoch it leaves, not when its population ends.
"""

from __future__ import annotations

import contextlib
import fnmatch
import copy
import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from filelock import FileLock
from optuna.trial import TrialState

from lit_optim import ConfigError, LitOptimError
from lit_optim.population import POPULATION_OPTIMIZERS
from tuning.runner.interrupt import Interrupted, held_signals, interrupted, raise_if_interrupted
from tuning.runner.objective import Objective
from tuning.runner.owners import claim, fail_for_rerun
from tuning.storage.backends import storage_fault
from tuning.storage.optuna_private import heartbeat, report_all
from tuning.search.preflight import MetricCheck, MetricNotLoggedError, build_trial_objects
from tuning.search.recipe import apply_overrides, write_recipe
from tuning.search.space import SearchSpace
from tuning.runner.algorithms import MAX_FAILURES
from tuning.runner.worker import (
    TooManyFailuresError,
    _evaluate,
    counted,
    fail_for_rerun_if_possible,
    over_budget,
    tell,
    wait_for_running,
)

__all__ = ["run_population_worker"]

_MEMBER_KEYS = ("lr", "weight_decay", "optimizer_kwargs")
_TASK = ("lit_optim.ClassificationTask", "lit_optim.training.task.ClassificationTask")
# Init args of a user's module that may differ within one population: what a module hands to
# its optimizer and schedule (read there, from each member's own configure_optimizers).
MODULE_SCALARS = ("lr", "weight_decay", "momentum", "betas", "eps", "optimizer_kwargs",
                  "scheduler_kwargs")
_MODULE_SCALAR_PATTERNS = ("*_lr", "lr_*", "warmup_*")


def _is_module_scalar(key: str) -> bool:
    return key in MODULE_SCALARS or any(fnmatch.fnmatch(key, p) for p in _MODULE_SCALAR_PATTERNS)


def _model_args(recipe: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    model = recipe.get("model") or {}
    if "class_path" in model:
        return model["class_path"], dict(model.get("init_args") or {})
    return "lit_optim.ClassificationTask", dict(model)


def _structure(recipe: dict[str, Any]) -> str:
    shared = copy.deepcopy(recipe)
    class_path, args = _model_args(shared)
    for key in list(args):
        if key in _MEMBER_KEYS if class_path in _TASK else _is_module_scalar(key):
            args.pop(key)
    shared["model"] = {"class_path": class_path, "init_args": args}
    return json.dumps(shared, sort_keys=True, default=str)


def why_not_population(recipe: dict[str, Any]) -> str | None:
    """Why this trial's recipe cannot join a population, or None if it can. For a user's
    module what its steps do is known only when they run (NotVmappable then)."""
    class_path, args = _model_args(recipe)
    if class_path not in _TASK:
        return _why_not_module_population(recipe)
    optimizer = args.get("optimizer", "adam")
    if optimizer not in POPULATION_OPTIMIZERS:
        return f"optimizer {optimizer!r} has no population rule"
    if args.get("param_groups") or args.get("lr_scaling", "none") != "none":
        return "param_groups / lr_scaling are not supported in a population"
    return _why_not_trainer(recipe.get("trainer") or {})


def _why_not_module_population(recipe: dict[str, Any]) -> str | None:
    trainer = recipe.get("trainer") or {}
    reason = _why_not_trainer(trainer)
    if reason is None and (trainer.get("accumulate_grad_batches") or 1) != 1:
        return "gradient accumulation is not supported in a population"
    return reason


# The callbacks a population applies per member: clipping and layer diagnostics through the
# callbacks' member-axis forms (lit_optim.population.health), the guard's rule by the
# population itself (a diverged member leaves, as its trial would be pruned). Any other
# callback would see one model where the trials have N.
PER_MEMBER_CALLBACKS = ("GradientClipper", "LayerDiagnostics", "NonFiniteGuard")
# NonFiniteGuard actions a population applies as 'stop' to the one member that went bad, and
# why: the update rules keep one step count for all members (Adam's bias correction), so one
# member cannot go back or skip alone.
_GUARD_ACTIONS_AS_STOP = {
    "skip": "dropping one member's step alone would need its own step count and a copy of its "
            "optimizer state at every step",
    "rollback": "rolling one member back would need its own snapshots of its weights, optimizer "
                "state and step count",
}


def _why_not_trainer(trainer: dict[str, Any]) -> str | None:
    """What a recipe's Trainer asks that no population does: a callback that cannot act per
    member, or several processes."""
    for name, _ in _recipe_callbacks(trainer):
        if name.rsplit(".", 1)[-1] not in PER_MEMBER_CALLBACKS:
            return (f"callback {name} is not supported in a population (those that act per "
                    f"member: {', '.join(PER_MEMBER_CALLBACKS)})")
    if trainer.get("strategy", "auto") not in ("auto", None):
        return "a population runs in one process"
    return None


def _recipe_callbacks(trainer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(class path, init args) of each callback in a recipe's ``trainer`` section."""
    return [(cb.get("class_path", ""), dict(cb.get("init_args") or {})) if isinstance(cb, dict)
            else (str(cb), {}) for cb in trainer.get("callbacks") or []]


def guard_note(recipe: dict[str, Any]) -> str | None:
    """The line that says how a population applies the recipe's NonFiniteGuard, where its
    action has no per-member form (raise and stop end the member's trial, as they end a trial
    run alone)."""
    for name, init_args in _recipe_callbacks(recipe.get("trainer") or {}):
        action = init_args.get("action", "raise")
        if name.rsplit(".", 1)[-1] == "NonFiniteGuard" and action in _GUARD_ACTIONS_AS_STOP:
            return (f"NonFiniteGuard action {action!r} acts as 'stop' per member in a population:"
                    f" a member whose loss goes non-finite or spikes leaves it, its trial pruned "
                    f"as diverged ({_GUARD_ACTIONS_AS_STOP[action]}); --population 1 keeps "
                    f"{action!r}")
    return None


def _per_member_options(trainer: L.Trainer, trials: list[optuna.Trial]) -> dict[str, Any]:
    """What a population takes over from the trials' Trainer: its clipping (Lightning refuses
    its own under manual optimization, so it is applied per member), the recipe's guard's
    spike rule (a trial without a guard gets the objective's, a factor of 10), and the
    members' names for what they log (their trials)."""
    from lit_optim.callbacks import NonFiniteGuard

    guard = next((cb for cb in trainer.callbacks if isinstance(cb, NonFiniteGuard)), None)
    clip, trainer.gradient_clip_val = trainer.gradient_clip_val, None
    return {"gradient_clip_val": clip,
            "gradient_clip_algorithm": trainer.gradient_clip_algorithm or "norm",
            "loss_spike_factor": 10.0 if guard is None else guard.loss_spike_factor,
            "member_names": [f"trial_{t.number}" for t in trials]}


class _Report(L.Callback):
    """After each validation epoch: every member reports to its trial; pruned ones leave, and
    so do diverged ones, each told to Optuna the moment it leaves (``leave``: its index and
    ``pruned_reason``), not when the population ends: the sampler and the pruner see it at
    once, and an interruption later cannot turn it into a failed trial."""

    def __init__(self, study: optuna.Study, trials: list[optuna.Trial], metric: str,
                 leave: Callable[[int, str], None]) -> None:
        self.study, self.trials, self.metric, self.leave = study, trials, metric, leave
        self.left: set[int] = set()

    def _tell_leavers(self, reasons: dict[int, str]) -> None:
        for index, reason in reasons.items():
            if index not in self.left:
                self.left.add(index)
                self.leave(index, reason)

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        directions = getattr(pl_module, "directions", None)  # a ModulePopulation's
        if directions is not None:
            check = MetricCheck(self.metric, self.study.direction.name.lower())
            directions.when_logged(self.metric, check.direction_logged)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        self._tell_diverged(pl_module)  # dropped at the end of the last epoch
        if trainer.current_epoch == 1:  # after the first epoch, as MetricCheck checks a trial
            self.check_logged(pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self._tell_diverged(pl_module)
        self.check_logged(pl_module)

    def _tell_diverged(self, pl_module) -> None:
        self._tell_leavers({index: f"diverged: {reason}"
                            for index, reason in pl_module.dropped.items()})

    def check_logged(self, pl_module) -> None:
        if pl_module.alive and self.metric not in pl_module.member_metrics:
            raise MetricNotLoggedError.naming(self.metric, pl_module.module_name,
                                              pl_module.member_metrics)

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or self.metric not in pl_module.member_metrics:
            return
        import torch

        values = pl_module.member_metrics[self.metric].tolist()  # one host read per epoch
        epoch = trainer.current_epoch
        report_all(self.study, [(self.trials[index], value) for index, value
                                in zip(pl_module.alive, values) if math.isfinite(value)], epoch)
        should_prune = self._judge()
        keep, pruned = [], {}
        for index, value in zip(pl_module.alive, values):
            trial = self.trials[index]
            stays = not (math.isfinite(value) and should_prune(trial))
            if not stays:
                pruned[index] = f"pruned at epoch {trainer.current_epoch} ({self.metric} {value:.4g})"
            keep.append(stays)
        pl_module.drop(torch.tensor(keep), reason="pruned")
        self._tell_leavers(pruned)


    def _judge(self):
        """``trial -> should it be pruned`` for this epoch. ``Trial.should_prune`` reads the
        whole study for every member (Optuna re-reads all running trials each time: 32 members
        of a median-pruned digits study spent 95% of their run there). A pruner that only
        reads (median, percentile) gets one read of the study per epoch instead, taken after
        every member reported, so it decides as ``should_prune`` would; a pruner that writes
        while it judges (successive halving, hyperband record rungs) is asked per member."""
        pruner = self.study.pruner
        if isinstance(pruner, optuna.pruners.NopPruner):
            return lambda trial: False
        if not isinstance(pruner, optuna.pruners.PercentilePruner):
            return lambda trial: trial.should_prune()
        snapshot = _StudySnapshot(self.study, self.study.get_trials(deepcopy=False))
        frozen = {t.number: t for t in snapshot.get_trials(deepcopy=False)}
        return lambda trial: pruner.prune(snapshot, frozen[trial.number])


class _StudySnapshot:
    """A study as of one ``get_trials`` read, for a pruner that only reads it."""

    def __init__(self, study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> None:
        self._study, self._trials = study, trials

    def get_trials(self, deepcopy: bool = True, states=None) -> list[optuna.trial.FrozenTrial]:
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    @property
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:  # direction, directions …: the study's own
        return getattr(self._study, name)


def _write_recipes(objective: Objective, trials: list[optuna.Trial],
                   recipes: list[dict[str, Any]]) -> list[Path]:
    numbers = ", ".join(str(t.number) for t in trials)
    return [write_recipe(recipe, objective.run_dir / f"trial_{trial.number}" / "recipe.yaml",
                         header=f"trial {trial.number} (population of {len(trials)}: trials {numbers})")
            for trial, recipe in zip(trials, recipes)]


def _train_population(objective: Objective, trials: list[optuna.Trial],
                      recipes: list[dict[str, Any]], leave: Callable[[int, str], None]
                      ) -> list[tuple[TrialState, float | None] | None]:
    class_path, _ = _model_args(recipes[0])
    if class_path not in _TASK:
        return _train_module_population(objective, trials, recipes, leave)
    from lit_optim.population import PopulationTask

    first, *_ = _write_recipes(objective, trials, recipes)
    cli = build_trial_objects(first, *objective.trainer_args(first.parent))
    _, args = _model_args(recipes[0])
    members = []
    for recipe in recipes:
        _, member = _model_args(recipe)
        members.append({"lr": member.get("lr", 1e-3), "weight_decay": member.get("weight_decay", 0.0),
                        **(member.get("optimizer_kwargs") or {})})
    task = cli.model
    model = PopulationTask(task.hparams.input_shape, task.hparams.num_classes, members,
                           network=args.get("network", "mlp"),
                           network_kwargs=args.get("network_kwargs"),
                           optimizer=args.get("optimizer", "adam"),
                           scheduler=args.get("scheduler", "constant"),
                           scheduler_kwargs=args.get("scheduler_kwargs"),
                           seed=int(recipes[0].get("seed_everything") or 0),
                           decay_bias_and_norm=bool(args.get("decay_bias_and_norm", False)),
                           **_per_member_options(cli.trainer, trials))
    return _fit_population(objective, trials, model, cli.trainer, cli.datamodule, leave)


def _train_module_population(objective: Objective, trials: list[optuna.Trial],
                             recipes: list[dict[str, Any]], leave: Callable[[int, str], None]
                             ) -> list[tuple[TrialState, float | None] | None]:
    """Each trial's own module (built from its recipe, seeded as its one-by-one trial) is a
    member of one ModulePopulation; the first trial's Trainer and data module serve them all."""
    import random

    import numpy as np
    import torch

    from lit_optim.population import ModulePopulation

    paths = _write_recipes(objective, trials, recipes)
    first = build_trial_objects(paths[0], *objective.trainer_args(paths[0].parent))
    # The random state a one-by-one trial starts fitting from (after building its module):
    # restored after the other members are built, so the population sees the same batches.
    after_build = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    members = [first.model] + [_member(first, recipe) or
                               build_trial_objects(path, *objective.trainer_args()).model
                               for path, recipe in zip(paths[1:], recipes[1:])]
    trainer = first.trainer
    model = ModulePopulation(members, **_per_member_options(trainer, trials))
    torch.set_rng_state(after_build[0])
    np.random.set_state(after_build[1])
    random.setstate(after_build[2])
    return _fit_population(objective, trials, model, trainer, first.datamodule, leave)


def _member(first: Any, recipe: dict[str, Any]) -> L.LightningModule | None:
    """The module of ``recipe`` as its own LightningCLI would build it: the first member's
    parsed init args with this trial's scalars, under the same seed. A parse per member cost
    0.14 s, 4 of a 32-member population's 11 s. None where an init arg is itself a class
    (``class_path``): then the caller builds it through the CLI."""
    args = first.config["model"]["init_args"]
    args = args.as_dict() if hasattr(args, "as_dict") else dict(args or {})
    if any(isinstance(value, dict) and "class_path" in value for value in args.values()):
        return None
    _, own = _model_args(recipe)
    args.update({key: value for key, value in own.items() if _is_module_scalar(key)})
    seed = first.config.get("seed_everything")
    if seed is not None and seed is not False:
        L.seed_everything(seed, workers=True, verbose=False)  # as the CLI seeds before building
    return type(first.model)(**args)


def _fit_population(objective: Objective, trials: list[optuna.Trial], model: Any,
                    trainer: L.Trainer, datamodule: Any, leave: Callable[[int, str], None]
                    ) -> list[tuple[TrialState, float | None] | None]:
    """Train the population; a member that leaves is told through ``leave`` at once (None in
    the result), the ones that finish are returned, each COMPLETE with its value."""
    from lit_optim.callbacks import NonFiniteGuard

    # The population judges each member itself: a guard would act on all of them at once.
    trainer.callbacks[:] = [cb for cb in trainer.callbacks if not isinstance(cb, NonFiniteGuard)]
    report = _Report(trials[0].study, trials, objective.space.metric, leave)
    trainer.callbacks.append(report)
    with warnings.catch_warnings():
        # The population updates its members itself (manual optimization): no optimizer for
        # Lightning, on purpose.
        warnings.filterwarnings("ignore", message=r".*configure_optimizers.* returned .None.")
        trainer.fit(model, datamodule=datamodule)
    out: list[tuple[TrialState, float | None] | None] = []
    for index, trial in enumerate(trials):
        if index in report.left:
            out.append(None)
            continue
        at = model.alive.index(index)
        for name, values in model.member_metrics.items():
            trial.set_user_attr(name, float(values[at]))
        out.append((TrialState.COMPLETE, float(model.member_metrics[objective.space.metric][at])))
    return out


def run_population_worker(study: optuna.Study, objective: Objective, *, n_trials: int,
                          population: int, lock_path: Path, heartbeats: bool = False,
                          heartbeat_s: float = 10.0, progress: Any = None,
                          deadline: float | None = None, max_failures: int = MAX_FAILURES) -> None:
    import time

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    failures: list[bool] = []  # per told trial, in order: did it fail
    waited: set[int] = set()
    while True:
        raise_if_interrupted()
        if deadline is not None and time.time() >= deadline:
            return
        trials, overrides = [], []
        try:
            with FileLock(lock_path), held_signals():  # a signal waits for the batch's claims
                known = study.get_trials(deepcopy=False)
                left = n_trials - len(counted(known))
                if isinstance(study.sampler, optuna.samplers.GridSampler):
                    left = min(left, _grid_points_left(objective.space, known))
                size = max(0, min(population, left))
                if size:
                    trials, overrides = _ask_batch(study, objective.space, objective.recipe, size)
                    kept = [i for i, t in enumerate(trials) if not over_budget(study, t, n_trials)]
                    trials, overrides = [trials[i] for i in kept], [overrides[i] for i in kept]
        except Interrupted as err:
            for trial in trials:
                fail_for_rerun(study, trial, str(err))  # not counted: run again
            raise
        if not trials:
            # Trials still RUNNING elsewhere: wait for them to finish or be found dead and
            # replace them, as the sequential loop does, rather than end the study short.
            if wait_for_running(study, heartbeats=heartbeats, heartbeat_s=heartbeat_s,
                                waited=waited):
                continue
            return
        recipes = [apply_overrides(objective.recipe, chosen) for chosen in overrides]
        groups: dict[str, list[int]] = {}
        for i, recipe in enumerate(recipes):
            groups.setdefault(_structure(recipe), []).append(i)
        told = _Told(failures, max_failures)
        # Every asked trial beats its heartbeat until told, also while it waits for its
        # group's turn: a killed run's trials all go stale and are replaced.
        with contextlib.ExitStack() as beating:
            for trial in trials:
                beating.enter_context(heartbeat(study, trial))
            try:
                for indices in groups.values():
                    _run_group(study, objective, [trials[i] for i in indices],
                               [recipes[i] for i in indices], told, progress)
            except BaseException as err:  # an interruption or a bug: no trial left RUNNING
                untold = [trial for trial in trials if trial.number not in told]
                fault = storage_fault(err) if isinstance(err, Exception) else None
                if fault is not None:  # a full disk: the trials did not fail, the disk did
                    fail_for_rerun_if_possible(study, untold, str(fault))
                    raise fault from err
                for trial in untold:
                    if isinstance(err, (Interrupted, KeyboardInterrupt, TooManyFailuresError)) \
                            or interrupted():
                        fail_for_rerun(study, trial, str(err) or type(err).__name__)
                    else:
                        trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
                        tell(study, trial, TrialState.FAIL, None)
                raise


def _run_group(study: optuna.Study, objective: Objective, trials: list[optuna.Trial],
               recipes: list[dict[str, Any]], told: _Told, progress: Any) -> None:
    """One group of trials that share a structure: as a population, or one by one (alone in
    its group, or not trainable as a population: said in one line)."""
    reason = why_not_population(recipes[0]) if len(trials) > 1 else None
    results = None
    if len(trials) > 1 and reason is None:
        print(f"trials {', '.join(str(t.number) for t in trials)} train as one population of "
              f"{len(trials)}", file=sys.stderr)

        def leave(index: int, reason: str) -> None:  # pruned or diverged: told at once
            trials[index].set_user_attr("pruned_reason", reason)
            _tell(study, trials[index], TrialState.PRUNED, None, told, progress)

        try:
            results = _train_population(objective, trials, recipes, leave)
        except MetricNotLoggedError:
            raise
        except LitOptimError as err:  # NotVmappable, members that differ in nesterov …
            reason = str(err)
    if results is None:
        if reason:
            print(f"trials {', '.join(str(t.number) for t in trials)} run one by one: {reason}",
                  file=sys.stderr)
        for trial in trials:  # told one by one: a later one's interruption keeps this result
            if trial.number in told:  # left the population before it gave up
                continue
            state, value = _evaluate(objective, trial)
            _tell(study, trial, state, value, told, progress)
        return
    finished = [(trial, result) for trial, result in zip(trials, results) if result is not None]
    for trial, (state, value) in finished:
        _tell(study, trial, state, value, told, None)
    if progress is not None and finished:
        progress(study, len(finished))  # one best-value query for those that finished together


class _Told(dict):
    """{trial number: state} of a batch's told trials, and the sequential loop's rule over
    all told so far: ``max_failures`` failed trials in a row stop the study."""

    def __init__(self, failures: list[bool], max_failures: int) -> None:
        super().__init__()
        self.failures, self.max_failures = failures, max_failures

    def record(self, study: optuna.Study, trial: optuna.Trial, state: TrialState) -> None:
        self[trial.number] = state
        self.failures.append(state == TrialState.FAIL)
        in_a_row = next((i for i, failed in enumerate(reversed(self.failures)) if not failed),
                        len(self.failures))
        if in_a_row >= self.max_failures:
            reason = study.trials[trial.number].user_attrs.get("fail_reason", "?")
            raise TooManyFailuresError(
                f"{in_a_row} trials failed in a row, the last (trial {trial.number}) with "
                f"{reason}; fix the recipe or search space (or raise --max-failures)")


def _tell(study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None,
          told: _Told, progress: Any) -> None:
    tell(study, trial, state, value)  # an exhausted grid: the next ask finds no point left
    told.record(study, trial, state)
    if progress is not None:
        progress(study)


# The largest population ``auto`` picks: on 2 CPU cores the digits MLP's trials/min stops
# growing near 32 (bench/population_throughput.py); a GPU keeps gaining far beyond.
AUTO_CAP = {"cpu": 32, "cuda": 256}


def check_population(population: int | str, sampler: str, space: SearchSpace | None = None,
                     n_trials: int | None = None) -> None:
    if population == "auto":
        return
    if isinstance(population, bool) or not isinstance(population, int) or population < 1:
        raise ConfigError(f"--population must be auto or an integer >= 1, got {population!r}")
    if n_trials is not None and population > n_trials:
        raise ConfigError(f"--population {population} is larger than the budget of {n_trials} "
                          f"trial{'s' if n_trials != 1 else ''}: use --population {n_trials} or "
                          "less (or auto)")
    if population > 1 and sampler == "grid" and space is not None:
        size = _grid_size(space.grid())
        if population > size:
            raise ConfigError(f"--population {population} is larger than the grid, which has "
                              f"{size} point{'s' if size != 1 else ''}: use --population {size} "
                              "or less, or add values to the space's lists")


def _grid_points_left(space: SearchSpace, trials: list[optuna.trial.FrozenTrial]) -> int:
    """Grid points no trial has taken yet (finished, failed or running). GridSampler asked for
    more than that hands out running points again (it must see every point finish before it
    stops the study), so a population would train duplicates; its own count is private, so the
    points are counted here from the trials' public params."""
    grid = space.grid()
    choices = [set(values) for values in grid.values()]  # Optuna's choices are hashable
    taken = {point for point in (tuple(t.params.get(path) for path in grid) for t in trials
                                 if t.state != TrialState.WAITING)
             if all(value in values for value, values in zip(point, choices))}
    return _grid_size(grid) - len(taken)


def _grid_size(grid: dict[str, list[Any]]) -> int:
    return math.prod(len(values) for values in grid.values())


def choose_population(population: int | str, recipe: dict[str, Any], space: SearchSpace, *,
                      n_trials: int, n_workers: int, sampler: str, accelerator: str,
                      trainer_args: list[str]) -> tuple[int, str | None]:
    """``--population auto``: how many trials train at once, and the line that says so (the
    caller prints it once the run starts: a refused run says only why). One by one
    where the recipe cannot form populations; else a quarter of the budget (per worker, so
    the sampler sees 4 rounds of results), bounded by the grid, by ``AUTO_CAP`` for the
    device, and by a quarter of the device's free memory over what one member holds (weights,
    gradients and two optimizer states)."""
    size, note = _choose_size(population, recipe, space, n_trials=n_trials, n_workers=n_workers,
                              sampler=sampler, accelerator=accelerator, trainer_args=trainer_args)
    guard = guard_note(recipe) if size > 1 else None
    return size, "\n".join(line for line in (note, guard) if line) or None


def _choose_size(population: int | str, recipe: dict[str, Any], space: SearchSpace, *,
                 n_trials: int, n_workers: int, sampler: str, accelerator: str,
                 trainer_args: list[str]) -> tuple[int, str | None]:
    if population != "auto":
        return population, None
    reason = why_not_population(apply_overrides(recipe, space.first_values()))
    if reason is not None:
        return 1, f"population auto: 1, trials run one by one ({reason})"
    import torch

    device = "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"
    # At least 4 batches: a sampler learns from results between batches only. Measured on
    # digits, lr x wd, 64 trials, 3 TPE seeds (bench/population_throughput.py --quality): best
    # val_acc 0.9849 one by one, 0.9803 at N=32 and 0.9779 at N=16, i.e. 1-2 of the ~290
    # validation images: a small cost that this bound does not remove on so small a budget.
    bounds = {"4 sampler rounds": max(2, math.ceil(n_trials / n_workers / 4)),
              device: AUTO_CAP[device]}
    if sampler == "grid":
        bounds["grid points"] = _grid_size(space.grid())
    from tuning.search.preflight import parse_recipe

    module = parse_recipe(apply_overrides(recipe, space.first_values()), trainer_args).model
    member = sum(4 * p.numel() * p.element_size() for p in module.parameters())
    member += sum(b.numel() * b.element_size() for b in module.buffers())
    if device == "cuda":
        free = torch.cuda.mem_get_info()[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    bounds["memory"] = max(1, free // 4 // max(member, 1))
    limit = min(bounds, key=bounds.get)
    size = bounds[limit]
    if size < 2:
        return 1, f"population auto: 1, trials run one by one (bounded by {limit})"
    return size, (f"population auto: {size} trials train at once as one vectorized model "
                  f"(bounded by {limit}; --population 1 trains them one by one)")


def member_scalar(recipe: dict[str, Any], path: str) -> bool:
    """Whether search-space ``path`` may differ between the members of one population (a
    scalar the module hands to its optimizer and schedule); otherwise it is structure."""
    parts = path.split(".")
    if parts[0] != "model" or len(parts) < 2:
        return False
    class_path, _ = _model_args(recipe)
    key = parts[2] if parts[1] == "init_args" and len(parts) > 2 else parts[1]
    return key in _MEMBER_KEYS if class_path in _TASK else _is_module_scalar(key)


def _ask_batch(study: optuna.Study, space: SearchSpace, recipe: dict[str, Any], size: int
               ) -> tuple[list[optuna.Trial], list[dict[str, Any]]]:
    """``size`` trials and their overrides. The first is sampled as usual; the others keep its
    structural parameters (batch size, optimizer, schedule, architecture …) through Optuna's
    PartialFixedSampler around the study's sampler and draw their own scalars, so a space
    that varies structure still forms populations."""
    first = study.ask()
    claim(first)  # which process runs it: how another one tells it alive or dead
    overrides = [space.suggest(first)]
    trials = [first]
    fixed = {name: value for name, value in first.params.items()
             if not member_scalar(recipe, name)}
    original = study.sampler
    if fixed and size > 1 and not isinstance(original, optuna.samplers.GridSampler):
        with warnings.catch_warnings():  # experimental in Optuna 5.0; used as documented
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = optuna.samplers.PartialFixedSampler(fixed, original)
    try:
        for _ in range(size - 1):
            trial = study.ask()
            claim(trial)
            trials.append(trial)
            overrides.append(space.suggest(trial))
    finally:
        study.sampler = original
    return trials, overrides

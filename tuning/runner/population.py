"""``lit-tune run --population N``: up to N asked trials trained at once as one vectorized
model (``lit_optim.population.PopulationTask``), each member reporting to its own trial.

The loop asks up to N trials (TPE with ``constant_liar`` so a batch is not N copies of one
point), groups them by everything that must be shared, and trains each group of two or more
as one population. Two implementations of one interface (``lit_optim.population.Population``):

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
import copy
import fnmatch
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import numpy as np
import optuna
import torch
from filelock import FileLock
from optuna.trial import TrialState

from lit_optim import ConfigError, LitOptimError
from lit_optim.callbacks import NonFiniteGuard
from lit_optim.population import (
    POPULATION_OPTIMIZERS,
    ModulePopulation,
    PopulationTask,
    ResumeFrom,
    take_snapshot,
)
from tuning.runner.algorithms import MAX_FAILURES
from tuning.runner.errors import Interrupted, TooManyFailuresError
from tuning.runner.interrupt import held_signals, interrupted, raise_if_interrupted
from tuning.runner.owners import claim, fail_for_rerun, is_rerun
from tuning.runner.pbt import (
    PBTSettings,
    explore,
    explored_paths,
    lineage,
    pairs,
    replay_recipe,
    resumed_lineage,
)
from tuning.runner.trainable import Trainable
from tuning.runner.worker import (
    FINISHED,
    beyond_budget,
    counted,
    evaluate,
    fail_for_rerun_if_possible,
    tell,
    wait_for_running,
)
from tuning.search.preflight import (
    MetricCheck,
    MetricNotLoggedError,
    build_trial_objects,
    parse_recipe,
)
from tuning.search.recipe import apply_overrides, write_recipe
from tuning.search.space import SearchSpace
from tuning.storage.backends import storage_fault
from tuning.storage.optuna_private import StudySnapshot, heartbeat, report_all

if TYPE_CHECKING:
    from lit_optim.population import Population

__all__ = ["check_population", "choose_population", "guard_note", "run_population_worker"]

_MEMBER_KEYS = ("lr", "weight_decay", "optimizer_kwargs")
SNAPSHOTS = "pbt"  # the run folder's folder of PBT populations' snapshots
_TASK = ("lit_optim.ClassificationTask", "lit_optim.training.task.ClassificationTask")
# Init args of a user's module that may differ within one population: what a module hands to
# its optimizer and schedule (read there, from each member's own configure_optimizers).
MODULE_SCALARS = (
    "lr",
    "weight_decay",
    "momentum",
    "betas",
    "eps",
    "optimizer_kwargs",
    "scheduler_kwargs",
)
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
            return (
                f"callback {name} is not supported in a population (those that act per "
                f"member: {', '.join(PER_MEMBER_CALLBACKS)})"
            )
    if trainer.get("strategy", "auto") not in ("auto", None):
        return "a population runs in one process"
    return None


def _recipe_callbacks(trainer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(class path, init args) of each callback in a recipe's ``trainer`` section."""
    return [
        (cb.get("class_path", ""), dict(cb.get("init_args") or {}))
        if isinstance(cb, dict)
        else (str(cb), {})
        for cb in trainer.get("callbacks") or []
    ]


def guard_note(recipe: dict[str, Any]) -> str | None:
    """The line that says how a population applies the recipe's NonFiniteGuard, where its
    action has no per-member form (raise and stop end the member's trial, as they end a trial
    run alone)."""
    for name, init_args in _recipe_callbacks(recipe.get("trainer") or {}):
        action = init_args.get("action", "raise")
        if name.rsplit(".", 1)[-1] == "NonFiniteGuard" and action in _GUARD_ACTIONS_AS_STOP:
            return (
                f"NonFiniteGuard action {action!r} acts as 'stop' per member in a population:"
                f" a member whose loss goes non-finite or spikes leaves it, its trial pruned "
                f"as diverged ({_GUARD_ACTIONS_AS_STOP[action]}); --population 1 keeps "
                f"{action!r}"
            )
    return None


def _per_member_options(trainer: L.Trainer, trials: list[optuna.Trial]) -> dict[str, Any]:
    """What a population takes over from the trials' Trainer: its clipping (Lightning refuses
    its own under manual optimization, so it is applied per member), the recipe's guard's
    spike rule (a trial without a guard gets the trainable's, a factor of 10), and the
    members' names for what they log (their trials)."""

    callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by its connector
    guard = next((cb for cb in callbacks if isinstance(cb, NonFiniteGuard)), None)
    clip, trainer.gradient_clip_val = trainer.gradient_clip_val, None
    return {
        "gradient_clip_val": clip,
        "gradient_clip_algorithm": trainer.gradient_clip_algorithm or "norm",
        "loss_spike_factor": 10.0 if guard is None else guard.loss_spike_factor,
        "member_names": [f"trial_{t.number}" for t in trials],
    }


class _Report(L.Callback):
    """The population's link to the study. After each validation epoch every member reports
    to its trial at its own epoch; pruned ones leave and are told at once (``pruned_reason``),
    as are diverged ones. Between epochs (``between_epochs``, the population's
    ``on_epoch_end``) members that trained their run's epochs leave COMPLETE with their
    values, and the freed slots take newly asked trials (``newcomers``) while the budget
    lasts: the sampler and the pruner see every result at once, the population never idles
    on empty slots, and an interruption later cannot turn a result into a failed trial."""

    def __init__(
        self,
        study: optuna.Study,
        trials: list[optuna.Trial],
        metric: str,
        tell: Callable[[int, TrialState, float | None], None],
        shown: Callable[[int], None],
        *,
        newcomers: _Newcomers | None = None,
        structure: str = "",
        quota: int | None = None,
        build: Callable[[list[optuna.Trial], list[dict[str, Any]]], list[Any]] | None = None,
        pbt: PBTSettings | None = None,
        snapshots: Path | None = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.study, self.trials, self.metric = study, trials, metric
        self.tell, self.shown = tell, shown  # a trial's result; the progress of n results
        self.newcomers, self.structure, self.build = newcomers, structure, build
        self.size = len(trials)  # the population's slots
        self.first = trials[0].number  # the population's name in its trials' records
        self.quota = quota  # the most trials it hosts (None: while the budget lasts)
        self.run_epochs: int | None = None  # each member's epochs, when the run counts them
        self.left: set[int] = set()
        # PBT (``tuning.runner.pbt``): members are exploited and explored instead of pruned.
        self.pbt = pbt
        # Its own draws per population (seeded by the run's seed and its first trial): two
        # populations of one study do not copy and explore alike.
        self.rng = random.Random(0 if pbt is None else pbt.seed * 1_000_003 + self.first)
        self.history: dict[int, dict[int, float]] = {}  # trial number -> {epoch: value}
        # PBT saves the population every interval here (``snapshots``: the run's folder for
        # them), so that a rerun after a kill goes on from it (``resume``: a saved one).
        self.snapshot_path = snapshots and snapshots / f"population_{self.first}.pt"
        self.resume = resume
        if resume is not None:
            self.rng.setstate(resume["rng"])
            for trial, history in zip(trials, resume["history"], strict=True):
                self.history[trial.number] = dict(history)

    def _tell_leavers(self, reasons: dict[int, str]) -> None:
        for index, reason in reasons.items():
            if index not in self.left:
                self.left.add(index)
                self.trials[index].set_user_attr("pruned_reason", reason)
                self.tell(index, TrialState.PRUNED, None)
                self.shown(1)

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        directions = pl_module.directions
        if directions is not None:
            check = MetricCheck(self.metric, self.study.direction.name.lower())
            directions.when_logged(self.metric, check.direction_logged)
        for slot, trial in enumerate(self.trials):
            self._record_joined(trial, 0, slot)
        if self.resume is not None:
            self.setup_resumed(pl_module)
        pl_module.replace_diverged = self.pbt is not None  # PBT copies a good member there
        epochs = trainer.max_epochs
        if epochs is not None and epochs > 0 and trainer.max_steps == -1:
            self.run_epochs = epochs
            pl_module.stop_when_empty = False
            pl_module.on_epoch_end = self.between_epochs

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        if self.run_epochs is not None:  # members end on their own epochs; the fit runs on
            trainer.fit_loop.max_epochs = -1

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.current_epoch == 1:  # after the first epoch, as MetricCheck checks a trial
            self.check_logged(pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module) -> None:
        self._tell_diverged(pl_module)
        self.check_logged(pl_module)

    def _tell_diverged(self, pl_module: Population) -> None:
        self._tell_leavers(
            {index: f"diverged: {reason}" for index, reason in pl_module.dropped.items()}
        )

    def check_logged(self, pl_module: Population) -> None:
        if pl_module.alive and self.metric not in pl_module.member_metrics:
            raise MetricNotLoggedError.naming(
                self.metric, pl_module.module_name, list(pl_module.member_metrics)
            )

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or self.metric not in pl_module.member_metrics:
            return
        values = pl_module.member_metrics[self.metric].tolist()  # one host read per epoch
        reports: dict[int, list[tuple[optuna.Trial, float]]] = {}
        for index, value, epoch in zip(pl_module.alive, values, pl_module.epochs_trained):
            if math.isfinite(value):  # at the member's own epoch, as its trial alone would
                reports.setdefault(epoch, []).append((self.trials[index], value))
        for epoch, reported in reports.items():
            report_all(self.study, reported, epoch)
            for trial, value in reported:
                self.history.setdefault(trial.number, {})[epoch] = value
        should_prune = self._judge()
        keep, pruned = [], {}
        for index, value, epoch in zip(pl_module.alive, values, pl_module.epochs_trained):
            trial = self.trials[index]
            stays = not (math.isfinite(value) and should_prune(trial))
            if not stays:
                pruned[index] = f"pruned at epoch {epoch} ({self.metric} {value:.4g})"
            keep.append(stays)
        pl_module.drop(_flags(keep), reason="pruned")
        self._tell_leavers(pruned)

    def between_epochs(self, pl_module: Population) -> None:
        """The population's epoch boundary: the diverged are told, the members that trained
        their epochs complete, and free slots take newcomers."""
        self._tell_diverged(pl_module)
        run_epochs = self.run_epochs
        assert run_epochs is not None  # set where this hook is installed (setup)
        done = [epochs >= run_epochs for epochs in pl_module.epochs_trained]
        if any(done):
            self.complete(pl_module, done)
            pl_module.drop(_flags([not d for d in done]), reason="complete")
        if self.pbt is not None:
            if pl_module.alive:
                self._exploit(pl_module)
            if pl_module.alive and max(pl_module.epochs_trained) % self.pbt.interval == 0:
                self._save_snapshot(pl_module)
            if not pl_module.alive:  # none left, or the last diverged with no trial to follow
                pl_module.trainer.should_stop = True
            return
        joined = []
        if self.newcomers is not None:
            free = self.size - len(pl_module.alive)
            if self.quota is not None:
                free = min(free, self.quota - len(self.trials))
            joined = self.newcomers.fill(free, self.trials[0], self.structure)
        if joined:
            self._join(pl_module, joined)
        if not pl_module.alive:
            pl_module.trainer.should_stop = True

    def _join(
        self, pl_module: Population, joined: list[tuple[optuna.Trial, dict[str, Any]]]
    ) -> None:
        trials, recipes = [t for t, _ in joined], [r for _, r in joined]
        epoch = pl_module.trainer.current_epoch + 1
        assert self.build is not None and self.newcomers is not None  # they fill the slots
        try:
            members = self.build(trials, recipes)
            indices = pl_module.join(members, [f"trial_{t.number}" for t in trials])
        except LitOptimError as err:  # a newcomer's module trains otherwise: on its own
            print(
                f"trials {', '.join(str(t.number) for t in trials)} cannot join the "
                f"population: {err}",
                file=sys.stderr,
            )
            self.newcomers.left_over += joined
            return
        assert indices == list(range(len(self.trials), len(self.trials) + len(trials)))
        for slot, trial in zip(indices, trials):
            self._record_joined(trial, epoch, slot)
        self.trials.extend(trials)

    def _exploit(self, pl_module: Population) -> None:
        """PBT. A member that diverged takes, at once, the state of one of the top quantile
        of the others; every ``interval`` epochs so does each member of the bottom quantile.
        The copy is in memory (``copy_member``), then explored (``rescale_member``); the slot's
        trial ends PRUNED and a new trial, asked with the explored values within the budget,
        goes on in the slot with its parent's intermediate values and its line's record. A
        diverged member no new trial can replace leaves, its trial PRUNED as diverged."""
        pbt = self.pbt
        assert pbt is not None
        epoch = max(pl_module.epochs_trained)
        diverged = dict(pl_module.diverged)
        can_ask = not (self.newcomers is None or self.newcomers.past_deadline() or interrupted())
        moves: list[tuple[int, int]] = []
        if can_ask and self.metric in pl_module.member_metrics:
            values = pl_module.member_metrics[self.metric].tolist()
            for position in diverged:  # ranked last, whatever it logged
                values[position] = math.nan
            maximize = self.study.direction == optuna.study.StudyDirection.MAXIMIZE
            top = _top(values, maximize, pbt.quantile, exclude=diverged)
            if top:
                moves += [(self.rng.choice(top), position) for position in diverged]
            if epoch % pbt.interval == 0:
                moves += [
                    (source, target)
                    for source, target in pairs(values, maximize, pbt.quantile, self.rng)
                    if target not in diverged
                ]
        replaced = self._replace(pl_module, moves, epoch, diverged) if moves else set()
        left = {p: reason for p, reason in diverged.items() if p not in replaced}
        if left:  # no trial to take their slots: they leave, told as diverged
            keep = [p not in left for p in range(len(pl_module.alive))]
            pl_module.drop(_flags(keep), reason="; ".join(sorted(set(left.values()))))
            self._tell_diverged(pl_module)

    def _replace(
        self,
        pl_module: Population,
        moves: list[tuple[int, int]],
        epoch: int,
        diverged: dict[int, str],
    ) -> set[int]:
        """Each (source, target) move, as far as the budget asks trials for them; returns
        the target positions replaced."""
        assert self.newcomers is not None and self.pbt is not None
        space = self.newcomers.trainable.space
        parents = [self.trials[pl_module.alive[source]] for source, _ in moves]
        chosen = [explore(parent.params, space, self.rng) for parent in parents]
        children = self.newcomers.take(chosen)  # as many as the budget leaves
        for (source, target), parent, child, params in zip(moves, parents, children, chosen):
            index = pl_module.alive[target]
            why = f"diverged: {diverged[target]}; " if target in diverged else ""
            self.trials[index].set_user_attr(
                "pruned_reason",
                f"pbt: {why}at epoch {epoch} its slot took trial {parent.number}'s state, "
                f"explored, as trial {child.number}",
            )
            self.tell(index, TrialState.PRUNED, None)
            self.shown(1)
            record = lineage(
                parent.user_attrs.get("pbt"),
                parent.number,
                parent.params,
                params,
                space,
                epoch=epoch,
                slot=index,
            )
            child.set_user_attr("pbt", record)
            self._record_joined(child, 0, index)  # its line's batches start at epoch 0
            for step, value in sorted(self.history.get(parent.number, {}).items()):
                child.report(value, step)  # the line's curve, through Optuna's public API
            self.history[child.number] = dict(self.history.get(parent.number, {}))
            self.newcomers.write_replay(child, params, record)
            self.trials[index] = child
            pl_module.member_names[index] = f"trial_{child.number}"
            pl_module.copy_member(source, target)
            factors = {
                key: params[path] / parent.params[path]
                for path, key in explored_paths(space).items()
                if path in params
            }
            pl_module.rescale_member(target, **factors)
        return {target for (_, target), _ in zip(moves, children)}

    def _record_joined(self, trial: optuna.Trial, epoch: int, member: int) -> None:
        """Which population (its first trial) the trial trained in, from which of its epochs
        (where its batches start, which a one-by-one replay of it needs) and as which member
        (its index there; in PBT its slot, a lineage plot's row); one storage write."""
        trial.set_user_attr(
            "population", {"first_trial": self.first, "epoch_joined": epoch, "member": member}
        )

    def _save_snapshot(self, pl_module: Population) -> None:
        """The population after this interval's exploits: its members' states, which trial
        each one is, their lines' values, and the draws' state, replacing the last one."""
        if self.snapshot_path is None:
            return

        trials = [self.trials[index] for index in pl_module.alive]
        saved = {
            "study": self.study.study_name,
            "structure": self.structure,
            "trials": [trial.number for trial in trials],
            "history": [self.history.get(trial.number, {}) for trial in trials],
            "rng": self.rng.getstate(),
            "population": take_snapshot(pl_module, pl_module.trainer.current_epoch + 1),
        }
        _write_snapshot(self.snapshot_path, saved)

    def discard_snapshot(self) -> None:
        """The population ended with every member told: nothing to resume."""
        if self.snapshot_path is not None:
            self.snapshot_path.unlink(missing_ok=True)

    def setup_resumed(self, pl_module: Population) -> None:
        """A resumed population's trials: their lines' values so far (Optuna's public
        ``report``) and the recipe that replays each."""
        assert self.resume is not None and self.newcomers is not None
        for trial in self.trials:
            for step, value in sorted(self.history[trial.number].items()):
                trial.report(value, step)
            self.newcomers.write_replay(trial, trial.params, trial.user_attrs["pbt"])

    def complete(self, pl_module: Population, done: list[bool]) -> None:
        """Members ``done`` (by position) are COMPLETE with their last values, told now."""
        told = 0
        for position, (index, finished) in enumerate(zip(pl_module.alive, done)):
            if not finished or index in self.left:
                continue
            trial = self.trials[index]
            for name, values in pl_module.member_metrics.items():
                trial.set_user_attr(name, float(values[position]))
            self.left.add(index)
            value = float(pl_module.member_metrics[self.metric][position])
            self.tell(index, TrialState.COMPLETE, value)
            told += 1
        if told:
            self.shown(told)  # one best-value query for those that finished together

    def _judge(self):
        """``trial -> should it be pruned`` for this epoch. ``Trial.should_prune`` reads the
        whole study for every member (Optuna re-reads all running trials each time: most of a
        32-member population's run went there, bench/README.md, costs). A pruner that reads
        the study through ``get_trials`` and writes only its rung marks (median, percentile,
        successive halving) gets one read per epoch instead,
        taken after every member reported, whose rung marks are written through to the
        storage as the pruner writes them: so each member is judged as ``should_prune`` would
        judge it at that moment. Hyperband builds studies of its own over the storage: it is
        asked per member."""
        pruner = self.study.pruner
        if isinstance(pruner, optuna.pruners.NopPruner) or self.pbt is not None:
            return lambda trial: False
        if not isinstance(
            pruner, (optuna.pruners.PercentilePruner, optuna.pruners.SuccessiveHalvingPruner)
        ):
            return lambda trial: trial.should_prune()
        snapshot = StudySnapshot(self.study)
        return lambda trial: pruner.prune(snapshot, snapshot.frozen(trial.number))


def _top(
    values: list[float], maximize: bool, quantile: float, exclude: dict[int, str]
) -> list[int]:
    """The positions of the top ``quantile`` (at least one) of the finite ``values`` not in
    ``exclude``: the members a diverged one may copy."""
    healthy = [p for p, v in enumerate(values) if p not in exclude and math.isfinite(v)]
    healthy.sort(key=lambda p: values[p], reverse=maximize)
    return healthy[: max(1, math.ceil(len(healthy) * quantile))]


def _flags(values: list[bool]) -> Any:

    return torch.tensor(values, dtype=torch.bool)


def _write_snapshot(path: Path, saved: dict[str, Any]) -> None:
    """``saved`` at ``path``, whole or not at all (a kill mid-write leaves the last one)."""

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(saved, partial)
    os.replace(partial, path)


def _read_snapshot(path: Path) -> dict[str, Any] | None:
    """A PBT snapshot; None (and one line) where it cannot be read."""

    try:
        saved = torch.load(path, weights_only=True)
    except Exception as err:  # a file of another version, or not one of ours
        print(f"{path} cannot be resumed from ({type(err).__name__}): left out", file=sys.stderr)
        return None
    return saved if isinstance(saved, dict) else None


def _write_recipes(
    trainable: Trainable, trials: list[optuna.Trial], recipes: list[dict[str, Any]], header: str
) -> list[Path]:
    return [
        write_recipe(
            recipe,
            trainable.run_dir / f"trial_{trial.number}" / "recipe.yaml",
            header=f"trial {trial.number} ({header})",
        )
        for trial, recipe in zip(trials, recipes)
    ]


def _population_header(trials: list[optuna.Trial]) -> str:
    return (
        f"population of {len(trials)}: trials {', '.join(str(t.number) for t in trials)}; "
        "trials join as slots free up"
    )


def _train_population(
    trainable: Trainable, trials: list[optuna.Trial], recipes: list[dict[str, Any]], report: _Report
) -> None:
    class_path, _ = _model_args(recipes[0])
    if class_path not in _TASK:
        return _train_module_population(trainable, trials, recipes, report)

    header = _population_header(trials)
    first, *_ = _write_recipes(trainable, trials, recipes, header)
    cli = build_trial_objects(first, *trainable.trainer_args(first.parent))
    _, args = _model_args(recipes[0])

    def members(trials: list[optuna.Trial], recipes: list[dict[str, Any]]) -> list[dict]:
        out = []
        for recipe in recipes:
            _, member = _model_args(recipe)
            out.append(
                {
                    "lr": member.get("lr", 1e-3),
                    "weight_decay": member.get("weight_decay", 0.0),
                    **(member.get("optimizer_kwargs") or {}),
                }
            )
        return out

    def newcomers(trials: list[optuna.Trial], recipes: list[dict[str, Any]]) -> list[dict]:
        _write_recipes(trainable, trials, recipes, header)
        return members(trials, recipes)

    task = cli.model
    model = PopulationTask(
        task.hparams.input_shape,
        task.hparams.num_classes,
        members(trials, recipes),
        network=args.get("network", "mlp"),
        network_kwargs=args.get("network_kwargs"),
        optimizer=args.get("optimizer", "adam"),
        scheduler=args.get("scheduler", "constant"),
        scheduler_kwargs=args.get("scheduler_kwargs"),
        seed=int(recipes[0].get("seed_everything") or 0),
        decay_bias_and_norm=bool(args.get("decay_bias_and_norm", False)),
        **_per_member_options(cli.trainer, trials),
    )
    report.build = newcomers
    _fit_population(trainable, report, model, cli.trainer, cli.datamodule)


def _train_module_population(
    trainable: Trainable, trials: list[optuna.Trial], recipes: list[dict[str, Any]], report: _Report
) -> None:
    """Each trial's own module (built from its recipe, seeded as its one-by-one trial) is a
    member of one ModulePopulation; the first trial's Trainer and data module serve them all."""

    header = _population_header(trials)
    paths = _write_recipes(trainable, trials, recipes, header)
    first = build_trial_objects(paths[0], *trainable.trainer_args(paths[0].parent))

    def members(paths: list[Path], recipes: list[dict[str, Any]]) -> list[L.LightningModule]:
        # Built as each one-by-one trial builds its module, then the random state goes back:
        # the population's batches are the ones the first trial's run would see.
        with _random_state_kept():
            return [
                _member(first, recipe) or build_trial_objects(path, *trainable.trainer_args()).model
                for path, recipe in zip(paths, recipes)
            ]

    def newcomers(trials: list[optuna.Trial], recipes: list[dict[str, Any]]) -> list[Any]:
        return members(_write_recipes(trainable, trials, recipes, header), recipes)

    model = ModulePopulation(
        [first.model, *members(paths[1:], recipes[1:])],
        **_per_member_options(first.trainer, trials),
    )
    report.build = newcomers
    _fit_population(trainable, report, model, first.trainer, first.datamodule)


@contextlib.contextmanager
def _random_state_kept():

    states = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


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


def _fit_population(
    trainable: Trainable, report: _Report, model: Any, trainer: L.Trainer, datamodule: Any
) -> None:
    """Train the population; members are told as they leave (``report``), and the ones
    still in when the fit ends (a run not counted in epochs) complete then."""

    # The population judges each member itself: a guard would act on all of them at once.
    callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by its connector
    callbacks[:] = [cb for cb in callbacks if not isinstance(cb, NonFiniteGuard)]
    if report.resume is not None:  # loads the members and the fit's epoch as training starts
        callbacks.append(ResumeFrom(report.resume["population"]))
    callbacks.append(report)
    with warnings.catch_warnings():
        # The population updates its members itself (manual optimization): no optimizer for
        # Lightning, on purpose.
        warnings.filterwarnings("ignore", message=r".*configure_optimizers.* returned .None.")
        trainer.fit(model, datamodule=datamodule)
    if model.alive:
        report.complete(model, [True] * len(model.alive))


def run_population_worker(
    study: optuna.Study,
    trainable: Trainable,
    *,
    n_trials: int,
    population: int,
    lock_path: Path,
    heartbeats: bool = False,
    heartbeat_s: float = 10.0,
    progress: Any = None,
    deadline: float | None = None,
    max_failures: int = MAX_FAILURES,
    pbt: PBTSettings | None = None,
) -> None:
    """Populations of ``population`` slots until the budget is told: refilled as members
    leave (the study's sampler and pruner), or with ``pbt`` trained by population based
    training (``tuning.runner.pbt``), one population after another."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    failures: list[bool] = []  # per told trial, in order: did it fail
    waited: set[int] = set()
    newcomers = _Newcomers(
        study, trainable, n_trials=n_trials, lock_path=lock_path, deadline=deadline
    )
    while True:
        raise_if_interrupted()
        if newcomers.past_deadline():
            return
        resumed = None if pbt is None else newcomers.resume_pbt(trainable.run_dir / SNAPSHOTS)
        if resumed is not None:
            trials, overrides, snapshot = resumed
        else:
            (trials, overrides), snapshot = newcomers.ask(population), None
        if not trials:
            # Trials still RUNNING elsewhere: wait for them to finish or be found dead and
            # replace them, as the sequential loop does, rather than end the study short.
            if wait_for_running(
                study, heartbeats=heartbeats, heartbeat_s=heartbeat_s, waited=waited
            ):
                continue
            return
        recipes = [apply_overrides(trainable.recipe, chosen) for chosen in overrides]
        groups: dict[str, list[int]] = {}
        for i, recipe in enumerate(recipes):
            groups.setdefault(_structure(recipe), []).append(i)
        told = _Told(failures, max_failures)
        # Every asked trial beats its heartbeat until told, also while it waits for its
        # group's turn: a killed run's trials all go stale and are replaced. A population
        # asks more trials as its slots free up: they join ``trials`` and beat here too.
        with contextlib.ExitStack() as beating:
            newcomers.start(trials, beating)
            for trial in trials:
                beating.enter_context(heartbeat(study, trial))
            try:
                for indices in groups.values():
                    _run_group(
                        study,
                        trainable,
                        [trials[i] for i in indices],
                        [recipes[i] for i in indices],
                        told,
                        progress,
                        newcomers,
                        pbt,
                        snapshot,
                    )
                while newcomers.left_over:  # asked for a population they could not join
                    trial, recipe = newcomers.left_over.pop(0)
                    _run_group(study, trainable, [trial], [recipe], told, progress, None)
            except BaseException as err:  # an interruption or a bug: no trial left RUNNING
                untold = [trial for trial in trials if trial.number not in told]
                fault = storage_fault(err) if isinstance(err, Exception) else None
                if fault is not None:  # a full disk: the trials did not fail, the disk did
                    fail_for_rerun_if_possible(study, untold, str(fault))
                    raise fault from err
                for trial in untold:
                    if (
                        isinstance(err, (Interrupted, KeyboardInterrupt, TooManyFailuresError))
                        or interrupted()
                    ):
                        fail_for_rerun(study, trial, str(err) or type(err).__name__)
                    else:
                        trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
                        tell(study, trial, TrialState.FAIL, None)
                raise


class _Newcomers:
    """Trials asked within the budget, under the run folder's lock: a population's first
    members, and later the ones that take its free slots (same structure: the first
    members' structural parameters fixed through PartialFixedSampler)."""

    def __init__(
        self,
        study: optuna.Study,
        trainable: Trainable,
        *,
        n_trials: int,
        lock_path: Path,
        deadline: float | None,
    ) -> None:
        self.study, self.trainable, self.n_trials = study, trainable, n_trials
        self.lock_path, self.deadline = lock_path, deadline
        self.left_over: list[tuple[optuna.Trial, dict[str, Any]]] = []
        self._batch: list[optuna.Trial] = []
        self._beating: contextlib.ExitStack | None = None

    def past_deadline(self) -> bool:

        return self.deadline is not None and time.time() >= self.deadline

    def start(self, batch: list[optuna.Trial], beating: contextlib.ExitStack) -> None:
        """The batch's trials (newcomers join it: an interruption fails them for rerun too)
        and the heartbeats it keeps."""
        self._batch, self._beating = batch, beating
        self.left_over = []

    def ask(
        self, size: int, like: optuna.Trial | None = None, exact: list[dict[str, Any]] | None = None
    ) -> tuple[list[optuna.Trial], list[dict[str, Any]]]:
        """Up to ``size`` trials and their overrides, as many as the budget (and a grid)
        leaves; ``like``: a trial whose structure they keep; ``exact``: each trial's values
        (PBT's explored ones)."""
        fixed = None if like is None else _structural(like, self.trainable.recipe)
        trials: list[optuna.Trial] = []
        try:
            with FileLock(self.lock_path), held_signals():  # a signal waits for the claims
                trials, overrides = self._ask_locked(size, fixed, exact, trials)
        except Interrupted as err:
            for trial in trials:
                fail_for_rerun(self.study, trial, str(err))  # not counted: run again
            raise
        return trials, overrides

    def _ask_locked(
        self,
        size: int,
        fixed: dict[str, Any] | None,
        exact: list[dict[str, Any]] | None,
        asked: list[optuna.Trial],
    ) -> tuple[list[optuna.Trial], list[dict[str, Any]]]:
        """``ask`` under the run folder's lock; ``asked`` collects the trials as they are
        asked (the caller fails them for rerun if a signal cuts in)."""
        known = self.study.get_trials(deepcopy=False)
        left = self.n_trials - len(counted(known))
        if isinstance(self.study.sampler, optuna.samplers.GridSampler):
            left = min(left, _grid_points_left(self.trainable.space, known))
        size = max(0, min(size, left))
        if not size:
            return [], []
        trials, overrides = _ask_batch(
            self.study, self.trainable.space, self.trainable.recipe, size, fixed, exact
        )
        asked += trials
        beyond = beyond_budget(self.study, trials, self.n_trials)
        kept = [i for i, t in enumerate(trials) if t.number not in beyond]
        return [trials[i] for i in kept], [overrides[i] for i in kept]

    def resume_pbt(
        self, folder: Path
    ) -> tuple[list[optuna.Trial], list[dict[str, Any]], dict[str, Any]] | None:
        """A PBT population a killed or interrupted run left in ``folder`` (its snapshot of
        the last interval), whose trials all failed for rerun: new trials with their values
        (within the budget), each the continuation of one (``pbt.resumed_lineage``), and the
        snapshot, renamed after the new population. None where there is none to resume."""
        if not folder.is_dir():
            return None
        asked: list[optuna.Trial] = []
        try:
            with FileLock(self.lock_path), held_signals():
                known = {t.number: t for t in self.study.get_trials(deepcopy=False)}
                for path in sorted(folder.glob("population_*.pt")):
                    found = self._resumable(path, known)
                    if found is None:
                        continue
                    saved, lost = found
                    if self.n_trials - len(counted(list(known.values()))) < len(lost):
                        return None  # the budget left is less than its members: the normal way
                    params = [dict(t.params) for t in lost]
                    trials, overrides = self._ask_locked(len(lost), None, params, asked)
                    if len(trials) < len(lost):  # another run's asks came first after all
                        for trial in trials:
                            fail_for_rerun(self.study, trial, "the budget ran out mid-resume")
                        return None
                    epoch = saved["population"]["epoch"]
                    for slot, (trial, old) in enumerate(zip(trials, lost)):
                        record = resumed_lineage(
                            old.user_attrs.get("pbt"),
                            old.number,
                            params[slot],
                            self.trainable.space,
                            epoch=epoch,
                            slot=slot,
                        )
                        trial.set_user_attr("pbt", record)
                    saved["trials"] = [t.number for t in trials]
                    _write_snapshot(folder / f"population_{trials[0].number}.pt", saved)
                    path.unlink(missing_ok=True)
                    print(
                        f"trials {', '.join(str(t.number) for t in trials)} resume trials "
                        f"{', '.join(str(t.number) for t in lost)} from their population's "
                        f"state at epoch {epoch} (PBT, {path.name})",
                        file=sys.stderr,
                    )
                    return trials, overrides, saved
        except Interrupted as err:
            for trial in asked:
                fail_for_rerun(self.study, trial, str(err))
            raise
        return None

    def _resumable(
        self, path: Path, known: dict[int, optuna.trial.FrozenTrial]
    ) -> tuple[dict[str, Any], list[optuna.trial.FrozenTrial]] | None:
        """The snapshot at ``path`` and its trials, where this run may resume it: all of its
        trials failed for rerun. One that cannot be read, whose trials ended otherwise since
        (told, or failed by an error of their own), or saved for another recipe is stale:
        deleted. One of another study, or whose trials still run (another process), is left
        alone."""
        saved = _read_snapshot(path)
        if saved is not None and saved.get("study") != self.study.study_name:
            return None  # another study's, in the same folder
        lost = [known.get(n) for n in saved["trials"]] if saved is not None else []
        trials = [t for t in lost if t is not None]
        stale = saved is None or len(trials) < len(lost)
        stale = stale or any(
            t.state in FINISHED or (t.state == TrialState.FAIL and not is_rerun(t)) for t in trials
        )
        if saved is not None and not stale:
            recipe = apply_overrides(self.trainable.recipe, dict(trials[0].params))
            if saved["structure"] != _structure(recipe):
                print(
                    f"{path} was saved for another recipe: its population starts afresh",
                    file=sys.stderr,
                )
                stale = True
        if saved is None or stale:
            path.unlink(missing_ok=True)
            return None
        if any(t.state != TrialState.FAIL for t in trials):
            return None  # running in another process
        return saved, trials

    def take(self, chosen: list[dict[str, Any]]) -> list[optuna.Trial]:
        """Trials with exactly the values ``chosen`` (one each, as many as the budget
        leaves), beating their heartbeats as the population's own."""
        if self.past_deadline() or interrupted():
            return []
        trials, _ = self.ask(len(chosen), exact=chosen)
        for trial in trials:
            self._adopt(trial)
        return trials

    def _adopt(self, trial: optuna.Trial) -> None:
        self._batch.append(trial)
        if self._beating is not None:
            self._beating.enter_context(heartbeat(self.study, trial))

    def write_replay(
        self, trial: optuna.Trial, params: dict[str, Any], record: dict[str, Any]
    ) -> None:
        """A PBT trial's recipe: the one that replays its line (``pbt.replay_recipe``)."""
        recipe = replay_recipe(self.trainable.recipe, params, record, self.trainable.space)
        how = "resumed from" if record.get("resumed") else "from"
        write_recipe(
            recipe,
            self.trainable.run_dir / f"trial_{trial.number}" / "recipe.yaml",
            header=f"trial {trial.number} (pbt: generation {record['generation']}, "
            f"{how} trial {record['parent']} at epoch {record['epoch']})",
        )

    def fill(
        self, size: int, like: optuna.Trial, structure: str
    ) -> list[tuple[optuna.Trial, dict[str, Any]]]:
        """Up to ``size`` newly asked trials of ``structure`` for a population's free slots,
        none past the deadline; one of another structure (a grid point) waits in
        ``left_over`` for the one-by-one path."""
        if size <= 0 or self.past_deadline() or interrupted():
            return []
        trials, overrides = self.ask(size, like)
        out = []
        for trial, chosen in zip(trials, overrides):
            self._adopt(trial)
            recipe = apply_overrides(self.trainable.recipe, chosen)
            if _structure(recipe) == structure:
                out.append((trial, recipe))
            else:
                self.left_over.append((trial, recipe))
        return out


def _run_group(
    study: optuna.Study,
    trainable: Trainable,
    trials: list[optuna.Trial],
    recipes: list[dict[str, Any]],
    told: _Told,
    progress: Any,
    newcomers: _Newcomers | None,
    pbt: PBTSettings | None = None,
    resume: dict[str, Any] | None = None,
) -> None:
    """One group of trials that share a structure: as a population whose free slots take
    newly asked trials (``newcomers``), or one by one (alone in its group, or not trainable
    as a population: said in one line). ``resume``: a PBT snapshot the trials go on from."""
    reason = why_not_population(recipes[0]) if len(trials) > 1 else None
    trained = False
    if len(trials) > 1 and reason is None:
        how = (
            ""
            if pbt is None
            else (
                f" by population based training (the bottom {pbt.quantile:g} copy the top every "
                f"{pbt.interval} epoch{'s' if pbt.interval != 1 else ''})"
            )
        )
        print(
            f"trials {', '.join(str(t.number) for t in trials)} train as one population of "
            f"{len(trials)}{how}",
            file=sys.stderr,
        )

        def tell_member(index: int, state: TrialState, value: float | None) -> None:
            _tell(study, trials[index], state, value, told, None)

        def shown(count: int) -> None:
            if progress is not None:
                progress(study, count)

        # Where the space varies structure, a population hosts two generations of its
        # slots, then drains, and the next one draws its structure afresh: one structure
        # never takes the whole budget. A space of member scalars only refills to the end.
        quota = (
            2 * len(trials) if _structural(trials[0], trainable.recipe) and pbt is None else None
        )
        report = _Report(
            study,
            trials,
            trainable.space.metric,
            tell_member,
            shown,
            newcomers=newcomers,
            structure=_structure(recipes[0]),
            quota=quota,
            pbt=pbt,
            snapshots=None if pbt is None else trainable.run_dir / SNAPSHOTS,
            resume=resume,
        )
        try:
            _train_population(trainable, trials, recipes, report)
            trained = True
            report.discard_snapshot()
        except MetricNotLoggedError:
            raise
        except LitOptimError as err:  # NotVmappable, members that differ in nesterov …
            reason = str(err)
    if not trained:
        if reason:
            print(
                f"trials {', '.join(str(t.number) for t in trials)} run one by one: {reason}",
                file=sys.stderr,
            )
        for trial in trials:  # told one by one: a later one's interruption keeps this result
            if trial.number in told:  # left the population before it gave up
                continue
            state, value = evaluate(trainable, trial)
            _tell(study, trial, state, value, told, progress)


class _Told(dict):
    """{trial number: state} of a batch's told trials, and the sequential loop's rule over
    all told so far: ``max_failures`` failed trials in a row stop the study."""

    def __init__(self, failures: list[bool], max_failures: int) -> None:
        super().__init__()
        self.failures, self.max_failures = failures, max_failures

    def record(self, study: optuna.Study, trial: optuna.Trial, state: TrialState) -> None:
        self[trial.number] = state
        self.failures.append(state == TrialState.FAIL)
        in_a_row = next(
            (i for i, failed in enumerate(reversed(self.failures)) if not failed),
            len(self.failures),
        )
        if in_a_row >= self.max_failures:
            reason = study.trials[trial.number].user_attrs.get("fail_reason", "?")
            raise TooManyFailuresError(
                f"{in_a_row} trials failed in a row, the last (trial {trial.number}) with "
                f"{reason}; fix the recipe or search space (or raise --max-failures)"
            )


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    state: TrialState,
    value: float | None,
    told: _Told,
    progress: Any,
) -> None:
    tell(study, trial, state, value)  # an exhausted grid: the next ask finds no point left
    told.record(study, trial, state)
    if progress is not None:
        progress(study)


# The largest population ``auto`` picks: on 2 CPU cores the digits MLP's trials/min stops
# growing near 32 (bench/population_throughput.py); a GPU keeps gaining far beyond.
AUTO_CAP = {"cpu": 32, "cuda": 256}


def check_population(
    population: int | str,
    sampler: str,
    space: SearchSpace | None = None,
    n_trials: int | None = None,
) -> None:
    if population == "auto":
        return
    if isinstance(population, bool) or not isinstance(population, int) or population < 1:
        raise ConfigError(f"--population must be auto or an integer >= 1, got {population!r}")
    if n_trials is not None and population > n_trials:
        raise ConfigError(
            f"--population {population} is larger than the budget of {n_trials} "
            f"trial{'s' if n_trials != 1 else ''}: use --population {n_trials} or "
            "less (or auto)"
        )
    if population > 1 and sampler == "grid" and space is not None:
        size = _grid_size(space.grid())
        if population > size:
            raise ConfigError(
                f"--population {population} is larger than the grid, which has "
                f"{size} point{'s' if size != 1 else ''}: use --population {size} "
                "or less, or add values to the space's lists"
            )


def _grid_points_left(space: SearchSpace, trials: list[optuna.trial.FrozenTrial]) -> int:
    """Grid points no trial has taken yet (finished, failed or running). GridSampler asked for
    more than that hands out running points again (it must see every point finish before it
    stops the study), so a population would train duplicates; its own count is private, so the
    points are counted here from the trials' public params."""
    grid = space.grid()
    choices = [set(values) for values in grid.values()]  # Optuna's choices are hashable
    taken = {
        point
        for point in (
            tuple(t.params.get(path) for path in grid)
            for t in trials
            if t.state != TrialState.WAITING
        )
        if all(value in values for value, values in zip(point, choices))
    }
    return _grid_size(grid) - len(taken)


def _grid_size(grid: dict[str, list[Any]]) -> int:
    return math.prod(len(values) for values in grid.values())


def choose_population(
    population: int | str,
    recipe: dict[str, Any],
    space: SearchSpace,
    *,
    n_trials: int,
    n_workers: int,
    sampler: str,
    accelerator: str,
    trainer_args: list[str],
) -> tuple[int, str | None]:
    """``--population auto``: how many trials train at once, and the line that says so (the
    caller prints it once the run starts: a refused run says only why). One by one
    where the recipe cannot form populations; else a quarter of the budget (per worker, so
    the sampler sees 4 rounds of results), bounded by the grid, by ``AUTO_CAP`` for the
    device, and by a quarter of the device's free memory over what one member holds (weights,
    gradients and two optimizer states)."""
    if population != "auto":
        return cast(int, population), None  # an int: check_population
    reason = why_not_population(apply_overrides(recipe, space.first_values()))
    if reason is not None:
        return 1, f"population auto: 1, trials run one by one ({reason})"
    device = (
        "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"
    )
    # At least 4 batches: a sampler learns from results between batches only. Measured on
    # digits, lr x wd, 64 trials, 3 TPE seeds (bench/population_throughput.py --quality): best
    # val_acc 0.9849 one by one, 0.9803 at N=32 and 0.9779 at N=16, i.e. 1-2 of the ~290
    # validation images: a small cost that this bound does not remove on so small a budget.
    bounds = {
        "4 sampler rounds": max(2, math.ceil(n_trials / n_workers / 4)),
        device: AUTO_CAP[device],
    }
    if sampler == "grid":
        bounds["grid points"] = _grid_size(space.grid())

    module = parse_recipe(apply_overrides(recipe, space.first_values()), trainer_args).model
    member = sum(4 * p.numel() * p.element_size() for p in module.parameters())
    member += sum(b.numel() * b.element_size() for b in module.buffers())
    if device == "cuda":
        free = torch.cuda.mem_get_info()[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    bounds["memory"] = max(1, free // 4 // max(member, 1))
    limit = min(bounds, key=lambda name: bounds[name])
    size = bounds[limit]
    if size < 2:
        return 1, f"population auto: 1, trials run one by one (bounded by {limit})"
    return size, (
        f"population auto: {size} trials train at once as one vectorized model "
        f"(bounded by {limit}; --population 1 trains them one by one)"
    )


def member_scalar(recipe: dict[str, Any], path: str) -> bool:
    """Whether search-space ``path`` may differ between the members of one population (a
    scalar the module hands to its optimizer and schedule); otherwise it is structure."""
    parts = path.split(".")
    if parts[0] != "model" or len(parts) < 2:
        return False
    class_path, _ = _model_args(recipe)
    key = parts[2] if parts[1] == "init_args" and len(parts) > 2 else parts[1]
    return key in _MEMBER_KEYS if class_path in _TASK else _is_module_scalar(key)


def _structural(trial: optuna.Trial, recipe: dict[str, Any]) -> dict[str, Any]:
    """``trial``'s parameters that shape a population (batch size, optimizer, schedule,
    architecture …): everything but the member scalars."""
    return {name: value for name, value in trial.params.items() if not member_scalar(recipe, name)}


def _ask_batch(
    study: optuna.Study,
    space: SearchSpace,
    recipe: dict[str, Any],
    size: int,
    fixed: dict[str, Any] | None = None,
    exact: list[dict[str, Any]] | None = None,
) -> tuple[list[optuna.Trial], list[dict[str, Any]]]:
    """``size`` trials and their overrides. Without ``fixed`` the first is sampled as usual
    and the others keep its structural parameters; with it, all keep those. They are kept
    through Optuna's PartialFixedSampler around the study's sampler and draw their own
    scalars, so a space that varies structure still forms populations. ``exact``: every
    value of each trial fixed (PBT's explored ones)."""
    trials: list[optuna.Trial] = []
    overrides: list[dict[str, Any]] = []
    original = study.sampler
    try:
        for i in range(size):
            if exact is not None:
                fixed = exact[i]
            elif fixed is None and trials:
                fixed = _structural(trials[0], recipe)
            if fixed and not isinstance(original, optuna.samplers.GridSampler):
                with warnings.catch_warnings():  # experimental in Optuna 5.0; used as documented
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.sampler = optuna.samplers.PartialFixedSampler(fixed, original)
            trial = study.ask()
            claim(trial)  # which process runs it: how another one tells it alive or dead
            trials.append(trial)
            overrides.append(space.suggest(trial))
    finally:
        study.sampler = original
    return trials, overrides

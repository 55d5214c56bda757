"""Fair optimizer comparison: equal tuning budgets, several seeds, variance in the report.

The protocol of Schmidt et al. 2021 ("Descending through a Crowded Valley") in small: for
each optimizer, a study with the same budget over its own hyperparameters (lr always; weight
decay; momentum where it has one), a "defaults" row with no tuning (its typical lr), then the
best configuration retrained over ``seeds`` seeds. Finished studies and finished seed runs
are reused, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.callbacks import Callback

from lit_optim import OPTIMIZERS, SCHEDULERS, ConfigError, Objective, parse_direction
from lit_optim.catalog import check_count, check_number
from tuning.reports.compare_report import write_compare_report, write_convex_report
from tuning.runner.population import check_population
from tuning.runner.study import StudyRequest, run_study
from tuning.runner.trainable import trial_trainer_args
from tuning.search.preflight import LoggedProbe, MetricNotLoggedError, parse_recipe
from tuning.search.recipe import apply_overrides, load_recipe, write_recipe
from tuning.storage.record import content_sha256

__all__ = ["Ranking", "check_compare_args", "optimizer_space", "run_compare"]

# Where a module's validation metric has a test twin: ``val_acc`` → ``test_acc``,
# ``valid/top1`` → ``test/top1``. Only a naming convention for finding the twin; the twin is
# used only if the module's test step really logs it (otherwise give --test-metric).
_VALIDATION_PREFIXES = ("validation", "valid", "val")

# A seed run's cache is valid for this result format only (a new key is a new format).
_SEED_RUN_FORMAT = 2


def check_compare_args(
    names: list[str], budget: int, seeds: int, target: float | None, schedulers: list[str] | None
) -> None:
    """Everything that can be wrong with a comparison's own arguments, before any training."""
    if not names:
        raise ConfigError("give at least one optimizer: --optimizers sgd,adam")
    for name in names:
        OPTIMIZERS.get(name)
    for name in schedulers or ():
        SCHEDULERS.get(name)
    check_count("budget", budget, note=" (trials per optimizer)")
    check_count("seeds", seeds)
    if target is not None:
        check_number("--target", target)


@dataclass(frozen=True)
class Ranking:
    """How compare ranks: what the studies maximize or minimize (``objective``), and what the
    report ranks the retrained runs by: the test twin of the objective's metric where the
    module's test step logs one, else the objective itself at the end of training."""

    objective: Objective
    test_metric: str | None

    @property
    def rank_metric(self) -> str:
        return self.test_metric or self.objective.metric

    def sort_key(self, value: float) -> float:
        return -value if self.objective.direction == "max" else value

    def reached(self, value: float, target: float) -> bool:
        return value >= target if self.objective.direction == "max" else value <= target


def test_twin(metric: str) -> str | None:
    """``val_acc`` → ``test_acc``, ``valid/top1`` → ``test/top1``; None for other names."""
    for prefix in _VALIDATION_PREFIXES:
        for sep in ("_", "/", "."):
            if metric.startswith(prefix + sep):
                return "test" + sep + metric[len(prefix) + 1 :]
    return None


def resolve_ranking(
    recipe: dict[str, Any],
    trainer_args: list[str],
    metric: str | None,
    direction: str | None,
    test_metric: str | None,
) -> Ranking:
    """The metric and its direction (``--metric``/``--direction``, else the recipe's
    ``objective:``, else ``val_acc``), checked against what the module logs in one training,
    validation and test batch: a metric never logged, with no direction, or a direction that
    contradicts its Metric is one ConfigError before anything trains."""
    declared = recipe.get("objective") or {}
    metric = metric or declared.get("metric") or "val_acc"
    given, given_as = (
        (direction, "--direction")
        if direction is not None
        else (declared.get("direction"), "the recipe's objective.direction")
    )
    probe = LoggedProbe(recipe, trainer_args)
    objective = probe.objective(
        metric,
        given,
        given_as=given_as,
        what="--metric",
        declare="give --direction max or --direction min",
        fix="give --metric, or objective.metric in the recipe",
    )
    if test_metric is not None and test_metric not in probe.tested:
        raise MetricNotLoggedError.naming(
            test_metric,
            f"{probe.module}'s test step",
            probe.tested,
            what="--test-metric",
            fix="give a metric its test_step logs, or leave --test-metric out",
        )
    twin = test_twin(metric)
    return Ranking(objective, test_metric or (twin if twin in probe.tested else None))


def optimizer_space(name: str, objective: Objective, takes: set[str]) -> dict[str, Any]:
    """The hyperparameters this optimizer has, around its typical lr, that the module takes
    (weight decay and momentum only where the module has ``weight_decay`` and
    ``optimizer_kwargs`` init args). Momentum is tuned only for an optimizer defined by it
    (``momentum``, ``nesterov``): ``sgd`` and ``rmsprop`` are compared as themselves, or plain
    SGD with a tuned momentum would be the momentum entry again, under another name."""
    info = OPTIMIZERS.get(name)
    lr = info.typical_lr
    params: dict[str, Any] = {"model.lr": f"log[{lr / 100:g}, {min(lr * 100, 10.0):g}]"}
    if info.supports_weight_decay and "weight_decay" in takes:
        params["model.weight_decay"] = "log[1.0e-6, 1.0e-1]"
    if info.has_momentum and info.defaults.get("momentum") and "optimizer_kwargs" in takes:
        params["model.optimizer_kwargs.momentum"] = "uniform[0.5, 0.99]"
    return {"metric": objective.metric, "direction": objective.study_direction, "params": params}


def _module_init_args(recipe: dict[str, Any], trainer_args: list[str], compares: str) -> set[str]:
    """The init args of the recipe's module; ConfigError before any training if it cannot take
    what the comparison sets (``model.optimizer`` and ``model.lr``, and ``model.scheduler``
    when schedules are compared)."""
    cli = parse_recipe(recipe, trainer_args)
    model = cli.config["model"]
    # A module without init args has no init_args at all (a KeyError once).
    takes = {k for k in (model.get("init_args") or {}).keys() if "." not in k}
    needed = ["optimizer", "lr"] + (["scheduler"] if compares == "schedulers" else [])
    missing = [k for k in needed if k not in takes]
    if missing:
        raise ConfigError(
            f"lit-tune compare sets {', '.join('model.' + k for k in needed)}, but "
            f"{model['class_path']} does not take {', '.join(missing)} (it takes: "
            f"{', '.join(sorted(takes)) or 'nothing'}); add them as init args and build the "
            "optimizer with lit_optim.create_optimizer (and the schedule with create_scheduler)"
        )
    return takes


class _Curves(Callback):
    """A seed run's curves, whatever the module logs: the loss its ``training_step`` returns,
    per step, and the objective's metric per epoch. An epoch's value is read when the next
    epoch starts or the fit ends: a module's epoch-end training metrics reach
    ``callback_metrics`` only after the callbacks' ``on_train_epoch_end``."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.losses: list[tuple[int, float]] = []
        self.epochs: list[tuple[int, float]] = []
        self.done = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.losses.append((trainer.global_step, float(loss)))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.done += 1

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._read(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._read(trainer)

    def _read(self, trainer) -> None:
        if self.done > len(self.epochs) and self.metric in trainer.callback_metrics:
            self.epochs.append((self.done - 1, float(trainer.callback_metrics[self.metric])))


def _seed_run(
    recipe: dict[str, Any], path: Path, seed: int, goal: Ranking, target: float | None
) -> dict[str, Any]:
    """Train ``recipe`` with ``seed``, then test it where the module has a test step; curves
    and final numbers, cached in ``path``."""
    from lightning.pytorch.utilities.model_helpers import is_overridden

    from lit_optim.cli import SCRATCH_TRAINER_ARGS, cli_objects

    cache = path / "result.json"
    recipe = apply_overrides(recipe, {"seed_everything": seed})
    key = content_sha256(
        {
            "recipe": recipe,
            "target": target,
            "format": _SEED_RUN_FORMAT,
            "metric": goal.objective.metric,
            "test_metric": goal.test_metric,
        }
    )
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("recipe_sha256") == key:
            return cached
        raise ConfigError(
            f"{path} holds a seed run of another recipe, metric or target (another recipe, "
            "budget or best trial); rerun the comparison under a new --name"
        )
    config = write_recipe(recipe, path / "recipe.yaml", header=f"seed {seed}")
    start = time.perf_counter()
    cli = cli_objects(config, *SCRATCH_TRAINER_ARGS)
    curves = _Curves(goal.objective.metric)
    cli.trainer.callbacks.append(curves)  # type: ignore[attr-defined]  # set by its connector
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    tested: dict[str, float] = {}
    if goal.test_metric is not None and is_overridden("test_step", cli.model):
        (logged,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
        tested = {name: float(value) for name, value in logged.items()}
    values = [v for _, v in curves.epochs]
    reached = (
        None
        if target is None
        else next((e for e, v in curves.epochs if goal.reached(v, target)), None)
    )
    result = {
        "seed": seed,
        "seconds": seconds,
        "recipe_sha256": key,
        "final": values[-1] if values else math.nan,
        "best": goal.objective.best([(v, None) for v in values])[0] if values else math.nan,
        "test": tested.get(goal.test_metric, math.nan) if goal.test_metric else None,
        "test_metrics": tested,
        "epochs_to_target": None if reached is None else reached + 1,
        "seconds_to_target": None if reached is None else seconds * (reached + 1) / len(values),
        "train_loss_steps": curves.losses,
        "metric_epochs": curves.epochs,
    }
    cache.write_text(json.dumps(result))
    return result


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(key):
        values = [r[key] for r in runs if r[key] is not None and math.isfinite(r[key])]
        if not values:
            return None
        return {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        }

    return {
        key: stats(key)
        for key in ("final", "best", "test", "seconds", "epochs_to_target", "seconds_to_target")
    }


def run_compare(
    *,
    recipe: str,
    optimizers: list[str],
    budget: int,
    seeds: int,
    run_dir: Path,
    target: float | None = None,
    schedulers: list[str] | None = None,
    accelerator: str = "auto",
    convex: list[str] | None = None,
    population: int | str = 1,
    metric: str | None = None,
    direction: str | None = None,
    test_metric: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the comparison; returns the results that the report is made from.

    With ``schedulers``, the first optimizer is compared across those schedules instead.
    ``metric``/``direction``: the objective every study tunes and the report ranks by (see
    ``resolve_ranking``). ``overrides``: recipe values by dotted path
    (``{"trainer.max_epochs": 30}``, as ``lit-tune run`` takes them), applied before anything
    else. ``population``: each optimizer's study trains up to that
    many trials at once (``lit-tune run --population``); the seed runs of the best and default
    settings are trained one by one.
    """
    check_compare_args(optimizers, budget, seeds, target, schedulers)
    check_population(population, "tpe", n_trials=budget)
    unknown = [c for c in convex or () if c not in ("quadratic", "logreg")]
    if unknown:
        raise ConfigError(f"unknown convex problem {unknown[0]!r}; choose quadratic or logreg")
    if direction is not None:
        parse_direction(direction, "--direction")
    base = apply_overrides(load_recipe(recipe), overrides or {})
    trainer_args = trial_trainer_args(accelerator)
    takes = _module_init_args(base, trainer_args, "schedulers" if schedulers else "optimizers")
    entries = (
        [
            (f"{optimizers[0]}+{s}", {"model.optimizer": optimizers[0], "model.scheduler": s})
            for s in schedulers
        ]
        if schedulers
        else [(name, {"model.optimizer": name}) for name in optimizers]
    )
    goal = resolve_ranking(
        apply_overrides(base, entries[0][1]), trainer_args, metric, direction, test_metric
    )
    run = _EntryRun(
        base=base,
        goal=goal,
        takes=takes,
        storage_url=f"sqlite:///{run_dir.resolve() / 'studies.db'}",
        budget=budget,
        seeds=seeds,
        target=target,
        accelerator=accelerator,
        population=population,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "recipe": str(Path(recipe).resolve()),
        "overrides": overrides or {},
        "budget": budget,
        "seeds": seeds,
        "target": target,
        "metric": goal.objective.metric,
        "direction": goal.objective.direction,
        "test_metric": goal.test_metric,
        "rank_metric": goal.rank_metric,
        "entries": {label: _run_entry(run, label, fixed, run_dir) for label, fixed in entries},
    }
    rank_key = "test" if goal.test_metric else "final"

    def rank(label: str) -> float:
        stat = results["entries"][label]["tuned"][rank_key]
        return math.inf if stat is None else goal.sort_key(stat["mean"])

    results["ranking"] = sorted(results["entries"], key=rank)
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    _write_reports(results, run_dir, convex or [])
    return results


@dataclass(frozen=True)
class _EntryRun:
    """What every entry of one comparison shares: the recipe (overrides applied), the ranking,
    the module's init args, the studies' storage and the budgets."""

    base: dict[str, Any]
    goal: Ranking
    takes: set[str]
    storage_url: str
    budget: int
    seeds: int
    target: float | None
    accelerator: str
    population: int | str


def _run_entry(run: _EntryRun, label: str, fixed: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """One entry (an optimizer, or a schedule of the first): its study (resumed where it
    exists), then its best and its default settings retrained over the seeds."""
    name = fixed["model.optimizer"]
    entry_recipe = apply_overrides(run.base, fixed)
    folder = run_dir / label.replace("+", "_")
    space_path = folder / "space.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    space_path.write_text(yaml.safe_dump(optimizer_space(name, run.goal.objective, run.takes)))
    recipe_path = write_recipe(entry_recipe, folder / "recipe.yaml", header=label)
    study = run_study(
        StudyRequest(
            recipe=str(recipe_path),
            space=str(space_path),
            study_name=label,
            storage_url=run.storage_url,
            run_dir=folder / "trials",
            n_trials=run.budget,
            accelerator=run.accelerator,
            population=run.population,
        )
    )
    best = apply_overrides(entry_recipe, dict(study.best_params))
    defaults = apply_overrides(
        entry_recipe,
        {
            "model.lr": OPTIMIZERS.get(name).typical_lr,
            **({"model.weight_decay": 0.0} if "weight_decay" in run.takes else {}),
        },
    )
    tuned_runs = [
        _seed_run(best, folder / f"tuned_seed{s}", s, run.goal, run.target)
        for s in range(run.seeds)
    ]
    default_runs = [
        _seed_run(defaults, folder / f"defaults_seed{s}", s, run.goal, run.target)
        for s in range(run.seeds)
    ]
    trials = [
        {
            "number": t.number,
            "lr": t.params.get("model.lr"),
            "state": t.state.name,
            "value": t.value,
        }
        for t in study.trials
    ]
    return {
        "optimizer": name,
        "study": label,
        "best_params": study.best_params,
        "best_trial_value": study.best_value,
        "trials": trials,
        "tuned": _summary(tuned_runs),
        "defaults": _summary(default_runs),
        "tuned_runs": tuned_runs,
        "default_runs": default_runs,
    }


def _write_reports(results: dict[str, Any], run_dir: Path, convex: list[str]) -> None:
    """report.md and its plots, and the convex problems' plots against the theory."""
    write_compare_report(results, run_dir)
    for problem in convex:
        write_convex_report(run_dir, problem)
    if convex:
        with open(run_dir / "report.md", "a") as md:
            md.write(
                "\n## Convex problems against the theory\n\n"
                + "".join(f"![{p}](convex_{p}.png)\n" for p in convex)
            )

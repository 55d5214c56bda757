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
from pathlib import Path
from typing import Any

import yaml

from lit_optim import OPTIMIZERS, SCHEDULERS, ConfigError
from lit_optim.catalog.checks import check_count, check_number
from tuning.search.recipe import apply_overrides, load_recipe, write_recipe
from tuning.storage.record import content_sha256
from tuning.runner.study import run_study

__all__ = ["check_compare_args", "optimizer_space", "run_compare"]


def check_compare_args(names: list[str], budget: int, seeds: int, target_acc: float,
                       schedulers: list[str] | None) -> None:
    """Everything that can be wrong with a comparison, before any training."""
    if not names:
        raise ConfigError("give at least one optimizer: --optimizers sgd,adam")
    for name in names:
        OPTIMIZERS.get(name)
    for name in schedulers or ():
        SCHEDULERS.get(name)
    check_count("budget", budget, note=" (trials per optimizer)")
    check_count("seeds", seeds)
    check_number("target accuracy", target_acc, low=0, high=1)


def optimizer_space(name: str) -> dict[str, Any]:
    """The hyperparameters this optimizer has, around its typical lr."""
    info = OPTIMIZERS.get(name)
    lr = info.typical_lr
    params: dict[str, Any] = {"model.lr": f"log[{lr / 100:g}, {min(lr * 100, 10.0):g}]"}
    if info.supports_weight_decay:
        params["model.weight_decay"] = "log[1.0e-6, 1.0e-1]"
    if info.has_momentum:
        params["model.optimizer_kwargs.momentum"] = "uniform[0.5, 0.99]"
    return {"metric": "val_acc", "direction": "maximize", "params": params}


def _check_module_takes_optimizer_args(recipe: dict[str, Any], accelerator: str) -> None:
    """The per-optimizer spaces set model.optimizer, model.lr and model.weight_decay: a user's
    module must take those init args (as ClassificationTask does) to be compared."""
    from tuning.runner.objective import trial_trainer_args
    from tuning.search.preflight import parse_recipe

    cli = parse_recipe(recipe, trial_trainer_args(accelerator))
    model = cli.config["model"]
    missing = [k for k in ("optimizer", "lr", "weight_decay") if k not in model["init_args"]]
    if missing:
        takes = ", ".join(k for k in model["init_args"].keys() if "." not in k) or "nothing"
        raise ConfigError(
            f"lit-tune compare sets model.optimizer, model.lr and model.weight_decay, but "
            f"{model['class_path']} does not take {', '.join(missing)} (it takes: {takes}); add "
            "them as init args and build the optimizer with lit_optim.create_optimizer")


def _seed_run(recipe: dict[str, Any], path: Path, seed: int, target_acc: float) -> dict[str, Any]:
    """Train ``recipe`` with ``seed``; curves and final numbers, cached in ``path``."""
    cache = path / "result.json"
    recipe = apply_overrides(recipe, {"seed_everything": seed})
    key = content_sha256({"recipe": recipe, "target_acc": target_acc})
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("recipe_sha256") == key:
            return cached
        raise ConfigError(
            f"{path} holds a seed run of another recipe or target (another recipe, budget or "
            "best trial); rerun the comparison under a new --name")
    import csv

    from lit_optim.cli.lightning_cli import cli_objects

    config = write_recipe(recipe, path / "recipe.yaml", header=f"seed {seed}")
    start = time.perf_counter()
    cli = cli_objects(config, "--trainer.enable_progress_bar=false",
                      "--trainer.enable_checkpointing=false", "--trainer.enable_model_summary=false",
                      "--trainer.log_every_n_steps=1", "--trainer.logger=CSVLogger",
                      f"--trainer.logger.save_dir={path}")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    (test,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    rows = list(csv.DictReader(open(next(path.rglob("metrics.csv")))))
    steps = [(int(r["step"]), float(r["train_loss_step"])) for r in rows if r.get("train_loss_step")]
    epochs = [(int(r["epoch"]), float(r["val_acc"]), float(r["val_loss"])) for r in rows if r.get("val_acc")]
    reached = next((e for e, acc, _ in epochs if acc >= target_acc), None)
    result = {
        "seed": seed, "seconds": seconds, "recipe_sha256": key,
        "val_acc": epochs[-1][1] if epochs else math.nan,
        "best_val_loss": min((loss for _, _, loss in epochs), default=math.nan),
        "test_acc": float(test["test_acc"]),
        "epochs_to_target": None if reached is None else reached + 1,
        "seconds_to_target": None if reached is None else seconds * (reached + 1) / len(epochs),
        "train_loss_steps": steps, "val_acc_epochs": [(e, a) for e, a, _ in epochs],
    }
    cache.write_text(json.dumps(result))
    return result


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def stats(key):
        values = [r[key] for r in runs if r[key] is not None and math.isfinite(r[key])]
        if not values:
            return None
        return {"mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0}

    return {key: stats(key) for key in
            ("val_acc", "test_acc", "best_val_loss", "seconds", "epochs_to_target", "seconds_to_target")}


def run_compare(*, recipe: str, optimizers: list[str], budget: int, seeds: int, run_dir: Path,
                target_acc: float = 0.95, schedulers: list[str] | None = None,
                accelerator: str = "auto", convex: list[str] | None = None,
                population: int = 1) -> dict[str, Any]:
    """Run (or resume) the comparison; returns the results that the report is made from.

    With ``schedulers``, the first optimizer is compared across those schedules instead.
    ``population``: each optimizer's study trains up to that many trials at once
    (``lit-tune run --population``); the seed runs of the best and default settings are
    trained one by one.
    """
    from tuning.runner.population import check_population

    check_compare_args(optimizers, budget, seeds, target_acc, schedulers)
    check_population(population, "tpe")
    unknown = [c for c in convex or () if c not in ("quadratic", "logreg")]
    if unknown:
        raise ConfigError(f"unknown convex problem {unknown[0]!r}; choose quadratic or logreg")
    base = load_recipe(recipe)
    _check_module_takes_optimizer_args(base, accelerator)
    storage_url = f"sqlite:///{run_dir / 'studies.db'}"
    run_dir.mkdir(parents=True, exist_ok=True)
    entries = ([(f"{optimizers[0]}+{s}", {"model.optimizer": optimizers[0], "model.scheduler": s})
                for s in schedulers] if schedulers else
               [(name, {"model.optimizer": name}) for name in optimizers])
    results: dict[str, Any] = {"recipe": str(Path(recipe).resolve()), "budget": budget,
                               "seeds": seeds, "target_acc": target_acc, "entries": {}}
    for label, fixed in entries:
        name = fixed["model.optimizer"]
        entry_recipe = apply_overrides(base, fixed)
        folder = run_dir / label.replace("+", "_")
        space_path = folder / "space.yaml"
        folder.mkdir(parents=True, exist_ok=True)
        space_path.write_text(yaml.safe_dump(optimizer_space(name)))
        recipe_path = write_recipe(entry_recipe, folder / "recipe.yaml", header=label)
        study = run_study(recipe=str(recipe_path), space=str(space_path), study_name=label,
                          storage_url=storage_url, run_dir=folder / "trials", n_trials=budget,
                          accelerator=accelerator, population=population)
        best = apply_overrides(entry_recipe, dict(study.best_params))
        defaults = apply_overrides(entry_recipe, {"model.lr": OPTIMIZERS.get(name).typical_lr,
                                                  "model.weight_decay": 0.0})
        tuned_runs = [_seed_run(best, folder / f"tuned_seed{s}", s, target_acc) for s in range(seeds)]
        default_runs = [_seed_run(defaults, folder / f"defaults_seed{s}", s, target_acc)
                        for s in range(seeds)]
        trials = [{"number": t.number, "lr": t.params.get("model.lr"), "state": t.state.name,
                   "val_acc": t.value, "val_loss": t.user_attrs.get("val_loss")}
                  for t in study.trials]
        results["entries"][label] = {
            "optimizer": name, "study": label, "best_params": study.best_params,
            "best_trial_val_acc": study.best_value, "trials": trials,
            "tuned": _summary(tuned_runs), "defaults": _summary(default_runs),
            "tuned_runs": tuned_runs, "default_runs": default_runs,
        }
    ranking = sorted(results["entries"], key=lambda k: -results["entries"][k]["tuned"]["test_acc"]["mean"])
    results["ranking"] = ranking
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    from tuning.reports.compare_report import write_compare_report, write_convex_report

    write_compare_report(results, run_dir)
    for problem in convex or ():
        write_convex_report(run_dir, problem)
    if convex:
        with open(run_dir / "report.md", "a") as md:
            md.write("\n## Convex problems against the theory\n\n" + "".join(
                f"![{p}](convex_{p}.png)\n" for p in convex))
    return results


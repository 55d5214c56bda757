"""Trials per minute of ``lit-tune run --population N`` against ``--population 1`` (today's
sequential path), on the digits recipe, measured one after the other in this one process.

The space is lr, weight decay and momentum (sgd momentum family), the budget the same
number of finished trials for each N, the recipe's 30 epochs, no pruner (so every trial
trains fully and the rates compare like for like).

    python bench/population_throughput.py [--n-trials 32] [--sizes 8,32] 2>/dev/null

The last line is ``population speed-up: X.Xx (N=<largest>)``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from tuning.study import run_study

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "digits" / "mlp.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-trials", type=int, default=32)
    parser.add_argument("--sizes", default="8,32")
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    sizes = [1] + [int(s) for s in args.sizes.split(",") if s]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "space.yaml"
        space.write_text(yaml.safe_dump({"metric": "val_acc", "direction": "maximize", "params": {
            "model.optimizer": ["momentum"], "model.lr": "log[1e-3, 0.3]",
            "model.weight_decay": "log[1e-6, 1e-3]",
            "model.optimizer_kwargs.momentum": "uniform[0.5, 0.95]"}}))
        print(f"{'population':>10} {'trials':>6} {'seconds':>8} {'trials/min':>10} {'best val_acc':>12}")
        for n in sizes:
            start = time.perf_counter()
            study = run_study(recipe=str(RECIPE), space=str(space), study_name=f"n{n}",
                              storage_url=f"sqlite:///{tmp}/n{n}.db", run_dir=Path(tmp) / f"n{n}",
                              n_trials=args.n_trials, pruner="none", accelerator=args.accelerator,
                              population=n)
            seconds = time.perf_counter() - start
            rates[n] = args.n_trials / seconds * 60
            print(f"{n:>10} {len(study.trials):>6} {seconds:>8.1f} {rates[n]:>10.1f} "
                  f"{study.best_value:>12.4f}", flush=True)
    largest = max(sizes)
    print(f"population speed-up: {rates[largest] / rates[1]:.1f}x (N={largest})")


if __name__ == "__main__":
    main()

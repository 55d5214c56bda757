"""Trials per minute of ``lit-tune run --population N`` against ``--population 1`` (today's
sequential path), measured one after the other in this one process.

1. The digits recipe, a space over lr, weight decay and momentum (the sgd momentum family),
   the same sampler seed, the same budget of finished trials for each N, the recipe's 30
   epochs, no pruner (so every trial trains fully and the rates compare like for like).
2. ``--mnist``: the MNIST-shaped synthetic MLP (784-200-100-50-10, 60,000 training samples,
   batch 128, 1 epoch), ``--mnist-trials`` trials, sequential against N = that many.

    python bench/population_throughput.py [--n-trials 64] [--sizes 8,32] [--mnist] 2>/dev/null

The last line is ``population speed-up: X.Xx (N=<largest>)`` for the digits study.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from tuning.runner.study import run_study

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "digits" / "mlp.yaml"
SPACE = {"metric": "val_acc", "direction": "maximize", "params": {
    "model.optimizer": ["momentum"], "model.lr": "log[1e-3, 0.3]",
    "model.weight_decay": "log[1e-6, 1e-3]",
    "model.optimizer_kwargs.momentum": "uniform[0.5, 0.95]"}}


def mnist_shaped_recipe() -> dict:
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["trainer"]["max_epochs"] = 1
    recipe["trainer"]["log_every_n_steps"] = 50
    recipe["model"]["network_kwargs"] = {"hidden_dims": [200, 100, 50]}
    recipe["data"] = {"dataset": "synthetic", "batch_size": 128, "val_fraction": 0.2,
                      "dataset_kwargs": {"num_samples": 75_000, "num_test_samples": 1_000,
                                         "input_shape": [1, 28, 28]}}  # 60,000 to train on
    return recipe


def compare(tmp: Path, label: str, recipe: Path, n_trials: int, sizes: list[int],
            accelerator: str) -> dict[int, float]:
    space = tmp / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    print(f"{label}: {n_trials} trials each")
    print(f"{'population':>10} {'trials':>6} {'seconds':>8} {'trials/min':>10} {'best val_acc':>12}")
    rates = {}
    for n in sizes:
        name = f"{label}-n{n}"
        start = time.perf_counter()
        study = run_study(recipe=str(recipe), space=str(space), study_name=name,
                          storage_url=f"sqlite:///{tmp}/{name}.db", run_dir=tmp / name,
                          n_trials=n_trials, pruner="none", accelerator=accelerator,
                          population=n)
        seconds = time.perf_counter() - start
        rates[n] = n_trials / seconds * 60
        print(f"{n:>10} {len(study.trials):>6} {seconds:>8.1f} {rates[n]:>10.1f} "
              f"{study.best_value:>12.4f}", flush=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-trials", type=int, default=64)
    parser.add_argument("--sizes", default="8,32")
    parser.add_argument("--mnist", action="store_true", help="also the MNIST-shaped MLP")
    parser.add_argument("--mnist-trials", type=int, default=16)
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    sizes = [1] + [int(s) for s in args.sizes.split(",") if s]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.mnist:
            mnist = tmp / "mnist.yaml"
            mnist.write_text(yaml.safe_dump(mnist_shaped_recipe()))
            rates = compare(tmp, "mnist-shaped", mnist, args.mnist_trials,
                            [1, args.mnist_trials], args.accelerator)
            print(f"mnist-shaped speed-up: {rates[args.mnist_trials] / rates[1]:.1f}x "
                  f"(N={args.mnist_trials})")
        rates = compare(tmp, "digits", RECIPE, args.n_trials, sizes, args.accelerator)
    largest = max(sizes)
    print(f"population speed-up: {rates[largest] / rates[1]:.1f}x (N={largest})")


if __name__ == "__main__":
    main()

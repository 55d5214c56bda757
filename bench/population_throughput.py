"""Trials per minute of ``lit-tune run --population N`` against ``--population 1`` (today's
sequential path), measured one after the other in this one process.

1. The digits recipe, a space over lr, weight decay and momentum (the sgd momentum family),
   the same sampler seed, the same budget of finished trials for each N, the recipe's 30
   epochs, no pruner (so every trial trains fully and the rates compare like for like).
2. ``--mnist``: the MNIST-shaped synthetic MLP (784-200-100-50-10, 60,000 training samples,
   batch 128, 1 epoch), ``--mnist-trials`` trials, sequential against N = that many.
3. ``--user-module``: a small CNN LightningModule written as a user writes one
   (``bench/user_cnn.py``: its own DataModule and metric names, dropout, BatchNorm, a head
   param group), lr × weight-decay space, ``--user-trials`` trials, 10 epochs, one by one
   against N = ``--user-sizes`` (``lit_optim.population.ModulePopulation``).
   With it, the arithmetic floor: the same 32 members' forward and backward passes one after
   another in plain torch (no Lightning, no optimizer, no data loader), every training and
   validation batch of the 10 epochs: the time a population of them cannot beat with torch's
   CPU kernels unless a vmapped kernel beats the members' own, and the speed-up that floor
   allows over the one-by-one rate measured in the same run.
4. ``--mnist1d``: the harder offline task, ``recipes/mnist1d/cnn.yaml`` (the paper's 1-D
   CNN) for 30 epochs, Adam, lr × weight decay, ``--mnist1d-trials`` trials, one by one
   against N = that many: trials/min and the best val_acc each finds.
5. ``--health``: the digits study of 1. with the README's training-health callbacks in the
   recipe (``GradientClipper`` adaptive, ``LayerDiagnostics`` every 50 steps,
   ``NonFiniteGuard`` stop), which populations apply per member: one by one against N.
6. ``--quality``: the best val_acc at an equal budget of ``--n-trials``, ``--population 1``
   against ``auto`` (lit-tune's default), for 3 sampler seeds, on the lr × weight-decay space
   and on ``recipes/digits/search.yaml`` (structure varies: optimizer, batch size, schedule,
   activation, dropout), TPE and the median pruner as lit-tune runs them.

    python bench/population_throughput.py [--n-trials 64] [--sizes 8,32] [--mnist]
        [--mnist1d] [--user-module] [--health] [--quality] 2>/dev/null

The last line is ``population speed-up: X.Xx (N=<largest>)`` for the digits study.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from tuning.runner.study import StudyRequest, run_study

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "digits" / "mlp.yaml"
SPACE = {
    "metric": "val_acc",
    "direction": "maximize",
    "params": {
        "model.optimizer": ["momentum"],
        "model.lr": "log[1e-3, 0.3]",
        "model.weight_decay": "log[1e-6, 1e-3]",
        "model.optimizer_kwargs.momentum": "uniform[0.5, 0.95]",
    },
}


MNIST1D = ROOT / "recipes" / "mnist1d" / "cnn.yaml"
MNIST1D_SPACE = {
    "metric": "val_acc",
    "direction": "maximize",
    "params": {"model.lr": "log[1e-4, 1e-1]", "model.weight_decay": "log[1e-6, 1e-2]"},
}


def mnist1d_recipe() -> dict:
    recipe = yaml.safe_load(MNIST1D.read_text())
    recipe["trainer"]["max_epochs"] = 30  # 1,080 steps: a fifth of the paper's budget
    return recipe


def health_recipe() -> dict:
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["trainer"]["callbacks"] = [
        {"class_path": "lit_optim.callbacks.GradientClipper", "init_args": {"mode": "adaptive"}},
        {"class_path": "lit_optim.callbacks.LayerDiagnostics", "init_args": {"every_n_steps": 50}},
        {"class_path": "lit_optim.callbacks.NonFiniteGuard", "init_args": {"action": "stop"}},
    ]
    return recipe


def mnist_shaped_recipe() -> dict:
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["trainer"]["max_epochs"] = 1
    recipe["trainer"]["log_every_n_steps"] = 50
    recipe["model"]["network_kwargs"] = {"hidden_dims": [200, 100, 50]}
    recipe["data"] = {
        "dataset": "synthetic",
        "batch_size": 128,
        "val_fraction": 0.2,
        "dataset_kwargs": {
            "num_samples": 75_000,
            "num_test_samples": 1_000,
            "input_shape": [1, 28, 28],
        },
    }  # 60,000 to train on
    return recipe


USER_SPACE = {
    "metric": "valid/top1",
    "params": {  # direction: the logged MulticlassAccuracy's
        "model.lr": "log[1e-4, 3e-2]",
        "model.weight_decay": "log[1e-6, 1e-1]",
    },
}
USER_RECIPE = {
    "seed_everything": 0,
    "model": {"class_path": "user_cnn.DigitsCNN"},
    "data": {"class_path": "user_cnn.DigitsImages"},
    "trainer": {"max_epochs": 10},
}


def compare(
    tmp: Path,
    label: str,
    recipe: Path,
    n_trials: int,
    sizes: list[int],
    accelerator: str,
    space_dict: dict = SPACE,
) -> dict[int, float]:
    space = tmp / f"{label}-space.yaml"
    space.write_text(yaml.safe_dump(space_dict))
    metric = space_dict["metric"]
    print(f"{label}: {n_trials} trials each")
    print(
        f"{'population':>10} {'trials':>6} {'seconds':>8} {'trials/min':>10} {'best ' + metric:>12}"
    )
    rates = {}
    for n in sizes:
        name = f"{label}-n{n}"
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # lit-tune's line per trial
            study = run_study(
                StudyRequest(
                    recipe=str(recipe),
                    space=str(space),
                    study_name=name,
                    storage_url=f"sqlite:///{tmp}/{name}.db",
                    run_dir=tmp / name,
                    n_trials=n_trials,
                    pruner="none",
                    accelerator=accelerator,
                    population=n,
                )
            )
        seconds = time.perf_counter() - start
        rates[n] = n_trials / seconds * 60
        print(
            f"{n:>10} {len(study.trials):>6} {seconds:>8.1f} {rates[n]:>10.1f} "
            f"{study.best_value:>12.4f}",
            flush=True,
        )
    return rates


def arithmetic_floor(n_members: int, epochs: int) -> float:
    """Seconds for ``n_members`` user CNNs' forward+backward on every training batch and
    forward on every validation batch of ``epochs`` epochs, one member after another."""
    import torch
    from torch import nn
    from user_cnn import DigitsCNN, DigitsImages

    data = DigitsImages()
    data.setup()
    members = [DigitsCNN() for _ in range(n_members)]
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in data.train_dataloader():
            for member in members:
                member.train()
                member.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(member(x), y).backward()
        with torch.no_grad():
            for x, y in data.val_dataloader():
                for member in members:
                    member.eval()
                    member(x)
    return time.perf_counter() - start


def quality(tmp: Path, n_trials: int, accelerator: str) -> None:
    """Best val_acc at an equal budget: one by one against auto, 3 sampler seeds."""
    full = yaml.safe_load((ROOT / "recipes" / "digits" / "search.yaml").read_text())
    lr_wd = {
        "metric": "val_acc",
        "direction": "maximize",
        "params": {"model.lr": "log[1e-4, 1.0]", "model.weight_decay": "log[1e-6, 1e-1]"},
    }
    for label, space_dict in (("lr x wd", lr_wd), ("search.yaml", full)):
        space = tmp / f"quality-{label.replace(' ', '')}.yaml"
        space.write_text(yaml.safe_dump(space_dict))
        print(f"quality, {label}: best val_acc of {n_trials} trials (TPE, median pruner)")
        print(f"{'seed':>4} {'one by one':>11} {'auto':>8} {'s one by one':>13} {'s auto':>8}")
        for seed in range(3):
            row = []
            for population in (1, "auto"):
                name = f"q-{label.replace(' ', '')}-{seed}-{population}"
                start = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    study = run_study(
                        StudyRequest(
                            recipe=str(RECIPE),
                            space=str(space),
                            study_name=name,
                            storage_url=f"sqlite:///{tmp}/{name}.db",
                            run_dir=tmp / name,
                            n_trials=n_trials,
                            seed=seed,
                            accelerator=accelerator,
                            population=population,
                        )
                    )
                row.append((study.best_value, time.perf_counter() - start))
            print(
                f"{seed:>4} {row[0][0]:>11.4f} {row[1][0]:>8.4f} {row[0][1]:>13.1f} "
                f"{row[1][1]:>8.1f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-trials", type=int, default=64)
    parser.add_argument("--sizes", default="8,32")
    parser.add_argument("--mnist", action="store_true", help="also the MNIST-shaped MLP")
    parser.add_argument("--mnist-trials", type=int, default=16)
    parser.add_argument("--mnist1d", action="store_true", help="also the MNIST-1D CNN")
    parser.add_argument("--mnist1d-trials", type=int, default=16)
    parser.add_argument("--user-module", action="store_true", help="also the user's CNN module")
    parser.add_argument("--user-trials", type=int, default=32)
    parser.add_argument("--user-sizes", default="32")
    parser.add_argument("--health", action="store_true", help="also with the health callbacks")
    parser.add_argument("--quality", action="store_true", help="best val_acc: auto vs one by one")
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    sizes = [1] + [int(s) for s in args.sizes.split(",") if s]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.mnist:
            mnist = tmp / "mnist.yaml"
            mnist.write_text(yaml.safe_dump(mnist_shaped_recipe()))
            rates = compare(
                tmp,
                "mnist-shaped",
                mnist,
                args.mnist_trials,
                [1, args.mnist_trials],
                args.accelerator,
            )
            print(
                f"mnist-shaped speed-up: {rates[args.mnist_trials] / rates[1]:.1f}x "
                f"(N={args.mnist_trials})"
            )
        if args.mnist1d:
            recipe = tmp / "mnist1d.yaml"
            recipe.write_text(yaml.safe_dump(mnist1d_recipe()))
            n = args.mnist1d_trials
            rates = compare(tmp, "mnist1d-cnn", recipe, n, [1, n], args.accelerator, MNIST1D_SPACE)
            print(f"mnist1d speed-up: {rates[n] / rates[1]:.1f}x (N={n})")
        if args.user_module:
            import sys

            sys.path.insert(0, str(Path(__file__).resolve().parent))  # user_cnn, as PYTHONPATH
            recipe = tmp / "user.yaml"
            recipe.write_text(yaml.safe_dump(USER_RECIPE))
            user_sizes = [1] + [int(s) for s in args.user_sizes.split(",") if s]
            user = compare(
                tmp, "user-cnn", recipe, args.user_trials, user_sizes, args.accelerator, USER_SPACE
            )
            for n in user_sizes[1:]:
                print(f"user-module speed-up: {user[n] / user[1]:.1f}x (N={n})")
            n = args.user_trials
            floor = arithmetic_floor(n, USER_RECIPE["trainer"]["max_epochs"])
            print(
                f"user-module arithmetic floor: {n} members' fwd+bwd one after another, "
                f"plain torch: {floor:.1f} s = {n / floor * 60:.1f} trials/min, at most "
                f"{n / floor * 60 / user[1]:.1f}x the one-by-one rate"
            )
        if args.health:
            recipe = tmp / "health.yaml"
            recipe.write_text(yaml.safe_dump(health_recipe()))
            rates = compare(tmp, "digits+health", recipe, args.n_trials, sizes, args.accelerator)
            print(
                f"health-callbacks speed-up: {rates[max(sizes)] / rates[1]:.1f}x (N={max(sizes)})"
            )
        if args.quality:
            quality(tmp, args.n_trials, args.accelerator)
        rates = compare(tmp, "digits", RECIPE, args.n_trials, sizes, args.accelerator)
    largest = max(sizes)
    print(f"population speed-up: {rates[largest] / rates[1]:.1f}x (N={largest})")


if __name__ == "__main__":
    main()

"""Trials per minute: ``lit-tune run`` against a naive Optuna + Lightning script.

Both search the same space (recipes/digits/search.yaml) with the same budget (trials, the
recipe's epochs) and sampler seed, in this one process, one after the other. The naive
script is what a user writes first: a new TensorDataset + DataLoader per trial, a plain
LightningModule, Trainer defaults (logger, checkpointing, progress bar), no pruning.

    python bench/tune_throughput.py 2>/dev/null
    python bench/tune_throughput.py --n-trials 20 --accelerator gpu
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import optuna
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

import lit_optim
from lit_optim.cli.cuda_check import FLAG, restore_cuda_check
from lit_optim.training.models import MLP
from tuning.runner.study import StudyRequest, run_study
from tuning.search.recipe import load_recipe
from tuning.search.space import load_space

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "digits" / "mlp.yaml"
SPACE = ROOT / "recipes" / "digits" / "search.yaml"


class NaiveModule(L.LightningModule):
    def __init__(self, params: dict) -> None:
        super().__init__()
        self.p = params
        self.net = MLP(
            (64,),
            10,
            hidden_dims=[256, 128],
            dropout=params.get("model.network_kwargs.dropout", 0.0),
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        name, lr, wd = self.p["model.optimizer"], self.p["model.lr"], self.p["model.weight_decay"]
        if name in ("sgd", "momentum", "nesterov"):
            momentum = self.p.get("model.optimizer_kwargs.momentum", 0.0)
            return torch.optim.SGD(
                self.parameters(),
                lr=lr,
                weight_decay=wd,
                momentum=momentum,
                nesterov=name == "nesterov",
            )
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(self.parameters(), lr=lr, weight_decay=wd)


def naive_objective(epochs: int, accelerator: str, root: str):
    space = load_space(SPACE)

    def objective(trial: optuna.Trial) -> float:
        params = space.suggest(trial)
        digits = load_digits()  # loaded per trial, as such scripts do
        x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
        y = torch.tensor(digits.target)
        train, val = TensorDataset(x[:1437], y[:1437]), TensorDataset(x[1437:], y[1437:])
        trainer = L.Trainer(
            max_epochs=epochs, accelerator=accelerator, default_root_dir=root, log_every_n_steps=5
        )
        trainer.fit(
            NaiveModule(params),
            DataLoader(train, batch_size=params["data.batch_size"], shuffle=True),
            DataLoader(val, batch_size=256),
        )
        return float(trainer.callback_metrics["val_acc"])

    return objective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=16)
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = load_recipe(RECIPE)["trainer"]["max_epochs"]
    with tempfile.TemporaryDirectory() as root:
        # Each side with the CUDA-check flag its own process would have: the naive script
        # Lightning's "1", lit-tune what its CLI's import decides (lit_optim.cli.cuda_check).
        os.environ[FLAG] = "1"
        start = time.perf_counter()
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=0)
        )
        study.optimize(naive_objective(epochs, args.accelerator, root), n_trials=args.n_trials)
        naive_s = time.perf_counter() - start
        naive_best = study.best_value

        restore_cuda_check(lit_optim._NVML_CHECK_BEFORE_LIGHTNING)
        start = time.perf_counter()
        ours = run_study(
            StudyRequest(
                recipe=str(RECIPE),
                space=str(SPACE),
                study_name="bench",
                storage_url=f"sqlite:///{root}/bench.db",
                run_dir=Path(root) / "runs",
                n_trials=args.n_trials,
                accelerator=args.accelerator,
            )
        )
        ours_s = time.perf_counter() - start
    naive_rate, ours_rate = 60 * args.n_trials / naive_s, 60 * args.n_trials / ours_s
    print(
        f"naive Optuna + Lightning : {naive_rate:6.1f} trials/min "
        f"({naive_s:.1f} s for {args.n_trials}, best val_acc {naive_best:.4f})"
    )
    print(
        f"lit-tune run             : {ours_rate:6.1f} trials/min "
        f"({ours_s:.1f} s for {args.n_trials}, best val_acc {ours.best_value:.4f})"
    )
    print(f"speed-up                 : {ours_rate / naive_rate:.2f}x  (target >= 3x)")


if __name__ == "__main__":
    main()

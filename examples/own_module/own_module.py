# PYTHONPATH=examples/own_module lit-optim fit --config examples/own_module/recipe.yaml
#
# A user's own project, written as someone outside lit-optim would write it: a 1-D regression
# (fit y = sin(3x) + noise with a small MLP), its own LightningDataModule and its own metric
# names. lit-optim supplies the optimizer and schedule by name through its public factory.
"""Noisy-sine regression: a LightningModule and LightningDataModule that are not lit-optim's."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_optim import create_optimizer, create_scheduler


class SineData(L.LightningDataModule):
    """x uniform in [-2, 2], y = sin(3x) + N(0, noise²); a fixed seeded split."""

    def __init__(
        self, num_samples: int = 512, noise: float = 0.1, batch_size: int = 32, seed: int = 0
    ) -> None:
        super().__init__()
        self.num_samples, self.noise, self.batch_size, self.seed = (
            num_samples,
            noise,
            batch_size,
            seed,
        )

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(self.seed)
        x = torch.rand(self.num_samples, 1, generator=g) * 4 - 2
        y = torch.sin(3 * x) + self.noise * torch.randn(x.shape, generator=g)
        n_val = self.num_samples // 5
        self.val, self.train = (
            TensorDataset(x[:n_val], y[:n_val]),
            TensorDataset(x[n_val:], y[n_val:]),
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train,
            batch_size=self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=256)


class SineRegressor(L.LightningModule):
    """An MLP regressor; logs ``train/loss`` and ``val/loss`` (mean squared error)."""

    def __init__(
        self,
        hidden: int = 64,
        optimizer: str = "adamw",
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        scheduler: str = "cosine",
        scheduler_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(1, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1),
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self.net(x), y), prog_bar=True)

    def configure_optimizers(self):
        opt = create_optimizer(
            self, self.hparams.optimizer, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        # val/loss is logged as a plain tensor, which says nothing of its direction: a
        # schedule that reads it (plateau) is told once that lower is better.
        sched = create_scheduler(
            self.hparams.scheduler,
            opt,
            self.trainer,
            monitor="val/loss",
            mode="min",
            **(self.hparams.scheduler_kwargs or {}),
        )
        return {"optimizer": opt, "lr_scheduler": sched}

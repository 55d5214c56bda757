"""A small CNN LightningModule written the way a user writes one, for the benches: its own
DataModule (scikit-learn's 8×8 digits through a DataLoader), its own metric names
(``train/nll``, ``valid/nll``, a torchmetrics accuracy as ``valid/top1``), dropout, BatchNorm,
and the optimizer and schedule through lit_optim's factory with a param group for the head."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from lit_optim import create_optimizer, create_scheduler


class DigitsImages(L.LightningDataModule):
    def __init__(self, batch_size: int = 64):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
        y = torch.tensor(y)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        self.train, self.val = order[:1400], order[1400:]
        self.x, self.y = x, y

    def train_dataloader(self):
        return DataLoader(
            TensorDataset(self.x[self.train], self.y[self.train]),
            batch_size=self.batch_size,
            shuffle=True,
        )

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[self.val], self.y[self.val]), batch_size=256)


class DigitsCNN(L.LightningModule):
    def __init__(
        self,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        head_lr: float | None = None,
        channels: int = 16,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(channels * 16, 10)
        self.top1 = MulticlassAccuracy(num_classes=10)

    def forward(self, x):
        return self.head(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train/nll", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("valid/nll", nn.functional.cross_entropy(logits, y))
        self.top1(logits, y)
        self.log("valid/top1", self.top1)

    def configure_optimizers(self):
        head_lr = self.hparams.head_lr or self.hparams.lr
        opt = create_optimizer(
            self,
            "adamw",
            lr=self.hparams.lr,
            weight_decay=self.hparams.weight_decay,
            param_groups=[{"params": "head.*", "lr": head_lr}],
        )
        return {"optimizer": opt, "lr_scheduler": create_scheduler("cosine", opt, self.trainer)}

"""``ClassificationTask``: a network, an optimizer and a schedule, all chosen by name.

``lr`` and ``weight_decay`` are flat hyperparameters because tuning searches them; everything
else an optimizer or scheduler takes goes in ``optimizer_kwargs`` / ``scheduler_kwargs``. All
names and kwargs are checked in ``__init__``, so a bad recipe fails before any data is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from lit_optim.models import build_model
from lit_optim.optimizers import build_optimizer, check_optimizer_args
from lit_optim.schedulers import build_scheduler_config, check_scheduler_args

__all__ = ["ClassificationTask"]


class ClassificationTask(L.LightningModule):
    """Cross-entropy classification with accuracy from torchmetrics.

    Logs ``train_loss`` (per logging step and per epoch), ``train_acc``, ``val_loss``,
    ``val_acc``, ``test_acc`` (per epoch) and ``lr`` (per logging step).

    Args:
        input_shape: shape of one sample; the CLI links it from the data module.
        num_classes: number of classes; the CLI links it from the data module.
        network: registered model name (``lit-optim list models``).
        network_kwargs: keyword arguments of that model (e.g. ``hidden_dims``).
        optimizer: registered optimizer name (``lit-optim list optimizers``).
        lr: initial learning rate, > 0.
        weight_decay: weight decay, ≥ 0 (L2 or decoupled, as the optimizer defines it).
        optimizer_kwargs: the optimizer's other keyword arguments (``momentum``, ``betas`` …).
        scheduler: registered LR scheduler name (``lit-optim list schedulers``).
        scheduler_kwargs: the scheduler's keyword arguments; ``monitor`` for plateau.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        network: str = "mlp",
        network_kwargs: dict[str, Any] | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer_kwargs: dict[str, Any] | None = None,
        scheduler: str = "constant",
        scheduler_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # Fail on a bad optimizer or schedule now, not after the first epoch.
        check_optimizer_args(optimizer, lr, weight_decay, optimizer_kwargs or {})
        check_scheduler_args(scheduler, scheduler_kwargs or {})
        self.net = build_model(network, input_shape, num_classes, **(network_kwargs or {}))
        # Stored in checkpoints: load_from_checkpoint rebuilds the task with no other input.
        self.save_hyperparameters()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _is_logging_step(self) -> bool:
        # Per-step values reach the logger only every log_every_n_steps; skipping self.log in
        # between saves its per-call overhead and, for ``lr``, a host-to-device copy per step.
        return (self.trainer.global_step + 1) % self.trainer.log_every_n_steps == 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.train_acc.update(logits.detach(), y)
        # on_epoch accumulates on the device; the step value is read only when logged.
        self.log("train_loss", loss, on_step=True, on_epoch=True, batch_size=len(y))
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        if self._is_logging_step():
            self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True,
                     on_epoch=False, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.val_acc.update(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y), prog_bar=True)
        self.log("val_acc", self.val_acc, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.test_acc.update(logits, y)
        self.log("test_loss", F.cross_entropy(logits, y), batch_size=len(y))
        self.log("test_acc", self.test_acc)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = build_optimizer(
            hp.optimizer, self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay,
            **(hp.optimizer_kwargs or {}),
        )
        trainer = self.trainer
        validates = trainer.limit_val_batches != 0
        scheduler = build_scheduler_config(
            hp.scheduler, optimizer, hp.scheduler_kwargs or {},
            total_steps=trainer.estimated_stepping_batches,
            val_every_n_epochs=(trainer.check_val_every_n_epoch or 1) if validates else None,
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

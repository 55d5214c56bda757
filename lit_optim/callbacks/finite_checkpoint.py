"""``FiniteModelCheckpoint``: Lightning's ModelCheckpoint that never keeps non-finite weights."""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from lit_optim.callbacks._grads import any_nonfinite


class FiniteModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint (same arguments) that skips a save while any weight is NaN or inf, so
    neither ``last.ckpt`` nor the best checkpoint is ever a diverged network: resuming or
    testing from it would only reproduce the NaN. The check is one device reduction per save
    point (epoch end, validation end), never per step unless ``every_n_train_steps`` asks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped_saves = 0
        bound = inspect.signature(ModelCheckpoint).bind(*args, **kwargs)
        self.every_n_train_steps = bound.arguments.get("every_n_train_steps")

    def _finite(self, pl_module: L.LightningModule) -> bool:
        finite = not bool(any_nonfinite([p.detach() for p in pl_module.parameters()]))
        if not finite:
            if not self.skipped_saves:
                rank_zero_warn("weights are NaN/Inf: no checkpoint is saved while they are "
                               "(the last finite one is kept)")
            self.skipped_saves += 1
        return finite

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any,
                           **kwargs: Any) -> None:
        every = self.every_n_train_steps
        if every and trainer.global_step % every == 0 and not self._finite(pl_module):
            return
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._finite(pl_module):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._finite(pl_module):
            super().on_validation_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._finite(pl_module):  # Lightning's save_last at the end of training
            super().on_train_end(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        if self._finite(pl_module):
            super().on_exception(trainer, pl_module, exception)

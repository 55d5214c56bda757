"""``FiniteModelCheckpoint``: Lightning's ModelCheckpoint that never keeps diverged weights
(non-finite, or beyond √max of their dtype)."""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from lit_optim.callbacks._grads import any_nonfinite
from lit_optim.callbacks.divergence import unbounded_weights
from lit_optim.callbacks.run_summary import RunSummary

__all__ = ["FiniteModelCheckpoint"]


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

    def _finite(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        """Whether the weights may be saved: finite, not beyond √max of their dtype (a network
        at 7e30 is as diverged as one at inf: its next squares overflow), and, where the run
        keeps a RunSummary, not at a training loss that it judges diverged (the one judge of
        the run summary's "training ended diverged")."""
        finite = not bool(any_nonfinite([p.detach() for p in pl_module.parameters()]))
        why = None if finite else "weights are NaN/Inf"
        if why is None:
            why = unbounded_weights(pl_module)
        if why is None:
            callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by its connector
            summary = next((cb for cb in callbacks if isinstance(cb, RunSummary)), None)
            why = summary.loss.diverged(running=True) if summary is not None else None
        if why is not None:
            if not self.skipped_saves:
                rank_zero_warn(
                    f"{why}: no checkpoint is saved while the run is diverged (the "
                    "last one before is kept)"
                )
            self.skipped_saves += 1
        return why is None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        every = self.every_n_train_steps
        if every and trainer.global_step % every == 0 and not self._finite(trainer, pl_module):
            return
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._finite(trainer, pl_module):
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._finite(trainer, pl_module):
            super().on_validation_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._finite(trainer, pl_module):  # Lightning's save_last at the end of training
            super().on_train_end(trainer, pl_module)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self._finite(trainer, pl_module):
            super().on_exception(trainer, pl_module, exception)

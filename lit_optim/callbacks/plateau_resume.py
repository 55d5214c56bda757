"""``PlateauResume``: a run resumed from an epoch-end checkpoint steps plateau as the
uninterrupted run did.

Lightning saves an epoch-end checkpoint (``last.ckpt``, an epoch's best) from the callbacks'
epoch-end hooks, before it steps the epoch's LR schedulers; on resume it makes the epoch-level
steps it owes, except ReduceLROnPlateau's, whose metric is not in the checkpoint. The resumed
run then lags one plateau step behind the uninterrupted one (digits, float64: lr 0.0625
against 0.03125 after six epochs). This callback keeps the monitored value of an epoch whose
plateau step is still owed in the checkpoint, and makes that step when the resumed fit starts.
"""

from __future__ import annotations

import math
from typing import Any, cast

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lit_optim.callbacks.step_dispatch import skip_unused_batch_hooks

__all__ = ["PlateauResume"]


def _plateau_configs(trainer: L.Trainer) -> list[tuple[int, Any]]:
    return [(i, c) for i, c in enumerate(trainer.lr_scheduler_configs) if c.reduce_on_plateau]


class PlateauResume(Callback):
    """Added to every ``lit-optim fit``; add it to your own Trainer's callbacks to get the same."""

    def __init__(self) -> None:
        self._trainer: L.Trainer | None = None
        self._at_epoch_start: dict[int, int] = {}  # scheduler index -> its step count then
        self._owed: dict[int, float] = {}  # restored: scheduler index -> the value to step with
        skip_unused_batch_hooks(self)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for index, value in self._owed.items():  # restored with the checkpoint
            scheduler = trainer.lr_scheduler_configs[int(index)].scheduler
            cast(ReduceLROnPlateau, scheduler).step(value)  # a plateau's: _plateau_configs
        self._owed = {}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._at_epoch_start = {i: c.scheduler.last_epoch for i, c in _plateau_configs(trainer)}

    def state_dict(self) -> dict[str, Any]:
        return {"owed": self._owed_now()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._owed = {int(k): float(v) for k, v in state_dict.get("owed", {}).items()}

    def _owed_now(self) -> dict[int, float]:
        """The plateau steps of the current epoch not yet made, when saved at its end."""
        trainer = self._trainer
        if trainer is None or not trainer.training:
            return {}
        total = trainer.num_training_batches
        # The epoch's batches run so far (a mid-epoch resume's included), this one counted.
        current = trainer.fit_loop.epoch_loop.batch_progress.current
        done = current.processed  # type: ignore[attr-defined]  # a batch tracker counts it
        if not math.isfinite(total) or done < total:
            return {}  # mid-epoch: Lightning finishes the epoch, and its step, on resume
        owed = {}
        for index, config in _plateau_configs(trainer):
            if config.interval != "epoch" or (trainer.current_epoch + 1) % config.frequency:
                continue
            value = trainer.callback_metrics.get(config.monitor)
            if value is not None and config.scheduler.last_epoch == self._at_epoch_start.get(index):
                owed[index] = float(value)
        return owed

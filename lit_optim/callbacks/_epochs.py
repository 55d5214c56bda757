"""``AfterEachEpoch``: run once per finished training epoch, after the module has logged it;
``lr_monitor_names``: the per-step values a LearningRateMonitor puts among the logged ones.

A callback's ``on_train_epoch_end`` runs before the module's, where epoch metrics such as
``train_loss`` are usually logged; so an epoch is handed over when the next one starts, or
when training ends. Epochs finished before this fit started (a resumed run) are not.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor

__all__ = ["AfterEachEpoch", "lr_monitor_names"]


class AfterEachEpoch:
    """Mixin for a Callback: ``after_epoch(trainer, epoch)`` once per epoch this fit finished
    (``epoch`` counts from 1), with that epoch's values in ``trainer.callback_metrics``."""

    _handed = 0

    def after_epoch(self, trainer: L.Trainer, epoch: int) -> None:
        raise NotImplementedError

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._handed = trainer.current_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._hand_over(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._hand_over(trainer)

    def _hand_over(self, trainer: L.Trainer) -> None:
        epoch = trainer.current_epoch  # epochs finished so far
        if epoch > self._handed:
            self._handed = epoch
            self.after_epoch(trainer, epoch)


def lr_monitor_names(trainer: L.Trainer) -> set[str]:
    """The names under which the Trainer's LearningRateMonitors log each param group's lr
    (``lr-Adam``, ``lr/pg1`` …): they also put them in ``trainer.callback_metrics``, where they
    hold a logging step's value, not an epoch's."""
    callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by its connector
    return {name for cb in callbacks if isinstance(cb, LearningRateMonitor) for name in cb.lrs}

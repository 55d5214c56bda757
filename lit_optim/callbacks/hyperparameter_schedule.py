"""``HyperparameterSchedule``: change the learning rate and weight decay at given epochs, the
schedule going on from where it was. ``lit-tune best --export`` writes one for a trial of
population based training (``--algorithm pbt``), whose lr and weight decay changed as it ran:
fitting the exported recipe replays that trial.

    trainer:
      callbacks:
        - class_path: lit_optim.callbacks.HyperparameterSchedule
          init_args:
            start: {lr: 0.001, weight_decay: 0.0001}   # the model's own values
            changes:
              - {epoch: 4, lr: 0.0012, weight_decay: 0.0001}
              - {epoch: 8, lr: 0.00096, weight_decay: 0.00012}

At the start of epoch ``epoch`` (counted from 0) every optimizer's lr, and every lr its
schedules keep, is multiplied by new lr / previous lr, and its weight decay by new / previous
(``lit_optim.catalog.rescale``): what the population did to the trial's member between its
epochs ``epoch - 1`` and ``epoch``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_optim.callbacks.step_dispatch import skip_unused_batch_hooks
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.rescale import rescale_hyperparameters

__all__ = ["HyperparameterSchedule"]

_KEYS = ("lr", "weight_decay")


class HyperparameterSchedule(Callback):
    def __init__(self, start: Mapping[str, float], changes: Sequence[Mapping[str, Any]]) -> None:
        self.start = _values(start, "start")
        self.changes: dict[int, dict[str, float]] = {}
        previous = -1
        for i, change in enumerate(changes):
            change = dict(change)
            epoch = change.pop("epoch", None)
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch <= previous:
                raise ConfigError(
                    f"HyperparameterSchedule changes[{i}]: epoch must be an integer "
                    f"> {previous} (epochs counted from 0, in increasing order), "
                    f"got {epoch!r}"
                )
            self.changes[epoch] = _values(change, f"changes[{i}]", like=self.start)
            previous = epoch
        skip_unused_batch_hooks(self)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        new = self.changes.get(trainer.current_epoch)
        if new is None:
            return
        old = self._at(trainer.current_epoch - 1)
        configs = trainer.lr_scheduler_configs
        for optimizer in trainer.optimizers:
            schedulers = [c.scheduler for c in configs if c.scheduler.optimizer is optimizer]
            rescale_hyperparameters(
                optimizer,
                schedulers,
                lr=new["lr"] / old["lr"] if "lr" in new else 1.0,
                weight_decay=(
                    new["weight_decay"] / old["weight_decay"] if "weight_decay" in new else 1.0
                ),
            )

    def _at(self, epoch: int) -> dict[str, float]:
        """The values in force during ``epoch``."""
        values = dict(self.start)
        for at in sorted(self.changes):
            if at <= epoch:
                values.update(self.changes[at])
        return values


def _values(
    raw: Mapping[str, Any], where: str, like: Mapping[str, float] | None = None
) -> dict[str, float]:
    unknown = sorted(set(raw) - set(like or _KEYS))
    if unknown:
        raise ConfigError(
            f"HyperparameterSchedule {where}: unknown key(s) {', '.join(unknown)}; "
            f"expected {', '.join(like or _KEYS)}" + (", epoch" if like else "")
        )
    out = {}
    for key, value in raw.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigError(
                f"HyperparameterSchedule {where}: {key} must be a number > 0 "
                f"(it scales the running value), got {value!r}"
            )
        out[key] = float(value)
    return out

"""``EpochLines``: a progress bar for logs, one line per epoch."""

from __future__ import annotations

import math
import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar

from lit_optim.callbacks._epochs import AfterEachEpoch, lr_monitor_names
from lit_optim.callbacks.step_dispatch import skip_unused_batch_hooks

__all__ = ["EpochLines"]


class EpochLines(AfterEachEpoch, ProgressBar):
    """Prints one line per training epoch with the values the module logged and the optimizer's
    lr, instead of a bar redrawn with ``\\r`` on every batch: what a log file, CI or ``| tee``
    can read (a 6-second tqdm run writes ~97 KB there). Validate and test print Lightning's own
    results table."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        skip_unused_batch_hooks(self)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _print(self, text: str) -> None:
        if self._enabled and self.trainer.is_global_zero:
            print(text, file=sys.stdout, flush=True)

    def _values(self, trainer: L.Trainer) -> str:
        """The progress-bar values, then every other epoch-level value the module logged (a
        module that puts nothing on the bar still gets a readable line)."""
        metrics = self.get_metrics(trainer, trainer.lightning_module)
        metrics.pop("v_num", None)
        per_step = lr_monitor_names(trainer)
        for name, value in trainer.callback_metrics.items():
            if (
                name not in metrics
                and not name.endswith("_step")
                and name not in per_step
                and value.numel() == 1
            ):
                metrics[name] = float(value)
        # The optimizer's lr now, each distinct value of its param groups once (with or
        # without a LearningRateMonitor, whose values are a logging step's, one per group).
        lrs = dict.fromkeys(
            float(group["lr"])
            for optimizer in trainer.optimizers
            for group in optimizer.param_groups
        )
        if lrs and "lr" not in metrics:
            metrics["lr"] = "/".join(map(_fmt, lrs))
        return "  ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())

    def after_epoch(self, trainer: L.Trainer, epoch: int) -> None:
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        self._print(
            f"epoch {epoch}{total}  step {trainer.global_step}  {self._values(trainer)}".rstrip()
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return f"{value:.4g}"
    return str(value)

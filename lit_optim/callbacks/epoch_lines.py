"""``EpochLines``: a progress bar for logs, one line per epoch."""

from __future__ import annotations

import math
import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar


class EpochLines(ProgressBar):
    """Prints one line per training epoch (and one per validate/test run) with the values
    the module puts on the progress bar, instead of a bar redrawn with ``\\r`` on every batch:
    what a log file, CI or ``| tee`` can read (a 6-second tqdm run writes ~97 KB there)."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._printed = 0

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
        for name, value in trainer.callback_metrics.items():
            if name not in metrics and not name.endswith("_step") and value.numel() == 1:
                metrics[name] = float(value)
        return "  ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())

    # An epoch's line is printed when the next one starts (or training ends): a callback's
    # on_train_epoch_end runs before the module's, where epoch metrics are usually logged.
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._printed = trainer.current_epoch  # a resumed run has no line for earlier epochs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_line(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_line(trainer)

    def _epoch_line(self, trainer: L.Trainer) -> None:
        epoch = trainer.current_epoch  # epochs finished so far
        if epoch <= self._printed:
            return
        self._printed = epoch
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        self._print(f"epoch {epoch}{total}  step {trainer.global_step}  "
                    f"{self._values(trainer)}".rstrip())
    # validate / test: Lightning prints its table of results at the end; nothing to add.


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return f"{value:.4g}"
    return str(value)

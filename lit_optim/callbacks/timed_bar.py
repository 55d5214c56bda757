"""``TimedProgressBar``: Lightning's tqdm bar, redrawn at a human rate instead of every batch.

Lightning's ``TQDMProgressBar`` redraws after every batch by default (``refresh_rate=1``),
gathering the logged metrics each time: a few % of a small network's step on a CPU
(bench/README.md, costs), for more redraws than an eye can read. A refresh rate in batches
cannot fit every run (10 batches a second or 1,000), so this bar redraws when ``interval``
seconds have passed, and always on a bar's last batch. ``lit-optim fit`` shows it in a
terminal (``EpochLines`` in a log file).

It also shows ``also_show`` (by default ClassificationTask's ``train_loss_step``), read from
``trainer.callback_metrics`` when it redraws. A value logged with ``prog_bar=True`` is instead
read back to the host by Lightning after every batch, for as long as the epoch lasts, whether a
bar draws or not: on a GPU that waits for the step's kernels every step (Lightning issue
#21232).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar
from typing_extensions import override

__all__ = ["TimedProgressBar"]


class TimedProgressBar(TQDMProgressBar):
    def __init__(
        self, interval: float = 0.25, also_show: Sequence[str] = ("train_loss_step",)
    ) -> None:
        super().__init__()
        self.interval = interval
        self.also_show = tuple(also_show)
        self._drawn = -float("inf")  # the first batch draws the bar

    def _due(self, bar: Any, batch_idx: int) -> bool:
        """Time to redraw ``bar`` after batch ``batch_idx``: ``interval`` has passed since the
        last redraw of any bar, or the bar ends with this batch."""
        now = time.monotonic()
        if bar is not None and (now - self._drawn >= self.interval or batch_idx + 1 == bar.total):
            self._drawn = now
            return True
        return False

    @override
    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        logged = trainer.callback_metrics
        for name in self.also_show:
            if name not in metrics and name in logged and logged[name].numel() == 1:
                metrics[name] = logged[name].item()
        return metrics

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._due(self.train_progress_bar, batch_idx):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    @override
    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx: int = 0
    ) -> None:
        if self._due(self.val_progress_bar, batch_idx):
            super().on_validation_batch_end(
                trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
            )

    @override
    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx: int = 0
    ) -> None:
        if self._due(self.test_progress_bar, batch_idx):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    @override
    def on_predict_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx: int = 0
    ) -> None:
        if self._due(self.predict_progress_bar, batch_idx):
            super().on_predict_batch_end(
                trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
            )

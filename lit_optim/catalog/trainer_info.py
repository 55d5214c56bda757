"""What a Lightning Trainer says about the run: its length in optimizer steps and epochs, and
whether this step's values reach the logger.

The factory, the task and the callbacks all ask these questions, so they live here, below all of
them (the callbacks must not import the task). This is also lit-optim's one adapter over a
Lightning detail that has no public API: under ``max_steps`` with ``max_epochs=-1``,
``trainer.estimated_stepping_batches`` returns early without loading the train loader, so
``trainer.num_training_batches`` stays ``inf`` and the epoch length is unknown. ``run_length``
then loads it the way ``estimated_stepping_batches`` itself does (``trainer.fit_loop.setup_data``);
``tests/catalog/test_trainer_info.py`` pins that call against the Lightning in use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lit_optim.catalog.errors import ConfigError

if TYPE_CHECKING:  # the catalog never imports Lightning: a Trainer is only passed in
    import lightning as L

__all__ = [
    "RunLength",
    "check_trains_real_steps",
    "is_logging_step",
    "run_length",
    "validation_period",
]


def check_trains_real_steps(trainer: L.Trainer, what: str) -> None:
    """``what`` (a finder) measures real steps; Lightning's tuner skips it under
    ``fast_dev_run`` and returns nothing, so that is refused in one line."""
    if trainer.fast_dev_run:  # type: ignore[attr-defined]  # set by its connector
        raise ConfigError(f"{what} trains real steps; fast_dev_run skips it: drop fast_dev_run")


def is_logging_step(trainer: L.Trainer) -> bool:
    """Whether this optimizer step's values reach anyone: on a logging step (the test
    Lightning applies) when there is a logger or a progress bar to show them. Without either
    (a lit-tune trial) a per-step value reaches only ``trainer.callback_metrics``, which is
    read at epoch ends (an Optuna report, a callback's epoch hook): the last step of each epoch
    is logged, the others skipped. Per-step logging was 5% of a digits study's time
    (bench/README.md, costs)."""
    if not trainer.loggers and trainer.progress_bar_callback is None:
        return trainer.is_last_batch
    every = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by its connector
    return (trainer.global_step + 1) % every == 0


@dataclass(frozen=True)
class RunLength:
    """How long the run is, as far as the Trainer knows before it starts."""

    total_steps: float  # optimizer steps (inf: unbounded)
    steps_per_epoch: float | None  # optimizer steps per epoch, when known

    @property
    def total_epochs(self) -> int | None:
        if self.steps_per_epoch and math.isfinite(self.total_steps):
            return math.ceil(self.total_steps / self.steps_per_epoch - 1e-9)
        return None


def run_length(trainer: L.Trainer) -> RunLength:
    """Optimizer steps in the whole run and per epoch, from the Trainer's configuration.

    Counts ``limit_train_batches`` (through ``num_training_batches``), gradient accumulation
    (an epoch's last partial accumulation still steps, hence the ceiling), ``max_steps`` capping
    ``max_epochs``, and ``max_steps`` with ``max_epochs=-1``. Call it from
    ``configure_optimizers`` or later, when the Trainer has its data.
    """
    total = trainer.estimated_stepping_batches
    if not math.isfinite(trainer.num_training_batches) and trainer.train_dataloader is None:
        # The max_epochs=-1 shortcut above skipped loading the train loader (see module doc).
        trainer.fit_loop.setup_data()
    batches = trainer.num_training_batches
    per_epoch = (
        math.ceil(batches / trainer.accumulate_grad_batches) if math.isfinite(batches) else None
    )
    if total is None or total < 0:  # an iterable loader with max_steps=-1
        total = math.inf
    return RunLength(total_steps=total, steps_per_epoch=per_epoch)


def validation_period(trainer: L.Trainer) -> int | None:
    """Every how many epochs validation runs, or None if it never does."""
    if trainer.limit_val_batches == 0:
        return None
    return trainer.check_val_every_n_epoch or 1

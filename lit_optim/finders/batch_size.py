"""The batch-size search on any recipe, through Lightning's ``Tuner.scale_batch_size``, with
the throughput of each size measured, so the answer means something on a CPU too.

Lightning grows ``datamodule.batch_size`` (doubling, or doubling then bisecting) until a trial
runs out of memory or ``max_trials`` is reached, and restores the weights afterwards. Memory
is rarely the limit on a CPU (it found 8192 for the 1,150-sample digits set), so each size on
the ladder up to the answer is also timed for a few steps: samples per second is what tells a
CPU user which batch keeps the cores busy.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch

from lit_optim.catalog.checks import check_count
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.trainer_info import check_trains_real_steps

__all__ = ["BatchSearch", "SEARCH_MODES", "check_has_batch_size", "run_batch_search"]

SEARCH_MODES = ("power", "binsearch")


@dataclass
class BatchSearch:
    largest: int  # the batch to use: what Lightning's search ended on, at most the training set
    mode: str
    throughput: dict[int, float]  # batch size -> training samples per second
    train_samples: int | None  # None when the loader has no length to tell
    fits: int = 0  # what fits in memory, as Lightning's search found it (may exceed the data)
    refused: tuple[int, str] | None = None  # the first size the recipe cannot train, and why


def check_has_batch_size(datamodule: L.LightningDataModule | None) -> None:
    if datamodule is None or not isinstance(getattr(datamodule, "batch_size", None), int):
        name = type(datamodule).__qualname__ if datamodule is not None else "no data module"
        raise ConfigError(
            f"batch-find needs a data module with an integer batch_size "
            f"attribute that its train_dataloader uses; {name} has none"
        )


class _Clock(L.Callback):
    """Seconds for ``timed`` training steps after the first ``warmup`` ones, then stops the fit.

    The fit keeps the recipe's own length (a schedule's warmup, one-cycle's total steps and
    plateau's validation are sized by it, so every schedule builds as in the real fit) and is
    stopped here instead. A step's time runs from the end of the step before it (its data
    loading included) or, for an epoch's first step, from its own start: the validation that
    Lightning runs when a fit stops, or between epochs, is not timed.
    """

    def __init__(self, warmup: int, timed: int) -> None:
        self.warmup, self.timed = warmup, timed
        self.seconds, self.steps = 0.0, 0
        self.since: float | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        self.since = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.since is None:
            _sync()
            self.since = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        _sync()
        now = time.perf_counter()
        if trainer.global_step > self.warmup:
            self.seconds += now - self.since
            self.steps += 1
        self.since = now
        if self.steps >= self.timed:
            trainer.should_stop = True


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_batch_search(
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    make_trainer,
    *,
    mode: str = "power",
    init_val: int = 2,
    max_trials: int = 25,
    steps_per_trial: int = 3,
    timed_steps: int = 5,
) -> BatchSearch:
    """``make_trainer(**overrides)`` builds a fresh Trainer of the recipe for each stage (the
    CLI passes its ``instantiate_trainer``); the weights and ``batch_size`` are as before
    afterwards."""
    from lightning.pytorch.tuner import Tuner

    if mode not in SEARCH_MODES:
        raise ConfigError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
    for name, value in (
        ("init_val", init_val),
        ("max_trials", max_trials),
        ("steps_per_trial", steps_per_trial),
        ("timed_steps", timed_steps),
    ):
        check_count(name, value)
    check_has_batch_size(datamodule)
    data: Any = datamodule  # it has a batch_size: checked just above
    chosen = data.batch_size
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer = make_trainer()
    check_trains_real_steps(trainer, "the batch size search")
    found = Tuner(trainer).scale_batch_size(
        model,
        datamodule=datamodule,
        mode=mode,
        init_val=init_val,
        max_trials=max_trials,
        steps_per_trial=steps_per_trial,
        batch_arg_name="batch_size",
    )
    assert found is not None  # None only under fast_dev_run: refused above
    data.batch_size = chosen
    train_samples = _train_samples(datamodule)
    largest = fits = int(found)
    if train_samples is not None:
        # A batch beyond the training set is the whole set again: never propose one (on the
        # 1,079-sample digits split the memory search alone ended at 2048).
        largest = min(largest, train_samples)
    sizes = sorted(
        {min(init_val * 2**i, largest) for i in range(64) if init_val * 2 ** (i - 1) < largest}
        | {largest}
    )
    throughput: dict[int, float] = {}
    refused: tuple[int, str] | None = None
    for size in sizes:
        data.batch_size = size
        clock = _Clock(warmup=1, timed=timed_steps)
        # Validation stays on, for one batch: a schedule that monitors a validation metric
        # (plateau) refuses to build without it.
        try:
            with _quiet_lightning():
                trainer = make_trainer(
                    callbacks=[clock],
                    num_sanity_val_steps=0,
                    min_epochs=None,
                    min_steps=None,
                    limit_val_batches=1,
                )
                trainer.fit(model, datamodule=datamodule)
        except ConfigError as err:
            # The recipe itself cannot train at this size: a warmup of 500 steps is longer
            # than 10 epochs of 2 steps. A larger batch would be refused too.
            if not throughput:
                raise ConfigError(f"the recipe does not train at batch {size}: {err}") from None
            refused = (size, str(err))
            break
        if clock.steps:
            throughput[size] = clock.steps * size / clock.seconds
    model.load_state_dict(state)  # the timing steps trained it: put the weights back
    data.batch_size = chosen
    if refused is not None:
        largest = max(throughput)
    return BatchSearch(
        largest=int(largest),
        mode=mode,
        throughput=throughput,
        train_samples=train_samples,
        fits=fits,
        refused=refused,
    )


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's per-Trainer lines ("Loading `train_dataloader` …", "limit_val_batches=1 was
    configured …") once per size of the ladder would bury its table."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _train_samples(datamodule: L.LightningDataModule) -> int | None:
    loader = datamodule.train_dataloader()
    for attr in ("dataset", "sampler"):  # a DataLoader's dataset; TensorBatches' permutation
        part = getattr(loader, attr, None)
        if part is not None and hasattr(part, "__len__"):
            return len(part)
    return None

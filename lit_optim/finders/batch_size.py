"""The batch-size search on any recipe, through Lightning's ``Tuner.scale_batch_size``, with
the throughput of each size measured, so the answer means something on a CPU too.

Lightning grows ``datamodule.batch_size`` (doubling, or doubling then bisecting) until a trial
runs out of memory or ``max_trials`` is reached, and restores the weights afterwards. Memory
is rarely the limit on a CPU (it found 8192 for the 1,150-sample digits set), so each size on
the ladder up to the answer is also timed for a few steps: samples per second is what tells a
CPU user which batch keeps the cores busy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import lightning as L
import torch

from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.checks import check_count

__all__ = ["BatchSearch", "check_has_batch_size", "run_batch_search"]

MODES = ("power", "binsearch")


@dataclass
class BatchSearch:
    largest: int  # the batch to use: what Lightning's search ended on, at most the training set
    mode: str
    throughput: dict[int, float]  # batch size -> training samples per second
    train_samples: int | None  # None when the loader has no length to tell
    fits: int = 0  # what fits in memory, as Lightning's search found it (may exceed the data)


def check_has_batch_size(datamodule: L.LightningDataModule | None) -> None:
    if datamodule is None or not isinstance(getattr(datamodule, "batch_size", None), int):
        name = type(datamodule).__qualname__ if datamodule is not None else "no data module"
        raise ConfigError(f"batch-find needs a data module with an integer batch_size "
                          f"attribute that its train_dataloader uses; {name} has none")


class _Clock(L.Callback):
    """Seconds for the training steps after the first ``warmup`` ones."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds, self.steps = warmup, None, 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            _sync()
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        _sync()
        if self.start is not None:
            self.seconds = time.perf_counter() - self.start
            self.steps = trainer.global_step - self.warmup


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_batch_search(model: L.LightningModule, datamodule: L.LightningDataModule,
                     make_trainer, *, mode: str = "power", init_val: int = 2,
                     max_trials: int = 25, steps_per_trial: int = 3,
                     timed_steps: int = 5) -> BatchSearch:
    """``make_trainer(**overrides)`` builds a fresh Trainer of the recipe for each stage (the
    CLI passes its ``instantiate_trainer``); the weights and ``batch_size`` are as before
    afterwards."""
    from lightning.pytorch.tuner import Tuner

    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    for name, value in (("init_val", init_val), ("max_trials", max_trials),
                        ("steps_per_trial", steps_per_trial), ("timed_steps", timed_steps)):
        check_count(name, value)
    check_has_batch_size(datamodule)
    chosen = datamodule.batch_size
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    largest = Tuner(make_trainer()).scale_batch_size(
        model, datamodule=datamodule, mode=mode, init_val=init_val, max_trials=max_trials,
        steps_per_trial=steps_per_trial, batch_arg_name="batch_size")
    datamodule.batch_size = chosen
    train_samples = _train_samples(datamodule)
    fits = int(largest)
    if train_samples is not None:
        # A batch beyond the training set is the whole set again: never propose one (on the
        # 1,079-sample digits split the memory search alone ended at 2048).
        largest = min(int(largest), train_samples)
    sizes = sorted({min(init_val * 2 ** i, largest)
                    for i in range(64) if init_val * 2 ** (i - 1) < largest} | {largest})
    throughput = {}
    for size in sizes:
        datamodule.batch_size = size
        clock = _Clock(warmup=1)
        trainer = make_trainer(max_epochs=-1, max_steps=1 + timed_steps, callbacks=[clock],
                               limit_val_batches=0, num_sanity_val_steps=0)
        trainer.fit(model, datamodule=datamodule)
        if clock.steps:
            throughput[size] = clock.steps * size / clock.seconds
    model.load_state_dict(state)  # the timing steps trained it: put the weights back
    datamodule.batch_size = chosen
    return BatchSearch(largest=int(largest), mode=mode, throughput=throughput,
                       train_samples=train_samples, fits=fits)


def _train_samples(datamodule: L.LightningDataModule) -> int | None:
    loader = datamodule.train_dataloader()
    for attr in ("dataset", "sampler"):  # a DataLoader's dataset; TensorBatches' permutation
        part = getattr(loader, attr, None)
        if part is not None and hasattr(part, "__len__"):
            return len(part)
    return None

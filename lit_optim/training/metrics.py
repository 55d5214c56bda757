"""Epoch aggregates with no host sync per step, summed over DDP ranks once per epoch.

``TrainingTotals``: the training epoch's loss and accuracy as plain device tensors. It runs on
every training step, where a torchmetrics ``Metric.update`` costs a few % of a small network's
step in Python (its wrappers, state bookkeeping: bench/README.md, costs); one argmax a step does.

``WeightedMean``: a batch-size-weighted mean that syncs over DDP ranks, with no host sync.

Written here because torchmetrics' ``MeanMetric`` cannot do it: with
``nan_strategy="disable"`` (the only setting without a host read per update) torchmetrics 1.9
replaces the weights by ones (``BaseAggregator._cast_and_nan_check_input``), so a mean over
batches of 128, 128 and 7 samples weighs the 7 like the 128s, and under DDP a rank with fewer
samples counts as much as one with more.
"""

from __future__ import annotations

from typing import cast

import torch
from torchmetrics import Metric

__all__ = ["TrainingTotals", "WeightedMean"]


class TrainingTotals:
    """Σ loss·batch, Σ correct and Σ samples of a training epoch, on the device.

    ``update(loss, logits, targets)`` each step; ``compute(strategy)`` at the epoch's end sums
    the three over the ranks with the strategy's own ``reduce`` (a collective every rank
    reaches, with zeros where a rank saw no batch) and gives (mean loss, accuracy), both
    float64, or None when no rank saw a sample. Accuracy is top-1 (torchmetrics'
    MulticlassAccuracy with average="micro"). Loss NaN and Inf pass through.

    A step costs one kernel (the argmax): the step's loss (a detached view), predictions and
    targets are kept and summed ``FOLD`` steps at a time, in a few kernels for all of them.
    Summing each step in place took five tiny kernels a step (1-2% of a small network's step:
    bench/README.md, costs); the kept tensors are at most FOLD batches of labels.
    """

    FOLD = 128

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._loss: torch.Tensor | None = None  # Σ loss·batch of the folded steps (float64)
        self._correct: torch.Tensor | None = None
        self._steps: list[tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]] = []
        self.samples = 0  # a host int: batch sizes are known on the host

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self._steps.append((loss.detach(), len(targets), logits.argmax(dim=1), targets))
        self.samples += len(targets)
        if len(self._steps) >= self.FOLD:
            self._fold()

    @torch.no_grad()
    def _fold(self) -> None:
        if not self._steps:
            return
        losses, sizes, predictions, targets = zip(*self._steps)
        self._steps = []
        device = losses[0].device
        weights = torch.tensor(sizes, dtype=torch.float64).to(device, non_blocking=True)
        loss = torch.stack(losses).reshape(-1).to(torch.float64).dot(weights)
        correct = torch.cat(predictions).eq(torch.cat(targets)).sum()
        self._loss = loss if self._loss is None else self._loss + loss
        self._correct = correct if self._correct is None else self._correct + correct

    def compute(self, strategy, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        self._fold()
        totals = torch.zeros(3, dtype=torch.float64, device=device)
        if self._loss is not None and self._correct is not None:  # set together
            totals[0], totals[1] = self._loss, self._correct
            totals[2] = self.samples
        totals = strategy.reduce(totals, reduce_op="sum")
        if not totals[2] > 0:  # the one host read, once per epoch
            return None
        return totals[0] / totals[2], totals[1] / totals[2]


class WeightedMean(Metric):
    """Σ value·weight / Σ weight over every ``update``, summed over ranks at ``compute``.

    States are float64 scalars (a long epoch of float32 losses loses no digits, and a
    float64 run keeps its precision); NaN and Inf pass through, as the health callbacks
    expect to see them.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: float = 1.0) -> None:
        value = value.detach().to(torch.float64)
        total, weights = self._sums()
        total += value.sum() * weight  # in place: the states torchmetrics registered
        weights += weight * value.numel()

    def compute(self) -> torch.Tensor:
        total, weights = self._sums()
        return total / weights

    def _sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The two states (``add_state`` attributes, which type checkers see as modules)."""
        return cast(torch.Tensor, self.total), cast(torch.Tensor, self.weight)

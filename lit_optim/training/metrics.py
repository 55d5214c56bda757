"""``WeightedMean``: a batch-size-weighted mean that syncs over DDP ranks, with no host sync.

Written here because torchmetrics' ``MeanMetric`` cannot do it: with
``nan_strategy="disable"`` (the only setting without a host read per update) torchmetrics 1.9
replaces the weights by ones (``BaseAggregator._cast_and_nan_check_input``), so a mean over
batches of 128, 128 and 7 samples weighs the 7 like the 128s, and under DDP a rank with fewer
samples counts as much as one with more.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

__all__ = ["WeightedMean"]


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
        self.total += value.sum() * weight
        self.weight += weight * value.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.weight

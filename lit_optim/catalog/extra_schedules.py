"""LR schedules torch.optim.lr_scheduler does not have, in closed form.

``get_lr`` computes each lr from ``base_lrs`` and the step count alone (no recursion on the
current lr), so the schedule is exact after a checkpoint restore and when ``SequentialLR``
restarts it after a warmup.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lit_optim.catalog.checks import check_number

__all__ = ["InverseTimeLR", "PolynomialDecayLR"]


class InverseTimeLR(LRScheduler):
    """lr_t = lr_0 / (1 + decay_rate · t / decay_epochs), t in epochs.

    With ``staircase=True`` the ratio ``t / decay_epochs`` is floored, so the lr drops in steps.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        decay_rate: float = 0.5,
        decay_epochs: float = 1.0,
        staircase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        check_number("inverse_time decay_rate", decay_rate, low=0)
        check_number("inverse_time decay_epochs", decay_epochs, low=0, low_open=True)
        self.decay_rate, self.decay_epochs, self.staircase = decay_rate, decay_epochs, staircase
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        t = self.last_epoch / self.decay_epochs
        if self.staircase:
            t = math.floor(t)
        return [base / (1.0 + self.decay_rate * t) for base in self.base_lrs]


class PolynomialDecayLR(LRScheduler):
    """lr_t = lr_0 · (1 + t)^(-power), t in optimizer steps (stochastic-approximation decay).

    Not torch's ``PolynomialLR``, which is (1 - t/T)^power towards zero at a fixed horizon.
    ``power`` in (0.5, 1] satisfies the Robbins-Monro conditions.
    """

    def __init__(self, optimizer: Optimizer, power: float = 0.5, last_epoch: int = -1) -> None:
        check_number("polynomial power", power, low=0, low_open=True)
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        return [base * (1.0 + self.last_epoch) ** (-self.power) for base in self.base_lrs]

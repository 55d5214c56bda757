"""Change a running optimizer's learning rate and weight decay, its schedule included: what
population based training's explore step does to a member between epochs, and what a replay
of that member's run does at the same epochs (``lit_optim.callbacks.HyperparameterSchedule``).

The lr is rescaled, not set: every lr the param group and its schedules keep (the group's
``lr``, ``initial_lr``, ``max_lr`` …; a scheduler's ``base_lrs``, ``_last_lr``,
``max_lrs`` … and those of the schedulers a SequentialLR chains) is multiplied by one factor,
so the schedule goes on from where it was, as the schedule of the new base lr would. Both
sides call this one function, so a replay follows the population bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from lit_optim.catalog.errors import ConfigError

__all__ = ["rescale_hyperparameters"]


def rescale_hyperparameters(
    optimizer: torch.optim.Optimizer,
    schedulers: Iterable[Any],
    *,
    lr: float = 1.0,
    weight_decay: float = 1.0,
    groups: Sequence[int] | None = None,
) -> None:
    """Multiply the lr of param ``groups`` (default: all) and every lr their ``schedulers``
    keep for them by ``lr``, and their weight decay by ``weight_decay`` (a group without
    weight decay keeps none)."""
    for name, factor in (("lr", lr), ("weight_decay", weight_decay)):
        if not (math.isfinite(factor) and factor > 0):
            raise ConfigError(f"a {name} factor must be a finite number > 0, got {factor!r}")
    indices = range(len(optimizer.param_groups)) if groups is None else list(groups)
    for index in indices:
        group = optimizer.param_groups[index]
        for key in [k for k in group if _is_lr(k) and isinstance(group[k], (int, float))]:
            group[key] = group[key] * lr
        if isinstance(group.get("weight_decay"), (int, float)):
            group["weight_decay"] = group["weight_decay"] * weight_decay
    for scheduler in schedulers:
        _rescale_schedule(scheduler, len(optimizer.param_groups), indices, lr)


def _is_lr(key: str) -> bool:
    return key == "lr" or key.endswith("_lr") or key.startswith("lr_")


def _rescale_schedule(scheduler: Any, n_groups: int, indices: Iterable[int], factor: float) -> None:
    """A torch scheduler keeps one lr per param group in lists (``base_lrs``, ``_last_lr``,
    CyclicLR's ``max_lrs``, plateau's ``min_lrs``), and a SequentialLR or ChainedScheduler its
    children."""
    for name, value in vars(scheduler).items():
        if (
            "lr" in name
            and isinstance(value, list)
            and len(value) == n_groups
            and all(isinstance(v, (int, float)) for v in value)
        ):
            for index in indices:
                value[index] = value[index] * factor
    for child in getattr(scheduler, "_schedulers", []):
        _rescale_schedule(child, n_groups, indices, factor)

"""What both population classes keep per member beside their tensors, how newcomers join it
and how one member's records are copied into another (PBT's exploit): indices (``alive``),
names, epochs trained, the spike rule's state, the health callbacks' state, and the last
epoch's values (a newcomer's are NaN until it reports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["copy_records", "leave_if_diverged", "record_newcomers"]


def record_newcomers(population: Any, names: Sequence[str]) -> list[int]:
    """Add ``names`` after ``population``'s members (their tensors already joined); returns
    their indices."""
    new = list(range(len(population.member_names), len(population.member_names) + len(names)))
    population.member_names += list(names)
    population.alive += new
    population.epochs_trained += [0] * len(names)
    population.spikes.join(len(names))
    if population.health is not None:
        population.health.join(names)
    population.member_metrics = {
        k: torch.cat([v, v.new_full((len(names),), float("nan"))])
        for k, v in population.member_metrics.items()
    }
    return new


def copy_records(population: Any, source: int, target: int) -> None:
    """Member ``target`` (a position) takes ``source``'s epochs trained, spike and clipping
    state and last epoch values."""
    population.epochs_trained[target] = population.epochs_trained[source]
    population.spikes.copy_member(source, target)
    if population.health is not None:
        population.health.copy_member(source, target)
    for values in population.member_metrics.values():
        values[target] = values[source]


def leave_if_diverged(population: Any, bad: torch.Tensor, reason: str) -> None:
    """The members flagged ``bad`` (by position) leave (``drop``); or, where the owner puts
    something else in their slots (``replace_diverged``: PBT copies a good member there), stay
    and are listed in ``diverged`` ({position: reason}) for the owner's ``on_epoch_end``."""
    population.diverged = {}
    if not bool(bad.any()):  # the one host read per epoch
        return
    if population.replace_diverged:
        population.diverged = {p: reason for p, flagged in enumerate(bad.tolist()) if flagged}
    else:
        population.drop(~bad, reason=reason)

"""What both population classes keep per member beside their tensors, how newcomers join it
and how one member's records are taken and put into a position (PBT's exploit and resume):
indices (``alive``), names, epochs trained, the spike rule's state, the health callbacks'
state, and the last epoch's values (a newcomer's are NaN until it reports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["leave_if_diverged", "load_records", "member_records", "record_newcomers"]


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


def member_records(population: Any, member: int) -> dict[str, Any]:
    """Member ``member``'s (a position) epochs trained, spike and clipping state and last
    epoch values, as copies (``load_records`` puts them into a position)."""
    return {
        "epochs_trained": population.epochs_trained[member],
        "spikes": population.spikes.member_state(member),
        "health": None if population.health is None else population.health.member_state(member),
        "metrics": {k: v[member].clone() for k, v in population.member_metrics.items()},
    }


def load_records(population: Any, member: int, saved: dict[str, Any]) -> None:
    """Position ``member`` takes ``saved`` (``member_records``); a population built afresh
    (no epoch ended yet) makes its per-member vectors here, NaN where nothing is loaded."""
    size = len(population.alive)
    population.epochs_trained[member] = saved["epochs_trained"]
    population.spikes.load_member_state(member, saved["spikes"], size)
    if population.health is not None and saved["health"] is not None:
        population.health.load_member_state(member, saved["health"], size)
    for name, value in saved["metrics"].items():
        if name not in population.member_metrics:
            population.member_metrics[name] = value.new_full((size,), float("nan"))
        population.member_metrics[name][member] = value


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

"""What both population classes keep per member beside their tensors, how newcomers join it
and how one member's records are taken and put into a position (PBT's exploit and resume):
indices (``alive``), names, epochs trained, the spike rule's state, the health callbacks'
state, and the last epoch's values (a newcomer's are NaN until it reports)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from lit_optim.population.divergence import LossSpikes
from lit_optim.population.health import MemberHealth, check_clip_algorithm

__all__ = [
    "PopulationMembers",
    "leave_if_diverged",
    "load_records",
    "member_records",
    "record_newcomers",
]


class PopulationMembers:
    """The per-member bookkeeping both population classes keep beside their tensors (what
    ``Population`` declares), set up once by ``_start_members``, and ``copy_member``: one
    member's state loaded into another position (their ``member_state`` /
    ``load_member_state`` know what a member holds)."""

    def _start_members(
        self,
        count: int,
        member_names: Sequence[str] | None,
        *,
        loss_spike_factor: float | None,
        gradient_clip_val: float | None,
        gradient_clip_algorithm: str,
    ) -> None:
        check_clip_algorithm(gradient_clip_algorithm)
        self.alive = list(range(count))
        self.dropped: dict[int, str] = {}
        # Each member's own epochs trained (a member may join a running population: join).
        self.epochs_trained = [0] * count
        self.member_names = list(member_names or (f"member_{i}" for i in range(count)))
        # The owner of a population that takes newcomers decides when it ends (on_epoch_end);
        # otherwise the fit ends once no member is left.
        self.stop_when_empty = True
        # A diverged member leaves, unless its owner replaces it (PBT): then it is listed in
        # ``diverged`` ({position: reason}) for the owner's on_epoch_end.
        self.replace_diverged = False
        self.diverged: dict[int, str] = {}
        self.on_epoch_end: Callable[[Any], None] | None = None
        self.member_metrics: dict[str, torch.Tensor] = {}
        self.spikes = LossSpikes(loss_spike_factor)
        # Clipping and layer diagnostics per member (``health``, made at fit start): the
        # Trainer's own clipping refuses manual optimization, so the members' runs'
        # gradient_clip_val comes here and is applied per member.
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.health: MemberHealth | None = None

    def member_state(self, member: int) -> dict[str, Any]:
        raise NotImplementedError

    def load_member_state(self, member: int, saved: dict[str, Any]) -> None:
        raise NotImplementedError

    def copy_member(self, source: int, target: int) -> None:
        """Member ``target`` (a position in ``alive``) becomes a copy of ``source``, bit for
        bit, in memory (PBT's exploit; ``target`` keeps its name and index)."""
        self.load_member_state(target, self.member_state(source))


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

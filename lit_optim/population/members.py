"""What both population classes keep per member beside their tensors, how newcomers join it
and how one member's records are taken and put into a position (PBT's exploit and resume):
indices (``alive``), names, epochs trained, the spike rule's state, the health callbacks'
state, and the last epoch's values (a newcomer's are NaN until it reports); and how a member
group's shadow optimizer (the one its schedule drives) takes a batch's step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import torch

from lit_optim.catalog.registry import did_you_mean
from lit_optim.catalog.torch_private import has_step_hooks
from lit_optim.population.divergence import LossSpikes
from lit_optim.population.health import MemberHealth, check_clip_algorithm

__all__ = ["MemberSettings", "PopulationMembers"]


class MemberSettings(TypedDict, total=False):
    """What both population classes take beside their members, by keyword:
    ``gradient_clip_val`` / ``gradient_clip_algorithm`` (the members' runs' Trainer settings,
    applied per member), ``loss_spike_factor`` (the spike rule's factor; None: off) and
    ``member_names`` (what each member logs under and is called in messages)."""

    gradient_clip_val: float | None
    gradient_clip_algorithm: str
    loss_spike_factor: float | None
    member_names: Sequence[str] | None


class PopulationMembers:
    """The per-member bookkeeping both population classes keep beside their tensors (what
    ``Population`` declares), set up once by ``_start_members``, and ``copy_member``: one
    member's state loaded into another position (their ``member_state`` /
    ``load_member_state`` know what a member holds)."""

    def _start_members(self, count: int, settings: MemberSettings) -> None:
        unknown = sorted(set(settings) - set(MemberSettings.__annotations__))
        if unknown:  # what Python says of an unknown keyword, with the close matches
            hint = did_you_mean(unknown[0], list(MemberSettings.__annotations__))
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}"
                + (f"; {hint}" if hint else "")
            )
        gradient_clip_algorithm = settings.get("gradient_clip_algorithm", "norm")
        check_clip_algorithm(gradient_clip_algorithm)
        member_names = settings.get("member_names")
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
        self.spikes = LossSpikes(settings.get("loss_spike_factor", 10.0))
        # Clipping and layer diagnostics per member (``health``, made at fit start): the
        # Trainer's own clipping refuses manual optimization, so the members' runs'
        # gradient_clip_val comes here and is applied per member.
        self.gradient_clip_val = settings.get("gradient_clip_val")
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.health: MemberHealth | None = None

    def _record_newcomers(self, names: Sequence[str]) -> list[int]:
        """Add ``names`` after the members (their tensors already joined); returns their
        indices."""
        new = list(range(len(self.member_names), len(self.member_names) + len(names)))
        self.member_names += list(names)
        self.alive += new
        self.epochs_trained += [0] * len(names)
        self.spikes.join(len(names))
        if self.health is not None:
            self.health.join(names)
        self.member_metrics = {
            k: torch.cat([v, v.new_full((len(names),), float("nan"))])
            for k, v in self.member_metrics.items()
        }
        return new

    def _member_records(self, member: int) -> dict[str, Any]:
        """Member ``member``'s (a position) epochs trained, spike and clipping state and last
        epoch values, as copies (``_load_records`` puts them into a position)."""
        return {
            "epochs_trained": self.epochs_trained[member],
            "spikes": self.spikes.member_state(member),
            "health": None if self.health is None else self.health.member_state(member),
            "metrics": {k: v[member].clone() for k, v in self.member_metrics.items()},
        }

    def _load_records(self, member: int, saved: dict[str, Any]) -> None:
        """Position ``member`` takes ``saved`` (``_member_records``); a population built afresh
        (no epoch ended yet) makes its per-member vectors here, NaN where nothing is loaded."""
        size = len(self.alive)
        self.epochs_trained[member] = saved["epochs_trained"]
        self.spikes.load_member_state(member, saved["spikes"], size)
        if self.health is not None and saved["health"] is not None:
            self.health.load_member_state(member, saved["health"], size)
        for name, value in saved["metrics"].items():
            if name not in self.member_metrics:
                self.member_metrics[name] = value.new_full((size,), float("nan"))
            self.member_metrics[name][member] = value

    @staticmethod
    def _step_shadow(shadow: dict[str, Any]) -> None:
        """A batch's step of a member group's shadow optimizer (``shadow["optimizer"]``), as
        Lightning steps a real optimizer every batch: no gradients, so a no-op, for the step
        hooks a warmup rides on, and once so that a scheduler sees its optimizer stepped
        before it steps. Without hooks it is skipped: a no-op step a member group a step is
        not free (bench/README.md, costs)."""
        if not shadow.get("stepped") or has_step_hooks(shadow["optimizer"]):
            shadow["optimizer"].step()
            shadow["stepped"] = True

    def _leave_if_diverged(self, bad: torch.Tensor, reason: str) -> None:
        """The members flagged ``bad`` (by position) leave (``drop``); or, where the owner puts
        something else in their slots (``replace_diverged``: PBT copies a good member there), stay
        and are listed in ``diverged`` ({position: reason}) for the owner's ``on_epoch_end``."""
        self.diverged = {}
        if not bool(bad.any()):  # the one host read per epoch
            return
        if self.replace_diverged:
            self.diverged = {p: reason for p, flagged in enumerate(bad.tolist()) if flagged}
        else:
            self.drop(~bad, reason=reason)

    def member_state(self, member: int) -> dict[str, Any]:
        raise NotImplementedError

    def drop(self, keep: torch.Tensor, reason: str) -> None:
        raise NotImplementedError

    def load_member_state(self, member: int, saved: dict[str, Any]) -> None:
        raise NotImplementedError

    def copy_member(self, source: int, target: int) -> None:
        """Member ``target`` (a position in ``alive``) becomes a copy of ``source``, bit for
        bit, in memory (PBT's exploit; ``target`` keeps its name and index)."""
        self.load_member_state(target, self.member_state(source))

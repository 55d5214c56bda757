"""``MemberHealth``: the Trainer's gradient clipping and layer diagnostics, per member.

A population updates its members itself (manual optimization, no torch Optimizer for
Lightning to step), so Lightning never calls ``on_before_optimizer_step`` and never clips.
Both population classes call this instead, around their update: every ``GradientClipper``
and ``LayerDiagnostics`` in the Trainer's callbacks, in the Trainer's order, acts on the
stacked gradients through the callback's own member-axis form (``clip_members``,
``before_members_step``), so each member is clipped and measured as a one-by-one run of it
would be. A Trainer's ``gradient_clip_val`` is a ``GradientClipper`` of the same rule (torch's
``clip_grad_norm_`` / ``clip_grad_value_`` arithmetic), applied after the callbacks, as
Lightning clips after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lit_optim.callbacks import GradientClipper, LayerDiagnostics
from lit_optim.catalog.errors import ConfigError

__all__ = ["MemberHealth", "check_clip_algorithm"]


def check_clip_algorithm(algorithm: str) -> None:
    """A Trainer's gradient_clip_algorithm, checked where a population is built."""
    if algorithm not in ("norm", "value"):
        raise ConfigError(f"gradient_clip_algorithm must be norm or value, got {algorithm!r}")


class MemberHealth:
    """The health callbacks of ``population``'s Trainer (and its own ``gradient_clip_val``)
    applied per member; ``layer_names``: the stacked parameters' names as a member's own
    module names them. The members are the population's alive ones, in stacked order."""

    def __init__(self, population: Any, layer_names: Sequence[str]) -> None:
        algorithm = population.gradient_clip_algorithm  # checked when the population was built
        trainer = population.trainer
        callbacks = trainer.callbacks
        self.callbacks = [
            cb for cb in callbacks if isinstance(cb, (GradientClipper, LayerDiagnostics))
        ]
        # Applied last, and logs nothing (Lightning's own clipping logs nothing either).
        self.trainer_clip = None
        if population.gradient_clip_val:
            self.trainer_clip = (
                GradientClipper("norm", max_norm=population.gradient_clip_val)
                if algorithm == "norm"
                else GradientClipper("value", clip_value=population.gradient_clip_val)
            )
        self.trainer, self.layer_names = trainer, list(layer_names)
        self.members = [population.member_names[i] for i in population.alive]
        self.steps = 0  # the members' own optimizer steps (Lightning's global_step stays 0)
        self._measured: list[LayerDiagnostics] = []

    def before_update(self, params: Sequence[torch.Tensor]) -> None:
        """``params``: the stacked parameters, their gradients set, the update not yet run."""
        grads = [p.grad for p in params if p.grad is not None]
        for callback in [*self.callbacks, self.trainer_clip]:
            if isinstance(callback, GradientClipper):
                if grads:
                    callback.clip_members(grads)
            elif callback is not None and callback.before_members_step(
                self.steps, self.layer_names, list(params)
            ):
                self._measured.append(callback)

    def after_update(self) -> None:
        for callback in self._measured:
            callback.after_members_step(self.trainer, self.steps, self.members)
        self._measured = []
        self.steps += 1

    def epoch_metrics(self) -> dict[str, torch.Tensor]:
        """Per-member epoch values the callbacks log in a one-by-one run (``grad_clipped_frac``
        of the first clipper that clipped this epoch, as Lightning keeps one value per name)."""
        out: dict[str, torch.Tensor] = {}
        if self.trainer_clip is not None:
            self.trainer_clip.clipped_fraction()  # counted afresh, never logged
        for callback in self.callbacks:
            if isinstance(callback, GradientClipper):
                share = callback.clipped_fraction()
                if share is not None:
                    out.setdefault("grad_clipped_frac", share.to(torch.float64))
        return out

    def keep(self, keep: torch.Tensor) -> None:
        """The population dropped the members where ``keep`` is False."""
        flags = keep.tolist()
        self.members = [m for m, k in zip(self.members, flags) if k]
        for callback in [*self.callbacks, self.trainer_clip]:
            if isinstance(callback, GradientClipper):
                callback.keep_members(keep)

    def join(self, members: Sequence[str]) -> None:
        """``members`` (their names) joined after the present ones."""
        self.members += list(members)
        for callback in [*self.callbacks, self.trainer_clip]:
            if isinstance(callback, GradientClipper):
                callback.join_members(len(members))

    def _clippers(self) -> list[GradientClipper]:
        return [c for c in [*self.callbacks, self.trainer_clip] if isinstance(c, GradientClipper)]

    def member_state(self, member: int) -> dict[str, Any]:
        """Member ``member``'s (a position) clipping state in every clipper, as copies, and
        the members' step count (one for all: LayerDiagnostics' cadence)."""
        return {"clippers": [c.member_state(member) for c in self._clippers()], "steps": self.steps}

    def load_member_state(self, member: int, saved: dict[str, Any], size: int) -> None:
        for clipper, state in zip(self._clippers(), saved["clippers"], strict=True):
            clipper.load_member_state(member, state, size)
        self.steps = saved["steps"]

    def copy_member(self, source: int, target: int) -> None:
        self.load_member_state(target, self.member_state(source), len(self.members))

"""``LossSpikes``: the loss-spike test of ``NonFiniteGuard(loss_spike_factor=…)``, per member.

A lit-tune trial runs with ``NonFiniteGuard("stop", loss_spike_factor=10)``: a diverging trial
often kills a ReLU net through huge finite steps, never NaN. In a population the guard would
act on all members at once, so each member keeps the guard's state itself, on the device
(no host read per step): an exponential mean of its good losses and its first loss, and a flag
once a step was bad by the guard's own rule (``lit_optim.callbacks.divergence.spike_step``)."""

from __future__ import annotations

import torch

from lit_optim.callbacks.divergence import spike_step

__all__ = ["LossSpikes"]


class LossSpikes:
    """``factor``: the guard's ``loss_spike_factor``; None flags non-finite losses only.
    ``started``: a step was seen (before it the per-member tensors are empty)."""

    def __init__(self, factor: float | None = 10.0) -> None:
        self.factor = factor
        self.started = False
        self.ema = self.first = torch.empty(0)
        self.flagged = torch.empty(0, dtype=torch.bool)
        self._joined = False

    @torch.no_grad()
    def update(self, loss: torch.Tensor) -> None:
        """``loss``: this step's [N] member losses."""
        loss = loss.detach()
        if not self.started:
            self.ema = torch.full_like(loss, float("nan"))
            self.first = loss.clone()
            self.flagged = torch.zeros_like(loss, dtype=torch.bool)
            self.started = True
        elif self._joined:  # newcomers' first loss is this one
            self.first = torch.where(torch.isnan(self.first), loss, self.first)
            self._joined = False
        bad, self.ema = spike_step(loss, self.ema, self.first, self.factor)
        self.flagged |= bad

    def bad(self, n: int, device: torch.device) -> torch.Tensor:
        """[N] flags of the members whose loss diverged (none before any step)."""
        if not self.started:
            return torch.zeros(n, dtype=torch.bool, device=device)
        return self.flagged

    def keep(self, mask: torch.Tensor) -> None:
        if self.started:
            mask = mask.to(self.ema.device)
            self.ema, self.first, self.flagged = (
                self.ema[mask],
                self.first[mask],
                self.flagged[mask],
            )

    def join(self, n: int) -> None:
        """``n`` members joined after the present ones: no loss seen yet."""
        if self.started:
            self.ema = torch.cat([self.ema, self.ema.new_full((n,), float("nan"))])
            self.first = torch.cat([self.first, self.first.new_full((n,), float("nan"))])
            self.flagged = torch.cat([self.flagged, self.flagged.new_zeros(n)])
            self._joined = True

    def member_state(self, member: int) -> dict[str, torch.Tensor] | None:
        """Member ``member``'s (a position) state, as copies; None before any step."""
        if not self.started:
            return None
        return {
            "ema": self.ema[member].clone(),
            "first": self.first[member].clone(),
            "flagged": self.flagged[member].clone(),
        }

    def load_member_state(
        self, member: int, saved: dict[str, torch.Tensor] | None, size: int
    ) -> None:
        """Position ``member`` (of ``size`` members) takes ``saved`` (``member_state``);
        None: no loss seen yet, as a newcomer's."""
        if saved is None:
            if self.started:
                self.ema[member] = self.first[member] = float("nan")
                self.flagged[member] = False
            return
        if not self.started:  # a population built afresh, before its first step
            self.ema = saved["ema"].new_full((size,), float("nan"))
            self.first = saved["first"].new_full((size,), float("nan"))
            self.flagged = saved["flagged"].new_zeros(size)
            self.started = True
            self._joined = True  # a position not loaded takes its first loss as a newcomer
        self.ema[member] = saved["ema"]
        self.first[member] = saved["first"]
        self.flagged[member] = saved["flagged"]

    def copy_member(self, source: int, target: int) -> None:
        self.load_member_state(target, self.member_state(source), len(self.ema))

"""Every rule that calls a run diverged, in one place: the loss-spike rule a step is judged by
(``spike_step``: ``NonFiniteGuard(loss_spike_factor=…)`` on one run, ``LossSpikes`` on each
member of a population), and whether a run ended diverged (``LossHistory``,
``unbounded_weights``: ``lit-optim fit``'s summary and its checkpoints).

The spike rule: a loss that is non-finite, or finite and above ``factor`` times its running
mean (an exponential mean over the good steps, weight 0.1 on the newest) and above the run's
first loss, is bad; the mean does not take it in. All on the device: no host read per step.

Whether a run ended diverged:

Divergence is not always NaN: at a far too high lr a float64 run can go on with finite
weights near 1e30 and a loss near 1e21, and without this check its fit "finished". The
rule is one for every module (it reads only the loss Lightning backpropagates):

- a loss that ends ``DIVERGENCE_FACTOR`` times above the lowest it reached (its first step, or
  an epoch's mean) ended diverged;
- weights beyond √(largest value of their dtype) are diverged, whatever the loss says (their
  squares, in weight decay or a norm, overflow to inf).

A loss that is not positive (a log-likelihood) has no ratio to read: only the weights count.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["DIVERGENCE_FACTOR", "LossHistory", "spike_step", "unbounded_weights"]

DIVERGENCE_FACTOR = 1e3


def spike_step(
    loss: torch.Tensor, ema: torch.Tensor, first: torch.Tensor, factor: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spike rule for one step: (bad, the running mean after it). ``loss``: one run's
    loss or a population's [N] losses; ``ema``: the running mean before it (NaN before the
    first good loss: comparisons with NaN are False, so no spike then); ``first``: the run's
    first loss; ``factor`` None: non-finite losses only."""
    bad = ~torch.isfinite(loss)
    if factor is not None:
        bad = bad | ((loss > factor * ema) & (loss > first))
    fresh = torch.where(torch.isnan(ema), loss, 0.9 * ema + 0.1 * loss)
    return bad, torch.where(bad, ema, fresh)


class LossHistory:
    """The first loss and each epoch's mean loss, as ``training_step`` returned them. Summed on
    the loss's device and read once per epoch: no host sync per step."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.epochs: list[float] = []
        self._sum: torch.Tensor | None = None
        self._count = 0
        self._first: torch.Tensor | None = None

    def add(self, outputs: Any) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            return  # manual optimization returning nothing, or a structure of its own
        loss = loss.detach()
        if self._sum is None:
            if self._first is None and self.first is None:
                self._first = loss.reshape(()).clone()
            self._sum = torch.zeros((), dtype=torch.float64, device=loss.device)
        self._sum.add_(loss.reshape(()))  # in place: one kernel a step
        self._count += 1

    def end_epoch(self) -> None:
        if self._first is not None:
            self.first, self._first = float(self._first), None
        if self._sum is not None and self._count:
            self.epochs.append(float(self._sum) / self._count)
        self._sum, self._count = None, 0

    def diverged(self, factor: float = DIVERGENCE_FACTOR, *, running: bool = False) -> str | None:
        """Why the run ended diverged, or None. ``running``: judge by the epoch in progress too
        (its mean so far: one host read), as a checkpoint saved mid-epoch must."""
        epochs = list(self.epochs)
        if running and self._sum is not None and self._count:
            epochs.append(float(self._sum) / self._count)
        if not epochs or not math.isfinite(epochs[-1]):
            return None  # nothing yet; a NaN/Inf loss is the non-finite check's to report
        first = (
            self.first
            if self.first is not None
            else (float(self._first) if running and self._first is not None else None)
        )
        seen = [v for v in [first, *epochs] if v is not None and math.isfinite(v)]
        lowest = min(seen)
        final = epochs[-1]
        if lowest <= 0 or final <= factor * lowest:
            return None
        return (
            f"the training loss {'is at' if running else 'ended at'} {final:.3g}, "
            f"{final / lowest:.3g} × the lowest it "
            f"reached ({lowest:.3g}; over {factor:g} × is diverged)"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"first": self.first, "epochs": list(self.epochs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.first, self.epochs = state.get("first"), list(state.get("epochs", []))


def unbounded_weights(module: torch.nn.Module, limit: int = 3) -> str | None:
    """The parameters whose largest magnitude is beyond √(their dtype's largest value).

    One device reduction and host read per dtype when none is (every checkpoint save asks);
    the per-parameter reads that name them only when one is."""
    peaks: dict[torch.dtype, list[torch.Tensor]] = {}
    for param in module.parameters():
        if param.is_floating_point() and param.numel():
            peaks.setdefault(param.dtype, []).append(param.detach().abs().amax())
    if not any(
        float(torch.stack(values).amax()) > math.sqrt(torch.finfo(dtype).max)
        for dtype, values in peaks.items()
    ):
        return None
    far = []
    for name, param in module.named_parameters():
        if not param.is_floating_point() or param.numel() == 0:
            continue
        bound = math.sqrt(torch.finfo(param.dtype).max)
        peak = float(param.detach().abs().max())
        if math.isfinite(peak) and peak > bound:
            far.append(f"{name} ({peak:.3g})")
    if not far:
        return None
    dtype = next(p.dtype for p in module.parameters() if p.is_floating_point())
    return (
        f"weights of {', '.join(far[:limit])}{' …' if len(far) > limit else ''} beyond "
        f"√max of {str(dtype).replace('torch.', '')} "
        f"({math.sqrt(torch.finfo(dtype).max):.3g})"
    )

"""Muon for 2-D weight matrices, AdamW for every other parameter, as one optimizer."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import AdamW, Muon, Optimizer

from lit_optim.catalog.extra_optimizers._closure import evaluate

__all__ = ["MuonWithAdamW"]


class MuonWithAdamW(Optimizer):
    """``torch.optim.Muon`` on 2-D weights, ``torch.optim.AdamW`` on the rest.

    Muon orthogonalizes the momentum of a weight *matrix* (Newton-Schulz iterations) and
    torch's implementation refuses other shapes: biases, norm scales and conv kernels go to
    AdamW, the fallback the Muon authors use. With ``adjust_lr_fn="match_rms_adamw"`` (the
    default here) Muon's update has AdamW's RMS, so one ``lr`` serves both halves.

    Lightning drives one optimizer per task; this class is that one optimizer, with the two
    halves' param groups side by side so LR schedulers scale both.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = "match_rms_adamw",
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        matrix_groups, other_groups = [], []
        for group in groups:
            options = {k: v for k, v in group.items() if k != "params"}
            tensors = list(group["params"])
            matrices = [p for p in tensors if p.ndim == 2]
            others = [p for p in tensors if p.ndim != 2]
            if matrices:
                matrix_groups.append({**options, "params": matrices})
            if others:
                other_groups.append({**options, "params": others})
        self.muon = (
            Muon(
                matrix_groups,
                lr=lr,
                weight_decay=weight_decay,
                momentum=momentum,
                nesterov=nesterov,
                ns_steps=ns_steps,
                adjust_lr_fn=adjust_lr_fn,
            )
            if matrix_groups
            else None
        )
        self.adamw = (
            AdamW(other_groups, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps)
            if other_groups
            else None
        )
        self.parts = [opt for opt in (self.muon, self.adamw) if opt is not None]
        shared = [g for opt in self.parts for g in opt.param_groups]
        super().__init__(shared, {"lr": lr, "weight_decay": weight_decay})
        self.param_groups = shared  # the parts' own dicts: schedulers reach both halves

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate(closure)
        for opt in self.parts:
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {
            "muon": self.muon and self.muon.state_dict(),
            "adamw": self.adamw and self.adamw.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for name in ("muon", "adamw"):
            if getattr(self, name) is not None:
                getattr(self, name).load_state_dict(state_dict[name])
        self.param_groups = [g for opt in self.parts for g in opt.param_groups]

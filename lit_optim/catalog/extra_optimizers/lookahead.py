"""Lookahead (Zhang, Lucas, Hinton & Ba 2019, arXiv:1907.08610)."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer

from lit_optim.catalog.checks import check_count, check_number

__all__ = ["Lookahead"]


class Lookahead(Optimizer):
    """Wraps any optimizer: it takes k fast steps, then the slow weights move part way.

    Every k steps of the base optimizer::

        slow ← slow + alpha * (fast - slow)
        fast ← slow

    ``param_groups`` are the base optimizer's own dicts, so LR schedulers and Lightning see
    and change one set of learning rates.
    """

    def __init__(self, base: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(base, Optimizer):
            raise TypeError(f"Lookahead wraps a torch Optimizer, got {type(base).__name__}")
        check_count("Lookahead k", k)
        check_number("Lookahead alpha", alpha, low=0, high=1, low_open=True)
        self.base = base
        self.k, self.alpha = k, alpha
        self.fast_steps = 0
        # The same dict objects as the base: no copy of the learning rates to fall out of sync.
        super().__init__(base.param_groups, base.defaults)
        self.param_groups = base.param_groups
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["slow"] = p.detach().clone()

    @torch.no_grad()
    def step(self, closure=None):
        with torch.enable_grad():
            loss = self.base.step(closure) if closure is not None else self.base.step()
        # A step in which no parameter has a gradient is no step (the closure ran, and a
        # health check dropped it by clearing every gradient): it must not count towards k.
        if all(p.grad is None for group in self.param_groups for p in group["params"]):
            return loss
        self.fast_steps += 1
        if self.fast_steps % self.k == 0:
            for group in self.param_groups:
                for p in group["params"]:
                    slow = self.state[p]["slow"]
                    slow.add_(p - slow, alpha=self.alpha)
                    p.copy_(slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {
            "lookahead": super().state_dict(),
            "base": self.base.state_dict(),
            "fast_steps": self.fast_steps,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base.load_state_dict(state_dict["base"])
        super().load_state_dict(state_dict["lookahead"])
        self.param_groups = self.base.param_groups  # keep sharing the base's dicts
        self.fast_steps = state_dict["fast_steps"]

"""LAMB: layer-wise adaptive moments (You et al. 2019, arXiv:1904.00962, Algorithm 2)."""

from __future__ import annotations

import torch
from torch.optim import Optimizer

from lit_optim.catalog.checks import check_number
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.extra_optimizers._closure import evaluate

__all__ = ["LAMB"]


class LAMB(Optimizer):
    """Adam's direction, with decoupled weight decay, rescaled per tensor by a trust ratio.

    For each tensor w with gradient g, at step t::

        m ← β1 m + (1-β1) g          v ← β2 v + (1-β2) g²
        m̂ = m / (1-β1^t)             v̂ = v / (1-β2^t)
        r = m̂ / (√v̂ + eps) + weight_decay * w
        w ← w - lr * (‖w‖ / ‖r‖) * r        (ratio 1 if a norm is 0)
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        check_number("LAMB lr", lr, low=0, low_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ConfigError(f"LAMB betas must be two numbers [beta1, beta2], got {betas!r}")
        for i, beta in enumerate(betas):
            check_number(f"LAMB betas[{i}]", beta, low=0, high=1, high_open=True)
        check_number("LAMB eps", eps, low=0)
        check_number("LAMB weight_decay", weight_decay, low=0)
        super().__init__(
            params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                r = (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    r.add_(p, alpha=group["weight_decay"])
                w_norm, r_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(r)
                trust = torch.where(
                    (w_norm > 0) & (r_norm > 0), w_norm / r_norm, torch.ones_like(w_norm)
                )
                p.sub_(r * (trust * group["lr"]))
        return loss

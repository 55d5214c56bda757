"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, arXiv:1708.03888)."""

from __future__ import annotations

import torch
from torch.optim import Optimizer

from lit_optim.catalog.checks import check_number
from lit_optim.catalog.extra_optimizers._closure import evaluate

__all__ = ["LARS"]


class LARS(Optimizer):
    """SGD with momentum whose step is rescaled per parameter tensor (per layer).

    For each tensor w with gradient g (the paper's Algorithm 1)::

        local_lr = trust_coefficient * ‖w‖ / (‖g‖ + weight_decay * ‖w‖)   (1 if a norm is 0)
        v ← momentum * v + lr * local_lr * (g + weight_decay * w)
        w ← w - v

    The trust ratio makes each layer's step proportional to its weight norm, which is what
    lets large-batch training use a large global lr.
    """

    def __init__(
        self,
        params,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 0.0,
    ) -> None:
        check_number("LARS lr", lr, low=0, low_open=True)
        check_number("LARS momentum", momentum, low=0, high=1, high_open=True)
        check_number("LARS weight_decay", weight_decay, low=0)
        check_number("LARS trust_coefficient", trust_coefficient, low=0, low_open=True)
        check_number("LARS eps", eps, low=0)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            eps=eps,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate(closure)
        for group in self.param_groups:
            wd, mom = group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                ratio = group["trust_coefficient"] * w_norm / (g_norm + wd * w_norm + group["eps"])
                # torch.where, not `if`: no host sync to test the norms.
                local_lr = torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))
                d = g.add(p, alpha=wd) if wd else g
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(mom).add_(d * (local_lr * group["lr"]))
                p.sub_(buf)
        return loss

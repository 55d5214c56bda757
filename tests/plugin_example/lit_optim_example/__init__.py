"""An example lit-optim plugin: one optimizer and one LR scheduler."""

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lit_optim import OptimizerInfo, SchedulerInfo


class SignSGD(Optimizer):
    """w ← w - lr · sign(g + weight_decay · w) (Bernstein et al. 2018)."""

    def __init__(self, params, lr=0.01, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(group["lr"] * torch.sign(p.grad + group["weight_decay"] * p))
        return loss


class LinearDecayLR(LRScheduler):
    """lr_t = lr_0 · (1 - t / total_steps), floored at a fraction of lr_0."""

    def __init__(self, optimizer, total_steps, floor=0.01, last_epoch=-1):
        self.total_steps, self.floor = total_steps, floor
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        frac = max(self.floor, 1 - self.last_epoch / self.total_steps)
        return [base * frac for base in self.base_lrs]


SIGNSGD = OptimizerInfo(name="signsgd", factory=SignSGD, typical_lr=0.01,
                        description="sign of the gradient times lr (example plugin)")
LINEAR_DECAY = SchedulerInfo(name="linear_decay", factory=LinearDecayLR, interval="step",
                             needs_total_steps=True,
                             description="linear decay to floor·lr over the run (example plugin)")

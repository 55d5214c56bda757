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


SIGNSGD = OptimizerInfo(
    name="signsgd",
    factory=SignSGD,
    typical_lr=0.01,
    description="sign of the gradient times lr (example plugin)",
)
LINEAR_DECAY = SchedulerInfo(
    name="linear_decay",
    factory=LinearDecayLR,
    interval="step",
    needs_total_steps=True,
    description="linear decay to floor·lr over the run (example plugin)",
)


# -- a network and a dataset, the other two plugin kinds ---------------------------------------
from torch import nn  # noqa: E402

from lit_optim import DatasetInfo, ModelInfo  # noqa: E402
from lit_optim.data import Splits  # noqa: E402


class WideLinear(nn.Module):
    """Flatten, one hidden layer of ``width`` units with a residual-free GELU, then logits."""

    def __init__(self, input_shape, num_classes, width=32):
        super().__init__()
        features = 1
        for size in input_shape:
            features *= int(size)
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(features, width), nn.GELU(), nn.Linear(width, num_classes)
        )

    def forward(self, x):
        return self.body(x)


def load_xor(data_dir, download, *, num_samples=256, seed=0):
    """Two-class XOR in the plane: not linearly separable, so it needs a hidden layer."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(num_samples + 64, 2, generator=g) * 2 - 1
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    return Splits(x[:num_samples], y[:num_samples], x[num_samples:], y[num_samples:])


WIDE_LINEAR = ModelInfo(
    name="wide_linear", factory=WideLinear, description="one wide GELU layer (example plugin)"
)
XOR = DatasetInfo(
    name="xor",
    loader=load_xor,
    input_shape=(2,),
    num_classes=2,
    description="two-class XOR in the plane (example plugin)",
)

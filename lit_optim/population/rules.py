"""Vectorized update rules: N members' parameters stacked along dim 0, every scalar
hyperparameter an [N] tensor broadcast over each parameter.

Why not torch.optim: an optimizer takes one lr (per param group) for a whole tensor, and a
stacked [N, …] parameter would need N param groups of views, which torch's optimizers cannot
update in place as one tensor. So the rules of the families people tune most are written out
here, following torch.optim's single-tensor implementations (``torch/optim/sgd.py``, ``adam.py``,
``rmsprop.py``, ``adagrad.py``) in their arithmetic and their order of operations, so that a
member equals its sequential trial to float64 round-off (``tests/test_population_rules.py``
checks each against torch itself). Everything stays on the device: no per-member Python loop,
no host read.

Structural options (``nesterov``, ``amsgrad``, ``centered``) change the algorithm, not a scalar:
they must be equal across the members of one population.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lit_optim.errors import ConfigError

__all__ = ["POPULATION_OPTIMIZERS", "PopulationUpdate"]

# Registry name -> (rule, the registry entry's own defaults).
POPULATION_OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("sgd", {}),
    "momentum": ("sgd", {"momentum": 0.9}),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "adam": ("adam", {}),
    "amsgrad": ("adam", {"amsgrad": True}),
    "adamw": ("adamw", {}),
    "rmsprop": ("rmsprop", {}),
    "adagrad": ("adagrad", {}),
}

# torch.optim's defaults for the kwargs each rule reads.
_TORCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
    "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                "centered": False},
    "adagrad": {"lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0,
                "eps": 1e-10},
}
_STRUCTURAL = ("nesterov", "amsgrad", "centered")


class PopulationUpdate:
    """One optimizer for N members: ``params`` are [N, …] tensors (their ``.grad`` too),
    ``members`` the per-member kwargs as ``build_optimizer(name, …, lr=…, **kwargs)`` takes
    them (``lr`` required). ``set_lr`` changes every member's lr (a schedule's step)."""

    def __init__(self, name: str, params: Sequence[torch.Tensor],
                 members: Sequence[Mapping[str, Any]], decay: Sequence[bool] | None = None
                 ) -> None:
        if name not in POPULATION_OPTIMIZERS:
            raise ConfigError(f"optimizer {name!r} has no population rule; those that do: "
                              f"{', '.join(POPULATION_OPTIMIZERS)}")
        self.rule, defaults = POPULATION_OPTIMIZERS[name]
        self.params = list(params)
        self.n = len(members)
        if not self.params or any(p.shape[0] != self.n for p in self.params):
            raise ConfigError(f"every parameter needs a leading member axis of {self.n}")
        merged = [{**_TORCH_DEFAULTS[self.rule], **defaults, **m} for m in members]
        unknown = sorted(set().union(*merged) - set(_TORCH_DEFAULTS[self.rule]) - {"lr"})
        if unknown:
            raise ConfigError(f"optimizer {name!r} in a population does not take "
                              f"{', '.join(unknown)}")
        self.flags = {}
        for key in _STRUCTURAL:
            values = {bool(m[key]) for m in merged if key in m}
            if len(values) > 1:
                raise ConfigError(f"{key} must be the same for every member of a population "
                                  f"(it changes the algorithm), got both")
            self.flags[key] = values.pop() if values else False
        first = self.params[0]
        scalars = {k for m in merged for k, v in m.items() if k not in _STRUCTURAL}

        def vector(values):
            return torch.tensor([float(v) for v in values], dtype=first.dtype, device=first.device)

        self.h: dict[str, torch.Tensor] = {}
        for key in sorted(scalars):
            if key == "betas":
                self.h["beta1"] = vector(m["betas"][0] for m in merged)
                self.h["beta2"] = vector(m["betas"][1] for m in merged)
            else:
                self.h[key] = vector(m[key] for m in merged)
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]
        # Which parameters take weight decay (the task exempts biases and norm weights).
        self.decay = list(decay) if decay is not None else [True] * len(self.params)
        self._decaying = True
        self.steps = 0

    @torch.no_grad()
    def keep(self, mask: torch.Tensor, params: Sequence[torch.Tensor]) -> None:
        """Drop the members where ``mask`` is False; ``params`` are the compacted tensors
        (``StackedNetwork.keep`` makes new ones)."""
        mask = mask.to(device=self.h["lr"].device, dtype=torch.bool)
        self.h = {k: v[mask] for k, v in self.h.items()}
        self.state = [{k: v[mask] for k, v in state.items()} for state in self.state]
        self.params = list(params)
        self.n = int(mask.sum())

    def set_lr(self, lrs: Sequence[float] | torch.Tensor) -> None:
        self.h["lr"] = torch.as_tensor(lrs, dtype=self.h["lr"].dtype, device=self.h["lr"].device)

    def _b(self, key: str, like: torch.Tensor) -> torch.Tensor:
        """Hyperparameter ``key`` shaped [N, 1, …] to broadcast over ``like``."""
        value = self.h[key]
        if key == "weight_decay" and not self._decaying:
            value = torch.zeros_like(value)
        return value.view(-1, *([1] * (like.ndim - 1)))

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        for param, state, decays in zip(self.params, self.state, self.decay):
            if param.grad is None:
                continue
            self._decaying = decays
            getattr(self, f"_{self.rule}")(param, param.grad, state)

    # Each follows torch.optim's _single_tensor_<name> for one parameter.
    def _sgd(self, p, grad, state):
        b = lambda k: self._b(k, p)  # noqa: E731
        grad = grad + b("weight_decay") * p
        if "buf" not in state:
            buf = grad.clone()
        else:
            buf = state["buf"] * b("momentum") + (1 - b("dampening")) * grad
        state["buf"] = buf
        stepped = grad + b("momentum") * buf if self.flags["nesterov"] else buf
        # torch keeps no buffer for momentum 0: the step is then the gradient itself.
        stepped = torch.where(b("momentum") != 0, stepped, grad)
        p.sub_(b("lr") * stepped)

    def _adam(self, p, grad, state, decoupled: bool = False):
        b = lambda k: self._b(k, p)  # noqa: E731
        if not state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if self.flags["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        if decoupled:
            p.mul_(1 - b("lr") * b("weight_decay"))
        else:
            grad = grad + b("weight_decay") * p
        beta1, beta2 = b("beta1"), b("beta2")
        state["exp_avg"] = torch.lerp(state["exp_avg"], grad, (1 - beta1).expand_as(grad))
        state["exp_avg_sq"] = state["exp_avg_sq"] * beta2 + (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1 ** self.steps
        bias_correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        second = state["exp_avg_sq"]
        if self.flags["amsgrad"]:
            state["max_exp_avg_sq"] = torch.maximum(state["max_exp_avg_sq"], second)
            second = state["max_exp_avg_sq"]
        denom = second.sqrt() / bias_correction2_sqrt + b("eps")
        p.sub_((b("lr") / bias_correction1) * state["exp_avg"] / denom)

    def _adamw(self, p, grad, state):
        self._adam(p, grad, state, decoupled=True)

    def _rmsprop(self, p, grad, state):
        b = lambda k: self._b(k, p)  # noqa: E731
        if not state:
            state["square_avg"] = torch.zeros_like(p)
            state["momentum_buffer"] = torch.zeros_like(p)
            if self.flags["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
        grad = grad + b("weight_decay") * p
        alpha = b("alpha")
        state["square_avg"] = state["square_avg"] * alpha + (1 - alpha) * grad * grad
        if self.flags["centered"]:
            state["grad_avg"] = torch.lerp(state["grad_avg"], grad, (1 - alpha).expand_as(grad))
            avg = (state["square_avg"] - state["grad_avg"] * state["grad_avg"]).sqrt()
        else:
            avg = state["square_avg"].sqrt()
        avg = avg + b("eps")
        buf = state["momentum_buffer"] * b("momentum") + grad / avg
        state["momentum_buffer"] = torch.where(b("momentum") > 0, buf, state["momentum_buffer"])
        p.sub_(torch.where(b("momentum") > 0, b("lr") * buf, b("lr") * (grad / avg)))

    def _adagrad(self, p, grad, state):
        b = lambda k: self._b(k, p)  # noqa: E731
        if not state:
            state["sum"] = torch.zeros_like(p) + b("initial_accumulator_value")
        grad = grad + b("weight_decay") * p
        clr = b("lr") / (1 + (self.steps - 1) * b("lr_decay"))
        state["sum"] = state["sum"] + grad * grad
        std = state["sum"].sqrt() + b("eps")
        p.sub_(clr * grad / std)

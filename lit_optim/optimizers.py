"""Optimizers by name.

Each entry says what the optimizer can take (momentum, betas, eps, decoupled weight decay) so
one kwargs dict from a recipe or an Optuna trial can be checked against any optimizer before
training starts. ``lr`` and ``weight_decay`` are flat hyperparameters of the task (tuning
searches them); everything else goes in ``optimizer_kwargs``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer

from lit_optim.errors import ConfigError
from lit_optim.kwargs import check_kwargs
from lit_optim.registry import Registry, RegistryEntry, import_object

__all__ = ["OPTIMIZERS", "OptimizerInfo", "build_optimizer", "check_optimizer_args"]

# lit-optim passes these itself; the rest of the signature is the optimizer's kwargs.
_FILLED_IN = ("params", "lr", "weight_decay")
_RESERVED = {"lr": "model.lr", "weight_decay": "model.weight_decay"}


@dataclass(frozen=True, kw_only=True)
class OptimizerInfo(RegistryEntry):
    """A registered optimizer.

    Attributes:
        factory: ``torch.optim.Optimizer`` subclass (or ``"pkg.module.Class"``) called as
            ``factory(params, lr=..., weight_decay=..., **kwargs)``.
        decoupled_weight_decay: True if weight decay shrinks weights directly (AdamW) rather
            than being added to the gradient as an L2 term.
        defaults: kwargs applied before the user's (a user value wins).
    """

    factory: Callable[..., Optimizer] | str
    has_momentum: bool = False
    has_betas: bool = False
    has_eps: bool = False
    decoupled_weight_decay: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Optimizer]:
        return import_object(self.factory)


OPTIMIZERS: Registry[OptimizerInfo] = Registry("optimizers", OptimizerInfo)

OPTIMIZERS.register(OptimizerInfo(
    name="sgd",
    factory=torch.optim.SGD,
    description="stochastic gradient descent; momentum/nesterov via optimizer_kwargs",
    has_momentum=True,
))
OPTIMIZERS.register(OptimizerInfo(
    name="adam",
    factory=torch.optim.Adam,
    description="Adam (Kingma & Ba 2015); weight_decay is an L2 term on the gradient",
    has_betas=True,
    has_eps=True,
))
OPTIMIZERS.register(OptimizerInfo(
    name="adamw",
    factory=torch.optim.AdamW,
    description="Adam with decoupled weight decay (Loshchilov & Hutter 2019)",
    has_betas=True,
    has_eps=True,
    decoupled_weight_decay=True,
))


def _check_number(name: str, value: float, *, allow_zero: bool) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (
        value >= 0 if allow_zero else value > 0
    )
    if not ok:
        bound = "≥ 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


def check_optimizer_args(
    name: str, lr: float, weight_decay: float, kwargs: Mapping[str, Any]
) -> OptimizerInfo:
    """Validate everything ``build_optimizer`` will need; cheap, so the task calls it in __init__."""
    info = OPTIMIZERS.get(name)
    _check_number("lr", lr, allow_zero=False)
    _check_number("weight_decay", weight_decay, allow_zero=True)
    check_kwargs(
        kwargs, info.resolve(), what=f"optimizer {info.name!r}", exclude=_FILLED_IN,
        reserved=_RESERVED,
    )
    return info


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float = 0.0,
    **kwargs: Any,
) -> Optimizer:
    """Instantiate the optimizer registered as ``name``."""
    info = check_optimizer_args(name, lr, weight_decay, kwargs)
    return info.resolve()(params, lr=lr, weight_decay=weight_decay, **{**info.defaults, **kwargs})

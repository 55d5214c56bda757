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

from lit_optim.errors import ConfigError, check_count
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
        has_momentum: takes a ``momentum`` kwarg (heavy ball or similar).
        has_betas: takes ``betas`` (first/second moment decay).
        has_eps: takes ``eps`` (denominator guard).
        decoupled_weight_decay: weight decay shrinks weights directly (AdamW) rather than
            being added to the gradient as an L2 term.
        supports_weight_decay: False for optimizers with no weight decay (L-BFGS); the task
            then adds weight decay to the loss as an explicit L2 term.
        single_param_group: the optimizer cannot take per-parameter options (L-BFGS), so
            lit-optim does not split biases and norm weights into their own group.
        typical_lr: a learning rate that works on standardized small problems; the tests
            and tuning's "defaults" rows start from it.
        defaults: kwargs applied before the user's (a user value wins).
        check: extra validation of the kwargs, for wrappers whose signature says ``**kwargs``.
    """

    factory: Callable[..., Optimizer] | str
    has_momentum: bool = False
    has_betas: bool = False
    has_eps: bool = False
    decoupled_weight_decay: bool = False
    supports_weight_decay: bool = True
    single_param_group: bool = False
    typical_lr: float = 1e-3
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[Mapping[str, Any]], None] | None = None

    def resolve(self) -> Callable[..., Optimizer]:
        return import_object(self.factory)


OPTIMIZERS: Registry[OptimizerInfo] = Registry("optimizers", OptimizerInfo)


def lookahead(
    params, lr: float, weight_decay: float = 0.0, *, base: str = "adam", k: int = 5,
    alpha: float = 0.5, **base_kwargs: Any,
) -> Optimizer:
    """Lookahead around any registered optimizer; other kwargs go to the base."""
    from lit_optim.optim import Lookahead

    inner = build_optimizer(base, params, lr=lr, weight_decay=weight_decay, **base_kwargs)
    return Lookahead(inner, k=k, alpha=alpha)


def _check_lookahead(kwargs: Mapping[str, Any]) -> None:
    kwargs = dict(kwargs)
    base = kwargs.pop("base", "adam")
    k, alpha = kwargs.pop("k", 5), kwargs.pop("alpha", 0.5)
    if OPTIMIZERS.get(base).name == "lookahead":
        raise ConfigError("lookahead cannot wrap itself; choose another base optimizer")
    check_count("lookahead's k", k)
    if not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise ConfigError(f"lookahead's alpha must be in (0, 1], got {alpha!r}")
    info = OPTIMIZERS.get(base)
    check_kwargs(kwargs, info.resolve(), what=f"optimizer 'lookahead' (base {info.name!r})",
                 exclude=_FILLED_IN, reserved=_RESERVED)


_torch = torch.optim
for entry in [
    OptimizerInfo(name="sgd", factory=_torch.SGD, has_momentum=True, typical_lr=0.05,
                  description="(stochastic) gradient descent; momentum 0 unless given"),
    OptimizerInfo(name="momentum", factory=_torch.SGD, has_momentum=True, typical_lr=0.05,
                  aliases=("heavy_ball",), defaults={"momentum": 0.9},
                  description="heavy-ball momentum: v ← βv + g, w ← w - lr·v (β = 0.9)"),
    OptimizerInfo(name="nesterov", factory=_torch.SGD, has_momentum=True, typical_lr=0.05,
                  defaults={"momentum": 0.9, "nesterov": True},
                  description="Nesterov accelerated gradient, torch's form (β = 0.9)"),
    OptimizerInfo(name="adagrad", factory=_torch.Adagrad, has_eps=True, typical_lr=0.05,
                  description="per-coordinate lr ∝ 1/√(sum of squared gradients)"),
    OptimizerInfo(name="rmsprop", factory=_torch.RMSprop, has_momentum=True, has_eps=True,
                  description="per-coordinate lr ∝ 1/√(EMA of squared gradients)"),
    OptimizerInfo(name="adadelta", factory=_torch.Adadelta, has_eps=True, typical_lr=1.0,
                  description="Adadelta: unit-corrected RMS of updates over RMS of gradients"),
    OptimizerInfo(name="adam", factory=_torch.Adam, has_betas=True, has_eps=True,
                  description="Adam (Kingma & Ba 2015); weight_decay is an L2 term on the gradient"),
    OptimizerInfo(name="amsgrad", factory=_torch.Adam, has_betas=True, has_eps=True,
                  defaults={"amsgrad": True},
                  description="Adam with the running maximum of the second moment (Reddi et al. 2018)"),
    OptimizerInfo(name="adamw", factory=_torch.AdamW, has_betas=True, has_eps=True,
                  decoupled_weight_decay=True,
                  description="Adam with decoupled weight decay (Loshchilov & Hutter 2019)"),
    OptimizerInfo(name="nadam", factory=_torch.NAdam, has_betas=True, has_eps=True,
                  description="Adam with Nesterov momentum (Dozat 2016)"),
    OptimizerInfo(name="radam", factory=_torch.RAdam, has_betas=True, has_eps=True,
                  description="rectified Adam: variance-corrected warm start (Liu et al. 2020)"),
    OptimizerInfo(name="adamax", factory=_torch.Adamax, has_betas=True, has_eps=True,
                  typical_lr=2e-3, description="Adam with the infinity norm for the second moment"),
    OptimizerInfo(name="adafactor", factory=_torch.Adafactor, decoupled_weight_decay=True,
                  typical_lr=1e-2,
                  description="factored second moments, relative step size (Shazeer & Stern 2018)"),
    OptimizerInfo(name="lbfgs", factory=_torch.LBFGS, supports_weight_decay=False,
                  single_param_group=True, typical_lr=1.0,
                  description="limited-memory BFGS; re-evaluates the loss through Lightning's "
                              "closure; weight_decay becomes an L2 term in the loss"),
    OptimizerInfo(name="lars", factory="lit_optim.optim.LARS", has_momentum=True, typical_lr=1.0,
                  description="SGD + momentum with a per-layer trust ratio (You et al. 2017)"),
    OptimizerInfo(name="lamb", factory="lit_optim.optim.LAMB", has_betas=True, has_eps=True,
                  decoupled_weight_decay=True, typical_lr=1e-2,
                  description="Adam direction with a per-layer trust ratio (You et al. 2019)"),
    OptimizerInfo(name="lookahead", factory=lookahead, check=_check_lookahead,
                  description="k fast steps of a base optimizer, then slow weights move alpha of the way"),
    OptimizerInfo(name="muon", factory="lit_optim.optim.MuonWithAdamW", has_momentum=True,
                  decoupled_weight_decay=True, typical_lr=1e-2,
                  description="Muon (orthogonalized momentum) on 2-D weights; AdamW on the rest"),
]:
    OPTIMIZERS.register(entry)


def _check_number(name: str, value: float, *, allow_zero: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and (
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
    if info.check is not None:
        info.check(kwargs)
    else:
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
    if info.supports_weight_decay:
        kwargs = {"weight_decay": weight_decay, **kwargs}
    return info.resolve()(params, lr=lr, **{**info.defaults, **kwargs})

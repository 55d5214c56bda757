"""Optimizers by name.

Each entry says what the optimizer can take (momentum, betas, weight decay, param groups) and
which population rule follows it, so one kwargs dict from a recipe or an Optuna trial can be
checked against any optimizer before training starts. ``lr`` and ``weight_decay`` are flat
hyperparameters of the task (tuning searches them); everything else goes in
``optimizer_kwargs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer

from lit_optim.catalog.checks import check_count, check_non_negative, check_number
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.kwargs import accepted_kwargs, check_kwargs
from lit_optim.catalog.registry import Registry, RegistryEntry, import_object

__all__ = [
    "OPTIMIZERS",
    "OptimizerInfo",
    "build_optimizer",
    "check_optimizer_args",
    "group_options",
    "instantiate_optimizer",
]

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
        population_rule: the vectorized update rule (``lit_optim.population.rules``) that
            follows this optimizer's arithmetic with per-member hyperparameters, so trials
            using it can train as one population; None: one by one.
        supports_weight_decay: False for optimizers with no weight decay (L-BFGS): asking them
            for weight decay is an error; add it to the loss instead (``lit_optim.l2_penalty``;
            ``ClassificationTask`` does so for its users).
        single_param_group: the optimizer cannot take per-parameter options (L-BFGS), so
            lit-optim does not split biases and norm weights into their own group.
        typical_lr: a learning rate that works on standardized small problems; the tests
            and tuning's "defaults" rows start from it.
        defaults: kwargs applied before the user's (a user value wins).
        check: extra validation of the kwargs, for wrappers whose signature says ``**kwargs``.
        wraps: for wrappers (lookahead), the kwarg that names the base optimizer, whose
            options are the ones a param group may set.
    """

    factory: Callable[..., Optimizer] | str
    has_momentum: bool = False
    has_betas: bool = False
    population_rule: str | None = None
    supports_weight_decay: bool = True
    single_param_group: bool = False
    typical_lr: float = 1e-3
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[Mapping[str, Any]], None] | None = None
    wraps: str | None = None

    def resolve(self) -> Callable[..., Optimizer]:
        return import_object(self.factory)


OPTIMIZERS: Registry[OptimizerInfo] = Registry("optimizers", OptimizerInfo)


# -- the domains of the kwargs the registered optimizers share, where torch accepts values that
# make no sense (momentum 1 never forgets, 1.5 diverges; a third beta is ignored). Checked for
# every optimizer that takes the kwarg, before torch's own checks (a throwaway build). -------
def _fraction(name: str, value: Any) -> float:
    return check_number(name, value, low=0, high=1, high_open=True)


def _betas(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(
            f"{name} must be a pair [beta1, beta2] such as [0.9, 0.999], got {value!r}"
        )
    for i, beta in enumerate(value):
        _fraction(f"{name}[{i}]", beta)
    return tuple(value)


def _eps(name: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)):  # Adafactor's pair (eps1 or None, eps2): torch's to check
        return value
    return check_number(name, value, low=0, note=" (a small number such as 1e-8)")


KWARG_DOMAINS: Mapping[str, Callable[[str, Any], Any]] = {
    "momentum": _fraction,  # SGD family, RMSprop, LARS, Muon: in [0, 1)
    "dampening": lambda name, value: check_number(name, value, low=0, high=1),
    "betas": _betas,  # Adam family, LAMB: two decays in [0, 1)
    # RMSprop's smoothing constant: 1 never forgets, 1.5 trains straight to NaN (torch takes
    # both); lookahead's own alpha in (0, 1] is its own check's.
    "alpha": _fraction,
    "rho": lambda name, value: check_number(name, value, low=0, high=1),  # Adadelta's decay
    "eps": _eps,
    "lr_decay": check_non_negative,
    "initial_accumulator_value": check_non_negative,  # Adagrad
    "momentum_decay": check_non_negative,
    "trust_coefficient": check_non_negative,  # NAdam, LARS
}


def lookahead(
    params,
    lr: float,
    weight_decay: float = 0.0,
    *,
    base: str = "adam",
    k: int = 5,
    alpha: float = 0.5,
    **base_kwargs: Any,
) -> Optimizer:
    """Lookahead around any registered optimizer; other kwargs go to the base."""
    from lit_optim.catalog.extra_optimizers import Lookahead

    inner = build_optimizer(base, params, lr=lr, weight_decay=weight_decay, **base_kwargs)
    return Lookahead(inner, k=k, alpha=alpha)


def _check_lookahead(kwargs: Mapping[str, Any]) -> None:
    kwargs = dict(kwargs)
    base = kwargs.pop("base", "adam")
    k, alpha = kwargs.pop("k", 5), kwargs.pop("alpha", 0.5)
    if OPTIMIZERS.get(base).name == "lookahead":
        raise ConfigError("lookahead cannot wrap itself; choose another base optimizer")
    check_count("lookahead's k", k)
    check_number("lookahead's alpha", alpha, low=0, high=1, low_open=True)
    info = OPTIMIZERS.get(base)
    check_kwargs(
        kwargs,
        info.resolve(),
        what=f"optimizer 'lookahead' (base {info.name!r})",
        exclude=_FILLED_IN,
        reserved=_RESERVED,
    )


_torch = torch.optim
for entry in [
    OptimizerInfo(
        name="sgd",
        factory=_torch.SGD,
        has_momentum=True,
        typical_lr=0.05,
        population_rule="sgd",
        description="(stochastic) gradient descent; momentum 0 unless given",
    ),
    OptimizerInfo(
        name="momentum",
        factory=_torch.SGD,
        has_momentum=True,
        typical_lr=0.05,
        population_rule="sgd",
        aliases=("heavy_ball",),
        defaults={"momentum": 0.9},
        description="heavy-ball momentum: v ← βv + g, w ← w - lr·v (β = 0.9)",
    ),
    OptimizerInfo(
        name="nesterov",
        factory=_torch.SGD,
        has_momentum=True,
        typical_lr=0.05,
        population_rule="sgd",
        defaults={"momentum": 0.9, "nesterov": True},
        description="Nesterov accelerated gradient, torch's form (β = 0.9)",
    ),
    OptimizerInfo(
        name="adagrad",
        factory=_torch.Adagrad,
        typical_lr=0.05,
        population_rule="adagrad",
        description="per-coordinate lr ∝ 1/√(sum of squared gradients)",
    ),
    OptimizerInfo(
        name="rmsprop",
        factory=_torch.RMSprop,
        has_momentum=True,
        population_rule="rmsprop",
        description="per-coordinate lr ∝ 1/√(EMA of squared gradients)",
    ),
    OptimizerInfo(
        name="adadelta",
        factory=_torch.Adadelta,
        typical_lr=1.0,
        description="Adadelta: unit-corrected RMS of updates over RMS of gradients",
    ),
    OptimizerInfo(
        name="adam",
        factory=_torch.Adam,
        has_betas=True,
        population_rule="adam",
        description="Adam (Kingma & Ba 2015); weight_decay is an L2 term on the gradient",
    ),
    OptimizerInfo(
        name="amsgrad",
        factory=_torch.Adam,
        has_betas=True,
        population_rule="adam",
        defaults={"amsgrad": True},
        description="Adam with the running maximum of the second moment (Reddi et al. 2018)",
    ),
    OptimizerInfo(
        name="adamw",
        factory=_torch.AdamW,
        has_betas=True,
        population_rule="adamw",
        description="Adam with decoupled weight decay (Loshchilov & Hutter 2019)",
    ),
    OptimizerInfo(
        name="nadam",
        factory=_torch.NAdam,
        has_betas=True,
        description="Adam with Nesterov momentum (Dozat 2016)",
    ),
    OptimizerInfo(
        name="radam",
        factory=_torch.RAdam,
        has_betas=True,
        description="rectified Adam: variance-corrected warm start (Liu et al. 2020)",
    ),
    OptimizerInfo(
        name="adamax",
        factory=_torch.Adamax,
        has_betas=True,
        typical_lr=2e-3,
        description="Adam with the infinity norm for the second moment",
    ),
    OptimizerInfo(
        name="adafactor",
        factory=_torch.Adafactor,
        typical_lr=1e-2,
        description="factored second moments, relative step size (Shazeer & Stern 2018)",
    ),
    OptimizerInfo(
        name="lbfgs",
        factory=_torch.LBFGS,
        supports_weight_decay=False,
        single_param_group=True,
        typical_lr=1.0,
        description="limited-memory BFGS; re-evaluates the loss through Lightning's "
        "closure; weight_decay becomes an L2 term in the loss",
    ),
    OptimizerInfo(
        name="lars",
        factory="lit_optim.catalog.extra_optimizers.LARS",
        has_momentum=True,
        typical_lr=1.0,
        description="SGD + momentum with a per-layer trust ratio (You et al. 2017)",
    ),
    OptimizerInfo(
        name="lamb",
        factory="lit_optim.catalog.extra_optimizers.LAMB",
        has_betas=True,
        typical_lr=1e-2,
        description="Adam direction with a per-layer trust ratio (You et al. 2019)",
    ),
    OptimizerInfo(
        name="lookahead",
        factory=lookahead,
        check=_check_lookahead,
        wraps="base",
        description="k fast steps of a base optimizer, then slow weights move alpha of the way",
    ),
    OptimizerInfo(
        name="muon",
        factory="lit_optim.catalog.extra_optimizers.MuonWithAdamW",
        has_momentum=True,
        typical_lr=1e-2,
        description="Muon (orthogonalized momentum) on 2-D weights; AdamW on the rest",
    ),
]:
    OPTIMIZERS.register(entry)


def group_options(info: OptimizerInfo, kwargs: Mapping[str, Any]) -> set[str]:
    """The options a param group may set for this optimizer (a wrapper's are its base's)."""
    if info.wraps is not None:
        default = accepted_kwargs(info.resolve()).get(info.wraps)
        info = OPTIMIZERS.get(kwargs.get(info.wraps, default))
    return set(accepted_kwargs(info.resolve(), exclude=("params",))) | {"lr", "weight_decay"}


def check_optimizer_args(
    name: str, lr: float, weight_decay: float, kwargs: Mapping[str, Any]
) -> OptimizerInfo:
    """Validate everything ``build_optimizer`` will need: the name, every kwarg and every value.

    Cheap (the optimizer is built once on a throwaway parameter, so a value torch rejects is a
    ConfigError naming the optimizer and the kwarg now, not a traceback at the first step); the
    task calls it in __init__.
    """
    info = OPTIMIZERS.get(name)
    seen = _checked_key(info, lr, weight_decay, kwargs)
    if seen is not None and _CHECKED.get(seen) is info:
        return info
    check_number("lr", lr, low=0, low_open=True)
    check_number("weight_decay", weight_decay, low=0)
    if weight_decay and not info.supports_weight_decay:
        raise ConfigError(
            f"optimizer {info.name!r} has no weight decay, so weight_decay={weight_decay:g} "
            "would be silently dropped; add it to the loss as an L2 term "
            "(loss + lit_optim.l2_penalty(module, weight_decay)) and pass weight_decay=0"
        )
    if info.check is not None:
        info.check(kwargs)
    else:
        check_kwargs(
            kwargs,
            info.resolve(),
            what=f"optimizer {info.name!r}",
            exclude=_FILLED_IN,
            reserved=_RESERVED,
        )
    for key, value in kwargs.items():
        if key in KWARG_DOMAINS:
            KWARG_DOMAINS[key](f"optimizer {info.name!r} {key}", value)
    _try_build(info, lr, weight_decay, kwargs)
    if seen is not None:
        if len(_CHECKED) >= 256:
            _CHECKED.clear()
        _CHECKED[seen] = info
    return info


# Values already checked, by registry entry: a module checks its optimizer's values in
# __init__ (check_optimizer_choice) and create_optimizer checks them again when Lightning calls
# configure_optimizers; the checks, and the throwaway build, run once per distinct values.
_CHECKED: dict[tuple, OptimizerInfo] = {}


def _checked_key(
    info: OptimizerInfo, lr: Any, weight_decay: Any, kwargs: Mapping[str, Any]
) -> tuple | None:
    """A hashable key for these values (types included: True is not 1), or None."""

    def frozen(value: Any) -> Any:
        if isinstance(value, Mapping):
            return ("map", tuple(sorted((str(k), frozen(v)) for k, v in value.items())))
        if isinstance(value, (list, tuple)):
            return (type(value).__name__, tuple(frozen(v) for v in value))
        hash(value)
        return (type(value).__name__, value)

    try:
        return (id(info), frozen(lr), frozen(weight_decay), frozen(dict(kwargs)))
    except TypeError:  # an unhashable value: checked every time
        return None


def instantiate_optimizer(
    info: OptimizerInfo, params, lr: float, weight_decay: float, kwargs: Mapping[str, Any]
) -> Optimizer:
    """Build an entry's optimizer with no checks (``check_optimizer_args`` first)."""
    if info.supports_weight_decay:
        kwargs = {"weight_decay": weight_decay, **kwargs}
    return info.resolve()(params, lr=lr, **{**info.defaults, **kwargs})


def _try_build(
    info: OptimizerInfo, lr: float, weight_decay: float, kwargs: Mapping[str, Any]
) -> None:
    """Build on throwaway parameters (a matrix and a vector, as Muon splits them); on failure,
    name the kwarg that fails on its own."""

    def attempt(subset: Mapping[str, Any]) -> Exception | None:
        params = [torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))]
        try:
            instantiate_optimizer(info, params, lr, weight_decay, subset)
        except ConfigError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as err:
            return err
        return None

    err = attempt(kwargs)
    if err is None:
        return
    culprit = next((k for k in kwargs if attempt({k: kwargs[k]}) is not None), None)
    what = (
        f"{culprit}={kwargs[culprit]!r}" if culprit else f"lr={lr!r}, weight_decay={weight_decay!r}"
    )
    raise ConfigError(f"optimizer {info.name!r} rejects {what}: {err}")


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float = 0.0,
    **kwargs: Any,
) -> Optimizer:
    """Instantiate the optimizer registered as ``name`` on ``params`` as given (tensors or
    param-group dicts). ``lit_optim.create_optimizer`` also takes a module."""
    info = check_optimizer_args(name, lr, weight_decay, kwargs)
    return instantiate_optimizer(info, params, lr, weight_decay, kwargs)

"""The public factory: an optimizer and a Lightning LR-scheduler config by name, for ANY
LightningModule. ``ClassificationTask`` is one user of it, like a user's own module:

    def configure_optimizers(self):
        opt = create_optimizer(self, "adamw", lr=3e-4, weight_decay=0.05)  # no decay on bias/norm
        return {"optimizer": opt,
                "lr_scheduler": create_scheduler("cosine", opt, self.trainer, warmup_steps=100)}

Everything is checked before anything is built: names (with close matches), kwargs (against
the optimizer's or scheduler's signature) and values (a bad ``betas`` is a ConfigError that
names the optimizer and the kwarg). timm's ``create_optimizer_v2`` is the model for the call;
ours also wires the scheduler into Lightning (interval, frequency, monitor, run length).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import nn
from torch.optim import Optimizer

from lit_optim.catalog.checks import check_number
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.objective import logged_directions
from lit_optim.catalog.optimizers import (
    OPTIMIZERS,
    OptimizerInfo,
    check_optimizer_args,
    group_options,
    instantiate_optimizer,
)
from lit_optim.catalog.param_groups import build_param_groups, check_param_group_specs, takes_decay
from lit_optim.catalog.schedulers import SCHEDULERS, check_scheduler_args, scheduler_config
from lit_optim.catalog.trainer_info import run_length, validation_period

if TYPE_CHECKING:  # the catalog never imports Lightning: a Trainer is only passed in
    import lightning as L

# A child of Lightning's logger: it prints where Lightning's own info lines do, and is
# silenced with them (lit-tune trials), without importing Lightning here.
_log = logging.getLogger("lightning.pytorch.lit_optim")

__all__ = [
    "LR_SCALING_RULES",
    "check_lr_scaling",
    "check_optimizer_choice",
    "create_optimizer",
    "create_scheduler",
    "l2_penalty",
    "loss_weight_decay",
    "lr_scale_factor",
    "scaling_rule_factor",
]

LR_SCALING_RULES = ("none", "linear", "sqrt")


def check_optimizer_choice(
    name: str,
    *,
    lr: float,
    weight_decay: float = 0.0,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> OptimizerInfo:
    """Every check ``create_optimizer`` makes that needs no parameters: call it in a module's
    ``__init__`` so a bad recipe fails before any data is read. Returns the registry entry."""
    info = check_optimizer_args(name, lr, weight_decay, kwargs)
    if not param_groups:
        return info
    if info.single_param_group:
        raise ConfigError(
            f"optimizer {info.name!r} takes a single parameter group; remove param_groups"
        )
    check_param_group_specs(param_groups, group_options(info, kwargs))
    for i, spec in enumerate(param_groups):
        # Each group's own values go through the same checks as the defaults.
        options = {k: v for k, v in spec.items() if k not in ("params", "lr", "weight_decay")}
        try:
            check_optimizer_args(
                name,
                spec.get("lr", lr),
                spec.get("weight_decay", weight_decay),
                {**kwargs, **options},
            )
        except ConfigError as err:
            raise ConfigError(f"param_groups[{i}]: {err}") from None
    return info


def create_optimizer(
    model_or_params: nn.Module | Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    name: str,
    *,
    lr: float,
    weight_decay: float = 0.0,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    decay_bias_and_norm: bool = False,
    lr_scale: float = 1.0,
    **kwargs: Any,
) -> Optimizer:
    """The optimizer registered as ``name`` (``lit-optim list optimizers``).

    Args:
        model_or_params: a module, whose trainable parameters are grouped here (biases and norm
            weights get no weight decay unless ``decay_bias_and_norm``; ``param_groups`` globs
            over its parameter names), or parameters / param-group dicts used as they are.
        lr, weight_decay: the defaults of every group. An optimizer without weight decay
            (L-BFGS) refuses ``weight_decay > 0``: add it to the loss (``l2_penalty``).
        param_groups: ``[{params: "net.0.*", lr: 0.01, weight_decay: 0}, …]``; a module only.
        lr_scale: multiplies every lr (the batch-size rule: ``lr_scale_factor``).
        kwargs: the optimizer's other options (``momentum``, ``betas`` …).
    """
    info = check_optimizer_choice(
        name, lr=lr, weight_decay=weight_decay, param_groups=param_groups, **kwargs
    )
    check_number("lr_scale", lr_scale, low=0, low_open=True)
    if not isinstance(decay_bias_and_norm, bool):  # "no" is a true string
        raise ConfigError(f"decay_bias_and_norm must be true or false, got {decay_bias_and_norm!r}")
    if isinstance(model_or_params, nn.Module):
        if info.single_param_group:
            params: list[Any] = [p for p in model_or_params.parameters() if p.requires_grad]
        else:
            params = build_param_groups(
                model_or_params,
                lr=lr,
                weight_decay=weight_decay,
                specs=param_groups or (),
                decay_bias_and_norm=decay_bias_and_norm,
                lr_factor=lr_scale,
            )
    else:
        if param_groups:
            raise ConfigError(
                "param_groups are globs over parameter names: pass the module "
                "itself, not its parameters"
            )
        if isinstance(model_or_params, (str, bytes)) or not isinstance(model_or_params, Iterable):
            raise ConfigError(
                f"create_optimizer({name!r}): the first argument must be a module (self in "
                "configure_optimizers) or its parameters, got "
                f"{type(model_or_params).__name__}"
            )
        params = list(model_or_params)
    if not params:
        raise ConfigError(f"optimizer {info.name!r} got no trainable parameters")
    # Checked above with these values (lr_scale > 0 keeps lr > 0): build without re-checking.
    return instantiate_optimizer(info, params, lr * lr_scale, weight_decay, kwargs)


def create_scheduler(
    name: str,
    optimizer: Optimizer,
    trainer: L.Trainer,
    *,
    monitor: str | None = None,
    mode: Literal["min", "max"] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The Lightning ``lr_scheduler`` config for the scheduler registered as ``name``.

    Returns ``{"scheduler", "interval", "frequency"}`` (plus ``"monitor"`` for plateau), ready
    for ``configure_optimizers``' ``{"optimizer": opt, "lr_scheduler": ...}``. Run lengths
    come from ``trainer`` (max_epochs or max_steps, gradient accumulation, limit_train_batches);
    a monitoring schedule steps on the epochs that validate (check_val_every_n_epoch).

    Args:
        monitor: the metric a monitoring schedule (plateau) reads, any name the module logs
            (default ``val_loss``); ignored by schedules that read none, so one call serves
            every name. Lightning checks it is logged when it first steps the scheduler.
        mode: ``min`` or ``max`` for that metric. Not given: the torchmetrics Metric the
            module logs under that name decides (its ``higher_is_better``, on the first log),
            or the name is a standard one (``val_loss``, ``val_acc`` …); else a DirectionError
            that says to give it. A schedule that reads no metric ignores ``min``/``max``; to
            one with a ``mode`` of its own (cyclic's) any other word is that kwarg.
        kwargs: the scheduler's options, plus ``warmup_steps`` / ``warmup_epochs`` and
            ``warmup_start_factor`` for a linear warmup in front of it.
    """
    if mode is not None:
        # For plateau, min|max of its metric. A schedule that reads no metric ignores a
        # direction (one call serves every name, as with monitor); any other word is a kwarg
        # of its own (cyclic's mode).
        if SCHEDULERS.get(name).needs_monitor and mode not in ("min", "max"):
            raise ConfigError(f"scheduler {name!r}: mode must be min or max, got {mode!r}")
        if SCHEDULERS.get(name).needs_monitor or mode not in ("min", "max"):
            kwargs["mode"] = mode
    info, monitor = check_scheduler_args(name, kwargs, monitor=monitor)  # before any data loads
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(
            f"create_scheduler({name!r}, optimizer, trainer): optimizer must be a "
            f"torch.optim.Optimizer (create_optimizer's), got {type(optimizer).__name__}"
        )
    if not hasattr(trainer, "estimated_stepping_batches"):
        raise ConfigError(
            f"create_scheduler({name!r}, optimizer, trainer): trainer must be the Lightning "
            f"Trainer (self.trainer in configure_optimizers), got {type(trainer).__name__}; "
            "the schedule reads the run's length from it"
        )
    module = getattr(trainer, "lightning_module", None)
    return scheduler_config(
        info,
        monitor,
        optimizer,
        kwargs,
        run=run_length(trainer),
        val_every_n_epochs=validation_period(trainer),
        directions=logged_directions(module) if module is not None else None,
    )


def loss_weight_decay(name: str, weight_decay: float) -> float:
    """The share of ``weight_decay`` the optimizer cannot apply (all of it for L-BFGS), which
    a module that wants it adds to its loss with ``l2_penalty``; 0 for every other optimizer."""
    return 0.0 if OPTIMIZERS.get(name).supports_weight_decay else weight_decay


def l2_penalty(
    module: nn.Module, weight_decay: float, *, decay_bias_and_norm: bool = False
) -> torch.Tensor | float:
    """½·weight_decay·Σ‖w‖² over the parameters that decay (biases and norm weights excluded
    unless ``decay_bias_and_norm``): the gradient is weight_decay·w, the L2 form of decay."""
    decayed = [
        p
        for p in module.parameters()
        if p.requires_grad and takes_decay(p.ndim, decay_bias_and_norm)
    ]
    return 0.5 * weight_decay * sum(p.pow(2).sum() for p in decayed)


def check_lr_scaling(rule: str, base_batch_size: int | None) -> None:
    if rule not in LR_SCALING_RULES:
        raise ConfigError(f"lr_scaling must be one of {'|'.join(LR_SCALING_RULES)}, got {rule!r}")
    if rule != "none" and (
        isinstance(base_batch_size, bool)
        or not isinstance(base_batch_size, int)
        or base_batch_size < 1
    ):
        raise ConfigError(
            f"lr_scaling {rule!r} needs base_batch_size, the batch size lr was "
            f"chosen for (an integer >= 1), got {base_batch_size!r}"
        )


def scaling_rule_factor(rule: str, global_batch: int, base_batch_size: int) -> float:
    """The lr multiplier of a large-batch rule: global_batch / base for ``linear``, its square
    root for ``sqrt``, 1 for ``none``."""
    ratio = global_batch / base_batch_size
    return {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[rule]


def lr_scale_factor(trainer: L.Trainer, rule: str, base_batch_size: int | None) -> float:
    """The large-batch rule: ``linear`` is global batch / base_batch_size, ``sqrt`` its root,
    ``none`` 1. The global batch is the data module's ``batch_size`` × devices × gradient
    accumulation. A factor other than 1 is reported once and logged as ``effective_lr_scale``."""
    check_lr_scaling(rule, base_batch_size)
    if rule == "none":
        return 1.0
    datamodule = trainer.datamodule  # type: ignore[attr-defined]  # set by its connector
    per_device = getattr(datamodule, "batch_size", None)
    if isinstance(per_device, bool) or not isinstance(per_device, int):
        raise ConfigError(
            f"lr_scaling {rule!r} needs the batch size: fit with a data module "
            "that has an integer batch_size"
        )
    factor = scaling_rule_factor(
        rule,
        per_device * trainer.world_size * trainer.accumulate_grad_batches,
        cast(int, base_batch_size),  # an int >= 1 for any rule but none: checked above
    )
    if trainer.is_global_zero:
        _log.info(f"lr_scaling {rule}: global batch / {base_batch_size} → lr × {factor:.4g}")
    if trainer.logger is not None:
        trainer.logger.log_hyperparams({"effective_lr_scale": factor})
    return factor

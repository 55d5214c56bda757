"""Learning-rate schedulers by name.

Entries carry what Lightning's ``lr_scheduler`` config needs, so it cannot be wired wrong:
``interval`` (per optimizer step or per epoch), whether the scheduler reads a monitored metric
(plateau), and whether it needs the total number of optimizer steps (which the task takes from
``trainer.estimated_stepping_batches``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched

from lit_optim.errors import ConfigError
from lit_optim.kwargs import check_kwargs
from lit_optim.registry import Registry, RegistryEntry, import_object

__all__ = [
    "SCHEDULERS",
    "SchedulerInfo",
    "build_scheduler_config",
    "check_scheduler_args",
    "monitor_mode",
]

# Filled in by lit-optim, never by the user.
_FILLED_IN = ("optimizer", "total_steps", "last_epoch", "verbose")


@dataclass(frozen=True, kw_only=True)
class SchedulerInfo(RegistryEntry):
    """A registered LR scheduler.

    Attributes:
        factory: called as ``factory(optimizer, **kwargs)``, plus ``total_steps=`` when
            ``needs_total_steps``.
        interval: ``"step"`` to step after every optimizer step, ``"epoch"`` after every epoch.
        needs_monitor: the scheduler's ``step`` takes a metric; ``scheduler_kwargs`` may then
            hold ``monitor`` (default ``val_loss``).
        needs_total_steps: the schedule is defined over the whole run.
        defaults: kwargs applied before the user's (a user value wins).
    """

    factory: Callable[..., Any] | str
    interval: Literal["step", "epoch"] = "epoch"
    needs_monitor: bool = False
    needs_total_steps: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Any]:
        return import_object(self.factory)


SCHEDULERS: Registry[SchedulerInfo] = Registry("schedulers", SchedulerInfo)


def constant(optimizer: Optimizer) -> sched.LRScheduler:
    """The lr stays where the optimizer put it (a scheduler object all the same, so the rest
    of the code has one path and a checkpoint always has a scheduler state)."""
    return sched.ConstantLR(optimizer, factor=1.0, total_iters=0)


def cosine(optimizer: Optimizer, *, total_steps: int, eta_min: float = 0.0) -> sched.LRScheduler:
    """Cosine annealing from the initial lr to ``eta_min`` over the whole run, per step."""
    return sched.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=eta_min)


SCHEDULERS.register(SchedulerInfo(
    name="constant",
    factory=constant,
    description="keep the initial lr",
    aliases=("none",),
))
SCHEDULERS.register(SchedulerInfo(
    name="step",
    factory=sched.StepLR,
    description="multiply the lr by gamma every step_size epochs",
    defaults={"step_size": 10, "gamma": 0.1},
))
SCHEDULERS.register(SchedulerInfo(
    name="cosine",
    factory=cosine,
    description="cosine annealing to eta_min over all training steps",
    interval="step",
    needs_total_steps=True,
))
SCHEDULERS.register(SchedulerInfo(
    name="plateau",
    factory=sched.ReduceLROnPlateau,
    description="multiply the lr by factor when the monitored metric stops improving",
    needs_monitor=True,
    aliases=("reduce_on_plateau",),
))

# Metrics the task logs once per epoch, and so the only ones a scheduler can monitor.
EPOCH_METRICS = ("val_loss", "val_acc", "train_loss", "train_acc")


def monitor_mode(monitor: str) -> Literal["min", "max"]:
    """Accuracy improves upwards, losses downwards."""
    return "max" if monitor.endswith("acc") else "min"


def check_scheduler_args(name: str, kwargs: Mapping[str, Any]) -> tuple[SchedulerInfo, str | None]:
    """Validate a scheduler choice before training; returns the entry and its monitor."""
    info = SCHEDULERS.get(name)
    kwargs = dict(kwargs)
    monitor = None
    if info.needs_monitor:
        monitor = kwargs.pop("monitor", "val_loss")
        if monitor not in EPOCH_METRICS:
            raise ConfigError(
                f"scheduler {info.name!r} monitors {monitor!r}, which is never logged; "
                f"use one of: {', '.join(EPOCH_METRICS)}"
            )
    check_kwargs(kwargs, info.resolve(), what=f"scheduler {info.name!r}", exclude=_FILLED_IN)
    return info, monitor


def build_scheduler_config(
    name: str,
    optimizer: Optimizer,
    kwargs: Mapping[str, Any],
    *,
    total_steps: float,
    val_every_n_epochs: int | None,
) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` dict for the scheduler registered as ``name``.

    Args:
        total_steps: ``trainer.estimated_stepping_batches`` (may be ``inf``).
        val_every_n_epochs: how often validation runs, or None if it never does.
    """
    info, monitor = check_scheduler_args(name, kwargs)
    call_kwargs = {**info.defaults, **{k: v for k, v in kwargs.items() if k != "monitor"}}
    frequency = 1
    if info.needs_total_steps:
        if not math.isfinite(total_steps):
            raise ConfigError(
                f"scheduler {info.name!r} needs a finite run: set trainer.max_epochs or "
                "trainer.max_steps"
            )
        call_kwargs["total_steps"] = max(1, int(total_steps))
    if monitor is not None:
        call_kwargs.setdefault("mode", monitor_mode(monitor))
        if monitor.startswith("val_"):
            if val_every_n_epochs is None:
                raise ConfigError(
                    f"scheduler {info.name!r} monitors {monitor!r} but validation never runs; "
                    "enable it (trainer.limit_val_batches > 0) or monitor a train_ metric"
                )
            # Step only on epochs that produced the metric, or Lightning fails mid-run.
            frequency = val_every_n_epochs
    config: dict[str, Any] = {
        "scheduler": info.resolve()(optimizer, **call_kwargs),
        "interval": info.interval,
        "frequency": frequency,
    }
    if monitor is not None:
        config["monitor"] = monitor
        config["strict"] = True
    return config

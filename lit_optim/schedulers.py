"""Learning-rate schedulers by name, with an optional linear warmup in front of any of them.

Entries carry what Lightning's ``lr_scheduler`` config needs, so it cannot be wired wrong:
``interval`` (per optimizer step or per epoch), whether the scheduler reads a monitored metric
(plateau), and whether it needs the total number of optimizer steps (which the task takes from
``trainer.estimated_stepping_batches``).

Warmup: ``warmup_steps`` or ``warmup_epochs`` in ``scheduler_kwargs`` (and optionally
``warmup_start_factor``, default 0.001) ramps the lr linearly from start_factor·lr to lr, then
hands over to the named schedule, which starts its own clock at the end of the warmup.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched

from lit_optim.errors import ConfigError, check_count
from lit_optim.kwargs import accepted_kwargs, check_kwargs
from lit_optim.lr_schedules import InverseTimeLR, PolynomialDecayLR
from lit_optim.registry import Registry, RegistryEntry, import_object

__all__ = [
    "EPOCH_METRICS",
    "SCHEDULERS",
    "RunLength",
    "SchedulerInfo",
    "build_scheduler_config",
    "check_scheduler_args",
    "monitor_mode",
]

# Filled in by lit-optim, never by the user.
_FILLED_IN = ("optimizer", "total_steps", "last_epoch", "verbose")
WARMUP_KEYS = ("warmup_steps", "warmup_epochs", "warmup_start_factor")


@dataclass(frozen=True, kw_only=True)
class SchedulerInfo(RegistryEntry):
    """A registered LR scheduler.

    Attributes:
        factory: called as ``factory(optimizer, **kwargs)``, plus ``total_steps=`` when
            ``needs_total_steps``.
        interval: ``"step"`` to step after every optimizer step, ``"epoch"`` after every epoch.
        needs_monitor: the scheduler's ``step`` takes a metric; ``scheduler_kwargs`` may then
            hold ``monitor`` (default ``val_loss``).
        needs_total_steps: the schedule is defined over the whole run (in its own interval).
        own_warmup: the schedule starts with a ramp of its own (1cycle), so no warmup is
            put in front of it.
        defaults: kwargs applied before the user's (a user value wins).
    """

    factory: Callable[..., Any] | str
    interval: Literal["step", "epoch"] = "epoch"
    needs_monitor: bool = False
    needs_total_steps: bool = False
    own_warmup: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Any]:
        return import_object(self.factory)


@dataclass(frozen=True)
class RunLength:
    """How long the run is, as far as the Trainer knows before it starts."""

    total_steps: float  # optimizer steps: trainer.estimated_stepping_batches (inf: unbounded)
    steps_per_epoch: float | None  # optimizer steps per epoch, when known

    @property
    def total_epochs(self) -> int | None:
        if self.steps_per_epoch and math.isfinite(self.total_steps):
            return math.ceil(self.total_steps / self.steps_per_epoch - 1e-9)
        return None


SCHEDULERS: Registry[SchedulerInfo] = Registry("schedulers", SchedulerInfo)


# -- factories for the entries whose torch class needs adapting ------------------------------
def constant(optimizer: Optimizer) -> sched.LRScheduler:
    """The lr stays where the optimizer put it (a scheduler object all the same, so the rest
    of the code has one path and a checkpoint always has a scheduler state)."""
    return sched.ConstantLR(optimizer, factor=1.0, total_iters=0)


def cosine(optimizer: Optimizer, *, total_steps: int, eta_min: float = 0.0) -> sched.LRScheduler:
    """Cosine annealing from the initial lr to ``eta_min`` over the whole run, per step."""
    return sched.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=eta_min)


def _initial_lrs(optimizer: Optimizer) -> list[float]:
    return [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]


def cyclic(
    optimizer: Optimizer,
    *,
    total_steps: int,
    base_lr: float | None = None,
    step_size_up: int | None = None,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    gamma: float = 1.0,
) -> sched.LRScheduler:
    """Cyclical lr (Smith 2017) between ``base_lr`` and the configured lr (the peak).

    Defaults: ``base_lr`` = lr/10, ``step_size_up`` = 1/8 of the run (four full cycles).
    Momentum is not cycled, so it works with every optimizer.
    """
    peaks = _initial_lrs(optimizer)
    return sched.CyclicLR(
        optimizer,
        base_lr=[p / 10 for p in peaks] if base_lr is None else base_lr,
        max_lr=peaks,
        step_size_up=step_size_up or max(1, total_steps // 8),
        mode=mode,
        gamma=gamma,
        cycle_momentum=False,
    )


def onecycle(
    optimizer: Optimizer,
    *,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    cycle_momentum: bool | None = None,
) -> sched.LRScheduler:
    """The 1cycle policy (Smith & Topin 2018) peaking at the configured lr.

    ``cycle_momentum=None`` cycles momentum (or Adam's β1) when the optimizer has one.
    """
    if cycle_momentum is None:
        defaults = optimizer.defaults
        cycle_momentum = bool(defaults.get("momentum")) or "betas" in defaults
    return sched.OneCycleLR(
        optimizer, max_lr=_initial_lrs(optimizer), total_steps=total_steps,
        pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor,
        anneal_strategy=anneal_strategy, cycle_momentum=cycle_momentum,
    )


for entry in [
    SchedulerInfo(name="constant", factory=constant, aliases=("none",),
                  description="keep the initial lr"),
    SchedulerInfo(name="step", factory=sched.StepLR, defaults={"step_size": 10, "gamma": 0.1},
                  description="multiply the lr by gamma every step_size epochs"),
    SchedulerInfo(name="multistep", factory=sched.MultiStepLR, defaults={"gamma": 0.1},
                  description="multiply the lr by gamma at each epoch in milestones"),
    SchedulerInfo(name="exponential", factory=sched.ExponentialLR, defaults={"gamma": 0.9},
                  description="multiply the lr by gamma every epoch"),
    SchedulerInfo(name="cosine", factory=cosine, interval="step", needs_total_steps=True,
                  description="cosine annealing to eta_min over all training steps"),
    SchedulerInfo(name="cosine_restarts", factory=sched.CosineAnnealingWarmRestarts,
                  defaults={"T_0": 10}, aliases=("sgdr",),
                  description="cosine annealing restarted every T_0 (·T_mult) epochs (SGDR)"),
    SchedulerInfo(name="cyclic", factory=cyclic, interval="step", needs_total_steps=True,
                  description="triangular / triangular2 / exp_range cycles between lr/10 and lr"),
    SchedulerInfo(name="onecycle", factory=onecycle, interval="step", needs_total_steps=True,
                  aliases=("one_cycle",), own_warmup=True,
                  description="1cycle: warm up to lr, then anneal far below it, over the run"),
    SchedulerInfo(name="plateau", factory=sched.ReduceLROnPlateau, needs_monitor=True,
                  aliases=("reduce_on_plateau",),
                  description="multiply the lr by factor when the monitored metric stops improving"),
    SchedulerInfo(name="inverse_time", factory=InverseTimeLR,
                  description="lr / (1 + decay_rate·epoch/decay_epochs), optionally staircase"),
    SchedulerInfo(name="polynomial", factory=PolynomialDecayLR, interval="step",
                  description="lr · (1 + step)^(-power), the stochastic-approximation decay"),
]:
    SCHEDULERS.register(entry)

# Metrics the task logs once per epoch, and so the only ones a scheduler can monitor.
EPOCH_METRICS = ("val_loss", "val_acc", "train_loss", "train_acc")


def monitor_mode(monitor: str) -> Literal["min", "max"]:
    """Accuracy improves upwards, losses downwards."""
    return "max" if monitor.endswith("acc") else "min"


def _split_kwargs(info: SchedulerInfo, kwargs: Mapping[str, Any]):
    """(scheduler kwargs, monitor or None, warmup kwargs)."""
    kwargs = dict(kwargs)
    warmup = {k: kwargs.pop(k) for k in WARMUP_KEYS if k in kwargs}
    monitor = kwargs.pop("monitor", "val_loss") if info.needs_monitor else None
    return kwargs, monitor, warmup


def check_scheduler_args(name: str, kwargs: Mapping[str, Any]) -> tuple[SchedulerInfo, str | None]:
    """Validate a scheduler choice before training; returns the entry and its monitor."""
    info = SCHEDULERS.get(name)
    own, monitor, warmup = _split_kwargs(info, kwargs)
    if monitor is not None and monitor not in EPOCH_METRICS:
        raise ConfigError(
            f"scheduler {info.name!r} monitors {monitor!r}, which is never logged; "
            f"use one of: {', '.join(EPOCH_METRICS)}"
        )
    factory = info.resolve()
    check_kwargs(own, factory, what=f"scheduler {info.name!r}", exclude=_FILLED_IN)
    missing = [
        k for k, default in accepted_kwargs(factory, exclude=_FILLED_IN).items()
        if default is inspect.Parameter.empty and k not in own and k not in info.defaults
    ]
    if missing:
        raise ConfigError(
            f"scheduler {info.name!r} needs {', '.join(repr(k) for k in missing)} in scheduler_kwargs"
        )
    _check_warmup(info, warmup)
    return info, monitor


def _check_warmup(info: SchedulerInfo, warmup: Mapping[str, Any]) -> None:
    if warmup and info.own_warmup:
        raise ConfigError(
            f"scheduler {info.name!r} has its own warmup (pct_start); remove "
            f"{', '.join(sorted(warmup))}"
        )
    if "warmup_steps" in warmup and "warmup_epochs" in warmup:
        raise ConfigError("give warmup_steps or warmup_epochs, not both")
    for key in ("warmup_steps", "warmup_epochs"):
        if warmup.get(key) is not None:
            check_count(key, warmup[key])
    start = warmup.get("warmup_start_factor", 1e-3)
    if not isinstance(start, (int, float)) or not 0 < start <= 1:
        raise ConfigError(f"warmup_start_factor must be in (0, 1], got {start!r}")
    if "warmup_start_factor" in warmup and len(warmup) == 1:
        raise ConfigError("warmup_start_factor needs warmup_steps or warmup_epochs")
    if "warmup_steps" in warmup and info.interval == "epoch" and not info.needs_monitor:
        raise ConfigError(
            f"scheduler {info.name!r} steps once per epoch; give warmup_epochs instead of warmup_steps"
        )


def _warmup_length(info: SchedulerInfo, warmup: Mapping[str, Any], run: RunLength) -> int:
    """Warmup length in the main scheduler's interval (or in steps for plateau)."""
    if "warmup_steps" in warmup:
        return warmup["warmup_steps"]
    epochs = warmup["warmup_epochs"]
    if info.interval == "epoch" and not info.needs_monitor:
        return epochs
    if run.steps_per_epoch is None:
        raise ConfigError("warmup_epochs needs a known epoch length; give warmup_steps")
    return max(1, round(epochs * run.steps_per_epoch))


def build_scheduler_config(
    name: str,
    optimizer: Optimizer,
    kwargs: Mapping[str, Any],
    *,
    run: RunLength,
    val_every_n_epochs: int | None,
) -> list[dict[str, Any]]:
    """Lightning ``lr_scheduler`` configs for the scheduler registered as ``name``.

    One config, or two for plateau with a warmup (a per-step LinearLR and the plateau: both
    multiply the lr, so they compose; torch's SequentialLR cannot drive a plateau scheduler).

    Args:
        run: the run's length, for schedules over the whole run and for warmups.
        val_every_n_epochs: how often validation runs, or None if it never does.
    """
    info, monitor = check_scheduler_args(name, kwargs)
    own, _, warmup = _split_kwargs(info, kwargs)
    call_kwargs = {**info.defaults, **own}
    frequency = 1
    length = (run.total_steps if info.interval == "step" else run.total_epochs) or math.inf
    warm = _warmup_length(info, warmup, run) if warmup else 0
    if warm:
        limit = run.total_steps if (info.interval == "step" or info.needs_monitor) else length
        unit = "steps" if (info.interval == "step" or info.needs_monitor) else "epochs"
        if warm >= limit:
            raise ConfigError(
                f"warmup of {warm} {unit} is not shorter than training ({limit:g} {unit}); "
                "shorten the warmup or train longer"
            )
    if info.needs_total_steps:
        if not math.isfinite(length):
            raise ConfigError(
                f"scheduler {info.name!r} needs a finite run: set trainer.max_epochs or "
                "trainer.max_steps"
            )
        call_kwargs["total_steps"] = max(1, int(length) - warm)
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
    # The ramp is built first: schedulers record each group's starting lr as 'initial_lr'
    # only if it is not set yet, so the main schedule keeps the configured lr as its base.
    start = warmup.get("warmup_start_factor", 1e-3)
    ramp = sched.LinearLR(optimizer, start_factor=start, total_iters=warm) if warm else None
    main = info.resolve()(optimizer, **call_kwargs)
    if monitor is not None:
        configs = [{"scheduler": main, "interval": info.interval, "frequency": frequency,
                    "monitor": monitor, "strict": True}]
        if ramp is not None:
            configs.insert(0, {"scheduler": ramp, "interval": "step", "frequency": 1})
        return configs
    if ramp is not None:
        main = sched.SequentialLR(optimizer, [ramp, main], milestones=[warm])
    return [{"scheduler": main, "interval": info.interval, "frequency": frequency}]

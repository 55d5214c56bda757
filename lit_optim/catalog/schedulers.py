"""Learning-rate schedulers by name, with an optional linear warmup in front of any of them.

Entries carry what Lightning's ``lr_scheduler`` config needs, so it cannot be wired wrong:
``interval`` (per optimizer step or per epoch), whether the scheduler reads a monitored metric
(plateau), and whether it needs the total number of optimizer steps (which
``lit_optim.create_scheduler`` reads off the Trainer, see ``trainer_info.run_length``).

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

from lit_optim.catalog.checks import check_count, check_non_negative, check_number
from lit_optim.catalog.errors import ConfigError, DirectionError
from lit_optim.catalog.extra_schedules import InverseTimeLR, PolynomialDecayLR
from lit_optim.catalog.kwargs import accepted_kwargs, check_kwargs
from lit_optim.catalog.objective import (
    Direction,
    LoggedDirections,
    resolve_objective,
)
from lit_optim.catalog.registry import Registry, RegistryEntry, did_you_mean, import_object
from lit_optim.catalog.trainer_info import RunLength

__all__ = [
    "LR_LOGGED_AS",
    "SCHEDULERS",
    "SchedulerInfo",
    "check_scheduler_args",
    "scheduler_config",
]

# Filled in by lit-optim, never by the user.
_FILLED_IN = ("optimizer", "total_steps", "last_epoch", "verbose")
WARMUP_KEYS = ("warmup_steps", "warmup_epochs", "warmup_start_factor")
# The scheduler config's name: what Lightning's LearningRateMonitor logs the lr under, ``lr``
# for an optimizer with one param group, ``lr/pg1``, ``lr/pg2`` … for one with several.
LR_LOGGED_AS = "lr"


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
        value_checks: ``{kwarg: check(name, value)}`` for values torch accepts but that make
            no schedule (``step`` with ``gamma: -1`` would train on a negative lr); each
            raises ConfigError.
    """

    factory: Callable[..., Any] | str
    interval: Literal["step", "epoch"] = "epoch"
    needs_monitor: bool = False
    needs_total_steps: bool = False
    own_warmup: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    value_checks: Mapping[str, Callable[[str, Any], Any]] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Any]:
        return import_object(self.factory)


SCHEDULERS: Registry[SchedulerInfo] = Registry("schedulers", SchedulerInfo)


# -- value checks torch's schedulers leave out ------------------------------------------------
def _positive(name: str, value: Any) -> float:
    return check_number(name, value, low=0, low_open=True)


def _unit_open(name: str, value: Any) -> float:
    return check_number(name, value, low=0, high=1, low_open=True, high_open=True)


def _choice(*choices: str) -> Callable[[str, Any], str]:
    """A check that ``value`` is one of ``choices``, with the close ones named."""

    def check(name: str, value: Any) -> str:
        if value not in choices:
            hint = did_you_mean(str(value), choices, cutoff=0.5)
            raise ConfigError(
                f"{name} must be one of {', '.join(choices)}, got {value!r}"
                f"{'; ' + hint if hint else ''}"
            )
        return value

    return check


def _milestones(name: str, value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name} must be a list of epochs such as [30, 60], got {value!r}")
    for epoch in value:
        check_count(f"each of {name}", epoch)
    if list(value) != sorted(set(value)):
        raise ConfigError(f"{name} must be increasing epochs such as [30, 60], got {value!r}")
    return list(value)


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
        optimizer,
        max_lr=_initial_lrs(optimizer),
        total_steps=total_steps,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        anneal_strategy=anneal_strategy,
        cycle_momentum=cycle_momentum,
    )


for entry in [
    SchedulerInfo(
        name="constant", factory=constant, aliases=("none",), description="keep the initial lr"
    ),
    SchedulerInfo(
        name="step",
        factory=sched.StepLR,
        defaults={"step_size": 10, "gamma": 0.1},
        value_checks={"step_size": check_count, "gamma": _positive},
        description="multiply the lr by gamma every step_size epochs",
    ),
    SchedulerInfo(
        name="multistep",
        factory=sched.MultiStepLR,
        defaults={"gamma": 0.1},
        value_checks={"milestones": _milestones, "gamma": _positive},
        description="multiply the lr by gamma at each epoch in milestones",
    ),
    SchedulerInfo(
        name="exponential",
        factory=sched.ExponentialLR,
        defaults={"gamma": 0.9},
        value_checks={"gamma": _positive},
        description="multiply the lr by gamma every epoch",
    ),
    SchedulerInfo(
        name="cosine",
        factory=cosine,
        interval="step",
        needs_total_steps=True,
        value_checks={"eta_min": check_non_negative},
        description="cosine annealing to eta_min over all training steps",
    ),
    SchedulerInfo(
        name="cosine_restarts",
        factory=sched.CosineAnnealingWarmRestarts,
        defaults={"T_0": 10},
        aliases=("sgdr",),
        value_checks={"T_0": check_count, "T_mult": check_count, "eta_min": check_non_negative},
        description="cosine annealing restarted every T_0 (·T_mult) epochs (SGDR)",
    ),
    SchedulerInfo(
        name="cyclic",
        factory=cyclic,
        interval="step",
        needs_total_steps=True,
        value_checks={
            "base_lr": check_non_negative,
            "step_size_up": check_count,
            "mode": _choice("triangular", "triangular2", "exp_range"),
            "gamma": _positive,
        },
        description="triangular / triangular2 / exp_range cycles between lr/10 and lr",
    ),
    SchedulerInfo(
        name="onecycle",
        factory=onecycle,
        interval="step",
        needs_total_steps=True,
        aliases=("one_cycle",),
        own_warmup=True,
        value_checks={
            "pct_start": _unit_open,
            "div_factor": _positive,
            "final_div_factor": _positive,
            "anneal_strategy": _choice("cos", "linear"),
        },
        description="1cycle: warm up to lr, then anneal far below it, over the run",
    ),
    SchedulerInfo(
        name="plateau",
        factory=sched.ReduceLROnPlateau,
        needs_monitor=True,
        value_checks={
            "patience": check_non_negative,
            "threshold": check_non_negative,
            "cooldown": check_non_negative,
            "eps": check_non_negative,
            "factor": _unit_open,
            "mode": _choice("min", "max"),
            "threshold_mode": _choice("rel", "abs"),
        },
        aliases=("reduce_on_plateau",),
        description="multiply the lr by factor when the monitored metric stops improving",
    ),
    SchedulerInfo(
        name="inverse_time",
        factory=InverseTimeLR,
        description="lr / (1 + decay_rate·epoch/decay_epochs), optionally staircase",
    ),
    SchedulerInfo(
        name="polynomial",
        factory=PolynomialDecayLR,
        interval="step",
        description="lr · (1 + step)^(-power), the stochastic-approximation decay",
    ),
]:
    SCHEDULERS.register(entry)


def _split_kwargs(info: SchedulerInfo, kwargs: Mapping[str, Any], monitor: str | None = None):
    """(scheduler kwargs, monitor or None, warmup kwargs)."""
    kwargs = dict(kwargs)
    warmup = {k: kwargs.pop(k) for k in WARMUP_KEYS if k in kwargs}
    # A monitor passed as an argument means "if this schedule reads a metric, read this one",
    # so one configure_optimizers serves every scheduler name; in kwargs it belongs to plateau.
    monitor = (kwargs.pop("monitor", monitor) or "val_loss") if info.needs_monitor else None
    return kwargs, monitor, warmup


def check_scheduler_args(
    name: str, kwargs: Mapping[str, Any], *, monitor: str | None = None
) -> tuple[SchedulerInfo, str | None]:
    """Validate a scheduler choice before training; returns the entry and its monitor.

    Names, kwargs and values are checked: the schedule is built once on a throwaway optimizer,
    so a value torch rejects (cyclic ``mode: triangle``) is a ConfigError naming the scheduler
    now, not a traceback when training starts. Any monitor name is accepted here: whether it is
    logged is known only when Lightning first steps the scheduler (it then lists the metrics
    that are).
    """
    info = SCHEDULERS.get(name)
    own, monitor, warmup = _split_kwargs(info, kwargs, monitor)
    if monitor is not None and (not isinstance(monitor, str) or not monitor):
        raise ConfigError(
            f"scheduler {info.name!r}: monitor must be a metric name, got {monitor!r}"
        )
    factory = info.resolve()
    check_kwargs(own, factory, what=f"scheduler {info.name!r}", exclude=_FILLED_IN)
    missing = [
        k
        for k, default in accepted_kwargs(factory, exclude=_FILLED_IN).items()
        if default is inspect.Parameter.empty and k not in own and k not in info.defaults
    ]
    if missing:
        raise ConfigError(
            f"scheduler {info.name!r} needs {', '.join(repr(k) for k in missing)} "
            "in scheduler_kwargs"
        )
    _check_warmup(info, warmup)
    for key, check in info.value_checks.items():
        if key in own:
            check(f"scheduler {info.name!r} {key}", own[key])
    _try_build(info, own)
    return info, monitor


def _try_build(info: SchedulerInfo, own: Mapping[str, Any]) -> None:
    """Build the schedule on a throwaway optimizer and turn torch's complaint into ours."""
    import torch

    dummy = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    kwargs = {**info.defaults, **own}
    if info.needs_total_steps:
        kwargs["total_steps"] = 1000
    try:
        info.resolve()(dummy, **kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise ConfigError(f"scheduler {info.name!r} rejects {own!r}: {err}") from None


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
    check_number(
        "warmup_start_factor", warmup.get("warmup_start_factor", 1e-3), low=0, high=1, low_open=True
    )
    if "warmup_start_factor" in warmup and len(warmup) == 1:
        raise ConfigError("warmup_start_factor needs warmup_steps or warmup_epochs")
    if "warmup_steps" in warmup and info.interval == "epoch" and not info.needs_monitor:
        raise ConfigError(
            f"scheduler {info.name!r} steps once per epoch; give warmup_epochs instead of "
            "warmup_steps"
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


def scheduler_config(
    info: SchedulerInfo,
    monitor: str | None,
    optimizer: Optimizer,
    kwargs: Mapping[str, Any],
    *,
    run: RunLength,
    val_every_n_epochs: int | None,
    directions: LoggedDirections | None = None,
) -> dict[str, Any]:
    """The Lightning ``lr_scheduler`` config for an entry and monitor that
    ``check_scheduler_args`` has already returned for these kwargs (so the throwaway build is
    not repeated); ``lit_optim.create_scheduler`` calls it with the run length read off the
    Trainer (``run``) and how often validation runs (``val_every_n_epochs``, None: never).

    ``directions``: what the module's logs say of each metric's direction. Without it, a
    monitored metric needs a given mode or a standard name; with it, the direction may come
    from the Metric logged under that name, and a given mode is checked against that Metric.
    """
    own, _, warmup = _split_kwargs(info, kwargs, monitor)
    call_kwargs = {**info.defaults, **own}
    frequency = 1
    length = (run.total_steps if info.interval == "step" else run.total_epochs) or math.inf
    warm = _warmup_length(info, warmup, run) if warmup else 0
    if warm:
        limit = run.total_steps if (info.interval == "step" or info.needs_monitor) else length
        unit = "steps" if (info.interval == "step" or info.needs_monitor) else "epochs"
        if warm >= limit:
            # Both in the user's words: the key they set, and the run as epochs of steps.
            given = (
                f" (warmup_epochs {warmup['warmup_epochs']})"
                if "warmup_epochs" in warmup and unit == "steps"
                else ""
            )
            epochs = run.total_epochs
            detail = (
                f": {epochs} epoch{'s' if epochs != 1 else ''} of {run.steps_per_epoch:g}"
                if unit == "steps" and epochs and run.steps_per_epoch
                else ""
            )
            raise ConfigError(
                f"warmup of {warm} {unit}{given} is not shorter than training ({limit:g} {unit}"
                f"{detail}); shorten the warmup or train longer"
            )
    if info.needs_total_steps:
        if not math.isfinite(length):
            raise ConfigError(
                f"scheduler {info.name!r} needs a finite run: set trainer.max_epochs or "
                "trainer.max_steps"
            )
        call_kwargs["total_steps"] = max(1, int(length) - warm)
    given_mode = call_kwargs.get("mode")
    if monitor is not None:
        # The mode is what the user gave, else a standard name's; else (when the module's
        # logs can still tell) bound on the metric's first log, by _PlateauMode below.
        objective = resolve_objective(
            monitor,
            given_mode,
            given_as=f"scheduler {info.name!r}: mode",
            required=directions is None,
        )
        call_kwargs["mode"] = objective.direction if objective else "min"
        if val_every_n_epochs is None and monitor.startswith("val"):
            raise ConfigError(
                f"scheduler {info.name!r} monitors {monitor!r} but validation never runs; "
                "enable it (trainer.limit_val_batches > 0) or monitor a training metric"
            )
        # Step only on epochs that validate, or Lightning finds no fresh metric mid-run.
        frequency = val_every_n_epochs or 1
    start = warmup.get("warmup_start_factor", 1e-3)
    if monitor is not None:
        if warm:
            # Plateau steps once per epoch on a metric, so the per-step ramp cannot be a second
            # Lightning scheduler inside one lr_scheduler config: it rides on optimizer.step.
            StepWarmup(optimizer, start_factor=start, total_steps=warm)
        main = info.resolve()(optimizer, **call_kwargs)
        if directions is not None:
            directions.when_logged(monitor, _PlateauMode(main, info.name, monitor, given_mode))
        return {
            "scheduler": main,
            "interval": info.interval,
            "frequency": frequency,
            "monitor": monitor,
            "strict": True,
            "name": LR_LOGGED_AS,
        }
    # The ramp is built first: schedulers record each group's starting lr as 'initial_lr'
    # only if it is not set yet, so the main schedule keeps the configured lr as its base.
    ramp = sched.LinearLR(optimizer, start_factor=start, total_iters=warm) if warm else None
    main = info.resolve()(optimizer, **call_kwargs)
    if ramp is not None:
        main = sched.SequentialLR(optimizer, [ramp, main], milestones=[warm])
    return {
        "scheduler": main,
        "interval": info.interval,
        "frequency": frequency,
        "name": LR_LOGGED_AS,
    }


class _PlateauMode:
    """Binds a plateau's mode when its metric is first logged (before its first step): the
    logged Metric's ``higher_is_better`` where no mode was given, a DirectionError where that
    contradicts the given mode or where neither says. Sets only ReduceLROnPlateau's public
    attributes, and leaves a mode restored from a checkpoint as it is."""

    def __init__(self, scheduler: Any, name: str, monitor: str, given: str | None) -> None:
        self.scheduler, self.name, self.monitor, self.given = scheduler, name, monitor, given

    def __call__(self, logged: Direction | None, described: str) -> None:
        option = f"scheduler {self.name!r}: mode"
        objective = resolve_objective(
            self.monitor,
            self.given,
            logged=logged,
            logged_by=described,
            given_as=option,
            required=False,
        )
        if objective is None:
            raise DirectionError(
                f"scheduler {self.name!r} monitors {described}: give it a mode, min or max: "
                "create_scheduler(..., mode='min') where your module builds its schedule, or "
                "mode in the recipe's model.scheduler_kwargs where the module passes those on; "
                "or log a torchmetrics Metric under that name"
            )
        plateau = self.scheduler
        if plateau.mode != objective.direction:
            unseen = plateau.best == plateau.mode_worse
            plateau.mode = objective.direction
            plateau.mode_worse = math.inf if objective.direction == "min" else -math.inf
            if unseen:
                plateau.best = plateau.mode_worse


class StepWarmup:
    """A linear lr ramp over the first ``total_steps`` optimizer steps, advanced by a
    ``register_step_post_hook`` on the optimizer (torch's public hook), for schedules Lightning
    steps per epoch on a metric.

    The step count lives in each param group (``warmup_step``), so it is saved with the
    optimizer's state dict and a resumed run continues the ramp where it stopped. Like
    ``LinearLR`` it multiplies the current lr by the ratio of consecutive factors, so it composes
    with a plateau cut that happens during the warmup.
    """

    def __init__(self, optimizer: Optimizer, *, start_factor: float, total_steps: int) -> None:
        self.start, self.total = start_factor, total_steps
        for group in optimizer.param_groups:
            if "warmup_step" not in group:
                group["warmup_step"] = 0
                group["lr"] *= start_factor
        self.handle = optimizer.register_step_post_hook(self)

    def factor(self, step: int) -> float:
        return self.start + (1.0 - self.start) * min(step, self.total) / self.total

    def __call__(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        for group in optimizer.param_groups:
            step = group.get("warmup_step", self.total)
            if step < self.total:
                group["lr"] *= self.factor(step + 1) / self.factor(step)
                group["warmup_step"] = step + 1

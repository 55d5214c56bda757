"""The objective: a metric name and its direction (min / max), declared, never guessed.

Everything that ranks (a checkpoint's best, early stopping, the run summary, plateau's mode,
the study's direction, the pruner, compare, reports) asks here. Where a direction comes from,
in order:

1. what the user wrote (a recipe's ``objective.direction``, a scheduler's ``mode``, a search
   space's ``direction``, ``--direction``);
2. the torchmetrics ``Metric`` the module logs under that name: its class declares
   ``higher_is_better`` (read by duck typing: the catalog imports no torchmetrics);
3. a short table of exact standard names (``val_loss``, ``val_acc`` …).

Nothing else: a name containing "acc" is not evidence (a user's ``valid/top1`` has none), so a
metric with no known direction is a ``DirectionError`` that says how to declare it, and a
declared direction that contradicts the logged Metric is one too.

Which Metric a name is logged with is only known when the module logs it, so
``logged_directions(module)`` watches the module's ``self.log`` (and ``log_dict``, which calls
it) and hands each name's direction to whoever waits for it (``when_logged``): plateau and the
checkpoint bind their mode on the first log, before they ever compare two values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lit_optim.catalog.errors import ConfigError, DirectionError

__all__ = [
    "DIRECTION_WORDS",
    "STANDARD_DIRECTIONS",
    "Direction",
    "LoggedDirections",
    "Objective",
    "check_direction",
    "logged_directions",
    "metric_direction",
    "parse_direction",
    "resolve_objective",
]

Direction = Literal["min", "max"]


def _conventional_names() -> dict[str, Direction]:
    """Exact names only, each with one meaning: a loss or an accuracy of a stage, as
    lit-optim's task and Lightning's docs and templates spell them (``val_loss``,
    ``val/loss``, ``valid_acc``, ``validation/accuracy`` …), with the ``_step`` / ``_epoch``
    that ``self.log(..., on_step=True, on_epoch=True)`` appends, and Lightning's plain "loss".
    Never a substring: ``valid/top1`` or ``val_error`` are not in it."""
    table: dict[str, Direction] = {"loss": "min"}
    for stage in ("train", "val", "valid", "validation", "test"):
        for sep in ("_", "/"):
            names: tuple[tuple[str, Direction], ...] = (
                ("loss", "min"),
                ("acc", "max"),
                ("accuracy", "max"),
            )
            for name, direction in names:
                for suffix in ("", "_step", "_epoch"):
                    table[f"{stage}{sep}{name}{suffix}"] = direction
    return table


STANDARD_DIRECTIONS: Mapping[str, Direction] = _conventional_names()

_SPELLINGS: Mapping[str, Direction] = {
    "min": "min",
    "minimize": "min",
    "max": "max",
    "maximize": "max",
}
DIRECTION_WORDS: tuple[str, ...] = tuple(_SPELLINGS)  # what a --direction option accepts

HOW_TO_DECLARE = (
    "declare it where you name the metric (a recipe's objective.direction, a "
    "search space's direction:, a scheduler's mode, --direction), or log a "
    "torchmetrics Metric under that name (its class says higher_is_better)"
)


def parse_direction(value: Any, option: str = "direction") -> Direction:
    """``min``/``max`` (also ``minimize``/``maximize``, Optuna's words) as ``min``/``max``."""
    if isinstance(value, str) and value.lower() in _SPELLINGS:
        return _SPELLINGS[value.lower()]
    raise DirectionError(f"{option} must be min or max (or minimize / maximize), got {value!r}")


def metric_direction(value: Any) -> Direction | None:
    """The direction a logged value declares: a torchmetrics Metric's ``higher_is_better``
    (None for a plain tensor or number, and for a Metric that leaves it unset)."""
    higher = getattr(value, "higher_is_better", None)
    if not isinstance(higher, bool) or not callable(getattr(value, "compute", None)):
        return None
    return "max" if higher else "min"


@dataclass(frozen=True)
class Objective:
    """A metric and its direction, with where the direction came from (for messages)."""

    metric: str
    direction: Direction
    source: str

    @property
    def study_direction(self) -> Literal["minimize", "maximize"]:
        return "maximize" if self.direction == "max" else "minimize"

    def best(self, values: list[tuple[float, Any]]) -> tuple[float, Any]:
        """The best (value, tag) pair of ``values``."""
        return (max if self.direction == "max" else min)(values, key=lambda pair: pair[0])


def check_direction(
    metric: str, given: Direction, declared: Direction | None, *, given_as: str, declared_by: str
) -> None:
    if declared is not None and declared != given:
        raise DirectionError(
            f"{given_as} says {given} for {metric!r}, but {declared_by} says "
            f"{'higher' if declared == 'max' else 'lower'} is better; fix {given_as} "
            "(or log another metric)"
        )


def resolve_objective(
    metric: str,
    given: Any = None,
    *,
    logged: Direction | None = None,
    logged_by: str = "the Metric it is logged with",
    given_as: str = "direction",
    required: bool = True,
) -> Objective | None:
    """The objective for ``metric``: ``given`` (checked against ``logged``), else ``logged``,
    else the standard table. Unknown: a DirectionError, or None when not ``required``."""
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"the metric must be a non-empty name, got {metric!r}")
    if given is not None:
        direction = parse_direction(given, given_as)
        check_direction(metric, direction, logged, given_as=given_as, declared_by=logged_by)
        return Objective(metric, direction, given_as)
    if logged is not None:
        return Objective(metric, logged, logged_by)
    if metric in STANDARD_DIRECTIONS:
        return Objective(metric, STANDARD_DIRECTIONS[metric], "standard name")
    if not required:
        return None
    raise DirectionError(
        f"the direction of metric {metric!r} is not known (lower or higher "
        f"is better?); {HOW_TO_DECLARE}"
    )


class LoggedDirections:
    """The direction of each name a module has logged, as the logged value declares it."""

    def __init__(self) -> None:
        self.seen: dict[str, Direction | None] = {}
        self.kinds: dict[str, str] = {}
        self._waiting: dict[str, list[Callable[[Direction | None, str], None]]] = {}

    def record(self, name: str, value: Any) -> None:
        if name in self.seen:
            return
        direction = metric_direction(value)
        self.seen[name] = direction
        self.kinds[name] = type(value).__name__
        for callback in self._waiting.pop(name, ()):
            callback(direction, self.describe(name))

    def describe(self, name: str) -> str:
        kind = self.kinds.get(name, "value")
        if self.seen.get(name) is None:
            return f"{name!r} (logged as a {kind}, which declares no direction)"
        return f"{kind}.higher_is_better"

    def when_logged(self, name: str, callback: Callable[[Direction | None, str], None]) -> None:
        """Call ``callback(direction or None, description)`` when ``name`` is first logged
        (at once if it was)."""
        if name in self.seen:
            callback(self.seen[name], self.describe(name))
        else:
            self._waiting.setdefault(name, []).append(callback)


class _WatchedLog:
    """Stands in for ``module.log`` on one instance: records, then calls what ``log`` was
    before (an instance's own replacement, else the class's method, a user's override
    included). Holds the module, not a bound method, so the module still pickles (ddp_spawn)
    and deep-copies."""

    def __init__(self, module: Any, directions: LoggedDirections, inner: Any = None) -> None:
        self.module, self.directions, self.inner = module, directions, inner

    def __call__(self, name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        self.directions.record(name, value)
        if self.inner is not None:
            return self.inner(name, value, *args, **kwargs)
        return type(self.module).log(self.module, name, value, *args, **kwargs)


def logged_directions(module: Any) -> LoggedDirections:
    """The module's ``LoggedDirections``, watching its ``self.log`` from now on (once per
    instance; ``log_dict`` calls ``self.log``, so it is watched too)."""
    watched = module.__dict__.get("log")
    if isinstance(watched, _WatchedLog):
        return watched.directions
    directions = LoggedDirections()
    # An instance attribute shadows the class's method for this one module only.
    object.__setattr__(module, "log", _WatchedLog(module, directions, watched))
    return directions

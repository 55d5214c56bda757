"""``ObjectiveCheck``: every callback that ranks a metric ranks it the declared way."""

from __future__ import annotations

import math
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from typing_extensions import override

from lit_optim.callbacks.step_dispatch import skip_unused_batch_hooks
from lit_optim.catalog.errors import DirectionError
from lit_optim.catalog.objective import Direction, logged_directions, resolve_objective

__all__ = ["ObjectiveCheck"]


class ObjectiveCheck(Callback):
    """Checks each ``ModelCheckpoint`` and ``EarlyStopping`` against the direction of the
    metric it monitors, when that metric is first logged (the sanity check's validation, so
    before any training step): a ``mode`` that contradicts the run's objective or the
    torchmetrics Metric logged under that name (``higher_is_better``) is a DirectionError that
    names the callback. Lightning's default ``mode="min"`` on a user's accuracy is exactly the
    silent wrong result this catches.

    ``objective``/``direction``: the run's objective (a recipe's ``objective:``); without a
    direction it must come from the logged Metric or be a standard name. ``bind``: callbacks
    built for this objective before its direction was known (the CLI's default checkpoint):
    they take the resolved direction instead of being checked.

    Hook: ``setup``, where the module is known and nothing has been logged yet.
    """

    def __init__(
        self,
        objective: str | None = None,
        direction: str | None = None,
        *,
        bind: tuple[Callback, ...] = (),
    ) -> None:
        self.objective = objective
        self.direction = direction
        self.bind = tuple(bind)
        if objective is not None:  # a bad direction fails now, before anything is built
            resolve_objective(objective, direction, given_as="objective.direction", required=False)
        skip_unused_batch_hooks(self)

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        directions = logged_directions(pl_module)
        if self.objective is not None:
            directions.when_logged(self.objective, self._objective_logged)
        for callback in trainer.callbacks:  # type: ignore[attr-defined]  # set by its connector
            monitor = getattr(callback, "monitor", None)
            if (
                isinstance(callback, (ModelCheckpoint, EarlyStopping))
                and monitor
                and callback not in self.bind
            ):
                directions.when_logged(
                    monitor, _ModeCheck(callback, self.objective, self.direction)
                )

    def _objective_logged(self, logged: Direction | None, described: str) -> None:
        assert self.objective is not None  # what setup watches for
        objective = resolve_objective(
            self.objective,
            self.direction,
            logged=logged,
            logged_by=described,
            given_as="objective.direction",
            required=False,
        )
        if objective is None:
            raise DirectionError(
                f"the objective {described}: set objective.direction (min or max) in the "
                "recipe or on the command line, or log a torchmetrics Metric under that name"
            )
        for callback in self.bind:
            _set_mode(callback, objective.direction)


class _ModeCheck:
    def __init__(
        self,
        callback: ModelCheckpoint | EarlyStopping,
        objective: str | None,
        direction: str | None,
    ) -> None:
        self.callback, self.objective, self.direction = callback, objective, direction

    def __call__(self, logged: Direction | None, described: str) -> None:
        callback = self.callback
        monitor = cast(str, callback.monitor)  # a callback is watched for its monitor's name
        name = f"{type(callback).__name__}(monitor={monitor!r})"
        resolve_objective(
            monitor,
            callback.mode,
            logged=logged,
            logged_by=described,
            given_as=f"{name}'s mode",
            required=False,
        )
        if monitor == self.objective and self.direction is not None:
            run = resolve_objective(monitor, self.direction)
            assert run is not None  # a given direction is one, or an error
            resolve_objective(
                monitor,
                callback.mode,
                logged=run.direction,
                logged_by="the run's objective.direction",
                given_as=f"{name}'s mode",
            )


def _set_mode(callback: Any, direction: Direction) -> None:
    """Point a ModelCheckpoint built before its direction was known the right way, through the
    attributes its own ``__init__`` sets from ``mode`` (nothing compared yet)."""
    if callback.mode == direction:
        return
    if isinstance(callback, ModelCheckpoint):
        callback.mode = direction
        callback.kth_value = torch.tensor(math.inf if direction == "min" else -math.inf)
    else:
        raise TypeError(f"cannot bind the mode of {type(callback).__name__}")

"""``RunSummary``: the final and best value of each epoch metric, for the closing lines of a fit."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_optim.callbacks._epochs import AfterEachEpoch, lr_monitor_names
from lit_optim.callbacks.divergence import LossHistory
from lit_optim.callbacks.step_dispatch import skip_unused_batch_hooks
from lit_optim.catalog.objective import (
    LoggedDirections,
    Objective,
    logged_directions,
    resolve_objective,
)

__all__ = ["RunSummary"]


class RunSummary(AfterEachEpoch, Callback):
    """Records every epoch-level metric after each training epoch (validation included) and
    writes the closing summary: final and best value with their epochs.

    Which metrics: the module's ``EPOCH_METRICS`` when it declares them (ClassificationTask
    does), else every logged value that is not a per-step one (``*_step``, ``lr``, what a
    LearningRateMonitor logs).

    Best is ranked by the metric's declared direction (``lit_optim.catalog.objective``): the
    run's objective (``objective``/``direction``), else the torchmetrics Metric the module logs
    under that name, else a standard name's. A metric with no known direction shows its lowest
    and highest values instead of a guessed best.
    """

    def __init__(self, objective: str | None = None, direction: str | None = None) -> None:
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.objective = objective
        # Checked now: a bad direction is a configuration error, before anything trains.
        self._given = (
            resolve_objective(objective, direction, given_as="objective.direction", required=False)
            if objective
            else None
        )
        self._directions: LoggedDirections | None = None
        self.loss = LossHistory()  # the loss training_step returns: did the run end diverged
        skip_unused_batch_hooks(self)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._directions = logged_directions(pl_module)

    def direction_of(self, name: str) -> Objective | None:
        """How ``name`` ranks, as far as anything declares it (None: unknown)."""
        given = self._given if self._given is not None and name == self.objective else None
        logged = self._directions.seen.get(name) if self._directions else None
        described = self._directions.describe(name) if self._directions else ""
        return resolve_objective(
            name,
            given.direction if given else None,
            logged=logged,
            logged_by=described,
            given_as="objective.direction",
            required=False,
        )

    def _names(self, trainer: L.Trainer) -> list[str]:
        declared = getattr(trainer.lightning_module, "EPOCH_METRICS", None)
        names = [str(k) for k in trainer.callback_metrics]
        if declared:
            return [n for n in declared if n in names]
        per_step = lr_monitor_names(trainer)
        return [n for n in names if not n.endswith("_step") and n != "lr" and n not in per_step]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.loss.add(outputs)

    def after_epoch(self, trainer: L.Trainer, epoch: int) -> None:
        self.loss.end_epoch()
        for name in self._names(trainer):
            value = trainer.callback_metrics[name]
            if getattr(value, "numel", lambda: 1)() == 1:
                self.history.setdefault(name, []).append((epoch, float(value)))

    def nonfinite_finals(self) -> list[str]:
        return [
            f"{name}={values[-1][1]}"
            for name, values in self.history.items()
            if values and not math.isfinite(values[-1][1])
        ]

    def lines(self) -> list[str]:
        width = max((len(n) for n in self.history), default=0)
        out = []
        for name, values in self.history.items():
            epoch, final = values[-1]
            finite = [(v, e) for e, v in values if math.isfinite(v)]
            text = f"  {name:<{width}}  final {_fmt(final)} (epoch {epoch})"
            objective = self.direction_of(name)
            if finite and objective is not None:
                best, at = objective.best(finite)
                text += f"   best {_fmt(best)} (epoch {at})"
                if name == self.objective:
                    text += f"   objective, {objective.direction}"
            elif finite:  # no declared direction: both ends, no guess
                (low, at_low), (high, at_high) = min(finite), max(finite)
                text += (
                    f"   lowest {_fmt(low)} (epoch {at_low}), "
                    f"highest {_fmt(high)} (epoch {at_high})"
                )
            out.append(text)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "loss": self.loss.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: [tuple(x) for x in v] for k, v in state_dict.get("history", {}).items()}
        self.loss.load_state_dict(state_dict.get("loss", {}))


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)

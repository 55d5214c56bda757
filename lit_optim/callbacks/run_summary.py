"""``RunSummary``: the final and best value of each epoch metric, for the closing lines of a fit."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_optim.callbacks._epochs import AfterEachEpoch
from lit_optim.catalog.schedulers import monitor_mode


class RunSummary(AfterEachEpoch, Callback):
    """Records every epoch-level metric after each training epoch (validation included) and
    writes the closing summary: final and best value with their epochs.

    Which metrics: the module's ``EPOCH_METRICS`` when it declares them (ClassificationTask
    does), else every logged value that is not a per-step one (``*_step``, ``lr``). Best is the
    highest for accuracy-like names and the lowest for the rest, as plateau guesses its mode.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[int, float]]] = {}

    def _names(self, trainer: L.Trainer) -> list[str]:
        declared = getattr(trainer.lightning_module, "EPOCH_METRICS", None)
        names = [str(k) for k in trainer.callback_metrics]
        if declared:
            return [n for n in declared if n in names]
        return [n for n in names if not n.endswith("_step") and n != "lr"
                and not n.startswith("lr-")]

    def after_epoch(self, trainer: L.Trainer, epoch: int) -> None:
        for name in self._names(trainer):
            value = trainer.callback_metrics[name]
            if getattr(value, "numel", lambda: 1)() == 1:
                self.history.setdefault(name, []).append((epoch, float(value)))

    def nonfinite_finals(self) -> list[str]:
        return [f"{name}={values[-1][1]}" for name, values in self.history.items()
                if values and not math.isfinite(values[-1][1])]

    def lines(self) -> list[str]:
        width = max((len(n) for n in self.history), default=0)
        out = []
        for name, values in self.history.items():
            epoch, final = values[-1]
            finite = [(v, e) for e, v in values if math.isfinite(v)]
            text = f"  {name:<{width}}  final {_fmt(final)} (epoch {epoch})"
            if finite:
                pick = max if monitor_mode(name) == "max" else min
                best, at = pick(finite, key=lambda ve: ve[0])
                text += f"   best {_fmt(best)} (epoch {at})"
            out.append(text)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: [tuple(x) for x in v] for k, v in state_dict.get("history", {}).items()}


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)

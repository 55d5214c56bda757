"""What the ``lit-optim`` CLI checks in and adds to the Trainer a recipe describes.

Checks: values Lightning accepts but cannot train with (``accumulate_grad_batches: 0`` is a
ZeroDivisionError later, ``gradient_clip_val: -1`` flips every gradient) are one ConfigError
before anything is built. Additions, each only when the recipe brings none of its kind:
a ``FiniteModelCheckpoint`` that also keeps ``last.ckpt`` (so a killed run resumes where it
stopped), a checkpoint writer whose temp files sit beside the checkpoint, one progress line
per epoch when stdout is not a terminal, the ``RunSummary`` behind the closing lines, and
where there is a logger Lightning's ``LearningRateMonitor`` (every param group's lr).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.plugins.io import CheckpointIO

from lit_optim.callbacks.epoch_lines import EpochLines
from lit_optim.callbacks.finite_checkpoint import FiniteModelCheckpoint
from lit_optim.callbacks.gradient_clipper import GradientClipper
from lit_optim.callbacks.objective_check import ObjectiveCheck
from lit_optim.callbacks.plateau_resume import PlateauResume
from lit_optim.callbacks.run_summary import RunSummary
from lit_optim.callbacks.step_dispatch import skip_unused_batch_hooks
from lit_optim.callbacks.timed_bar import TimedProgressBar
from lit_optim.catalog.checks import check_count, check_non_negative, check_number
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.objective import resolve_objective
from lit_optim.training.checkpoints import SameFolderCheckpointIO

__all__ = ["check_trainer_values", "silence_lightning_noise", "with_cli_defaults"]


def _non_negative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")


def _positive_or_count(name: str, value: Any) -> None:
    # Lightning reads a float as a fraction of the epoch and an int as a number of batches.
    if isinstance(value, int) and not isinstance(value, bool):
        check_count(name, value)
    else:
        check_number(name, value, low=0, high=1, low_open=True)


# Only what Lightning does not check itself (it rejects max_epochs -5, precision 13 …).
_TRAINER_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "accumulate_grad_batches": check_count,
    "log_every_n_steps": check_count,
    "check_val_every_n_epoch": check_count,
    "gradient_clip_val": check_non_negative,
    "min_epochs": _non_negative_int,
    "val_check_interval": _positive_or_count,
}


def check_trainer_values(config: Mapping[str, Any]) -> None:
    for key, check in _TRAINER_CHECKS.items():
        if config.get(key) is not None:
            check(f"trainer.{key}", config[key])
    # Values Lightning takes and then trains nothing, or something else than asked.
    if config.get("max_epochs") == 0:
        raise ConfigError(
            "trainer.max_epochs must be >= 1 (or -1 with trainer.max_steps), got "
            "0: the run would train nothing and report success"
        )
    precision = str(config.get("precision"))
    if precision in ("16", "16-mixed") and _on_cpu(config.get("accelerator")):
        raise ConfigError(
            f"trainer.precision {precision} needs a GPU; on the CPU Lightning would "
            "silently train in bf16-mixed instead: pass bf16-mixed (or 32) or "
            "--trainer.accelerator gpu"
        )
    clipper = any(isinstance(cb, GradientClipper) for cb in _as_list(config.get("callbacks")))
    if clipper and config.get("gradient_clip_val"):
        raise ConfigError(
            "trainer.gradient_clip_val and a GradientClipper callback would both "
            "clip every step: keep one (the callback's max_norm, or the trainer's "
            "value without the callback)"
        )


def _on_cpu(accelerator: Any) -> bool:
    if accelerator == "cpu":
        return True
    if accelerator in (None, "auto"):
        import torch

        return not torch.cuda.is_available() and not torch.backends.mps.is_available()
    return False


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _has_logger(config: Mapping[str, Any]) -> bool:
    logger = config.get("logger")  # None: Lightning's default logger
    return logger is not False and not (isinstance(logger, (list, tuple)) and not logger)


def with_cli_defaults(
    config: Mapping[str, Any], objective: str | None = None, direction: str | None = None
) -> tuple[dict[str, Any], RunSummary]:
    """``callbacks`` and ``plugins`` for the Trainer: the recipe's, plus the CLI's defaults
    where the recipe has none of that kind; and the RunSummary among them.

    ``objective``/``direction``: the run's objective (``objective.metric`` /
    ``objective.direction``). With one, the default checkpoint keeps the best epoch by it (and
    ``last.ckpt``); without, the latest epoch. An ``ObjectiveCheck`` checks every ranking
    callback's mode against the directions the run declares or logs.
    """
    callbacks: list[Callback] = _as_list(config.get("callbacks"))
    plugins = _as_list(config.get("plugins"))
    known = (
        resolve_objective(objective, direction, given_as="objective.direction", required=False)
        if objective
        else None
    )
    bind: tuple[Callback, ...] = ()
    if config.get("enable_checkpointing") is not False and not any(
        isinstance(cb, ModelCheckpoint) for cb in callbacks
    ):
        if objective is None:
            callbacks.append(FiniteModelCheckpoint(save_last=True))
        else:
            # A direction still unknown here comes from the Metric logged under the name:
            # ObjectiveCheck binds it on the first log, before anything is compared.
            checkpoint = FiniteModelCheckpoint(
                save_last=True,
                monitor=objective,
                save_top_k=1,
                mode=known.direction if known else "min",
            )
            callbacks.append(checkpoint)
            bind = () if known else (checkpoint,)
    if not any(isinstance(cb, ObjectiveCheck) for cb in callbacks):
        callbacks.append(ObjectiveCheck(objective, direction, bind=bind))
    if config.get("enable_progress_bar") is not False and not any(
        isinstance(cb, ProgressBar) for cb in callbacks
    ):
        # A line per epoch in a log file; in a terminal a bar redrawn a few times a second.
        callbacks.append(TimedProgressBar() if sys.stdout.isatty() else EpochLines())
    summary = next((cb for cb in callbacks if isinstance(cb, RunSummary)), None)
    if summary is None:
        summary = RunSummary(objective, direction)
        callbacks.append(summary)
    if not any(isinstance(cb, PlateauResume) for cb in callbacks):
        callbacks.append(PlateauResume())  # --ckpt_path last steps plateau as the run did
    if _has_logger(config) and not any(isinstance(cb, LearningRateMonitor) for cb in callbacks):
        # Every param group's lr on the logging steps (it refuses a Trainer with no logger).
        # Of its per-batch hooks it overrides one (on_train_batch_start): the others are not
        # dispatched.
        monitor = LearningRateMonitor(logging_interval="step")
        skip_unused_batch_hooks(monitor)
        callbacks.append(monitor)
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(SameFolderCheckpointIO())
    return {"callbacks": callbacks, "plugins": plugins}, summary


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def silence_lightning_noise() -> None:
    """Lightning's notices that no user can act on, printed on every run: the tensorboardX
    notice (the CSV logger it falls back to is what we want), the litlogger / litmodels
    advertisements and torch's LeafSpec deprecation inside Lightning. Silenced where they
    arise (their logger, their warning text), nothing else."""
    warnings.filterwarnings("ignore", message=r".*`tensorboardX` has been removed as a dependency")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    for name in (
        "lightning.pytorch",
        "lightning.fabric",
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())

"""The trainable: recipe + trial → LightningCLI objects → Trainer.fit → the monitored metric.

Optuna owns sampling, pruning and storage; this module owns turning a trial into a run. A
trial's parameters are overrides of the recipe (same dotted paths as the CLI); the merged
recipe is written to the trial's folder, so every trial can be re-run with ``lit-optim fit``.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from lightning.pytorch.callbacks import Callback
from optuna_integration import PyTorchLightningPruningCallback

from lit_optim import LitOptimError
from lit_optim.callbacks import LossHistory, NonFiniteError, NonFiniteGuard, unbounded_weights
from lit_optim.cli import SCRATCH_TRAINER_ARGS
from tuning.runner.interrupt import raise_if_interrupted
from tuning.search.preflight import MetricCheck, MetricNotLoggedError, build_trial_objects
from tuning.search.recipe import apply_overrides, write_recipe
from tuning.search.space import SearchSpace

__all__ = ["DivergenceWatch", "Trainable", "quiet_lightning", "trial_trainer_args"]


def quiet_lightning() -> None:
    """lit-tune prints one line per trial and one per mistake: Lightning's per-Trainer banner
    and its warnings about our own way of calling it would bury them."""

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "args parameter": LightningCLI warns when it gets args while sys.argv holds lit-tune's.
    # "evaluation logs for pruning": optuna-integration's pruning callback warns at every
    # validation where the metric is not (yet) logged; an epoch-end training metric is logged
    # only after validation, and a metric never logged is lit-tune's own one-line error
    # (MetricCheck), which this warning would come before.
    warnings.filterwarnings(
        "ignore",
        ".*(does not have many workers|Tip:|LeafSpec|heartbeat|"
        "args parameter|No seed found|"
        "not in the evaluation logs for pruning).*",
    )


def trial_trainer_args(accelerator: str = "auto", devices: Any = "auto") -> list[str]:
    """The command-line overrides every trial's Trainer gets (also used to parse a recipe
    before trial 0, so the checks see what the trials will build)."""
    # No per-trial files beyond the merged recipe, no bars interleaving across workers.
    return [
        *SCRATCH_TRAINER_ARGS,
        f"--trainer.accelerator={accelerator}",
        f"--trainer.devices={devices}",
    ]


class DivergenceWatch(Callback):
    """Ends a trial whose monitored metric or any logged loss is NaN/Inf, at the epoch it
    happens, whatever callbacks the recipe brings: a recipe's own NonFiniteGuard may roll back
    or skip and still end on NaN weights, which must not count as a finished trial."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.reason: str | None = None
        self.loss = LossHistory()

    def check(self, trainer: L.Trainer) -> None:
        if self.reason is not None:
            return
        for name, value in trainer.callback_metrics.items():
            if (name == self.metric or name.endswith("loss")) and not math.isfinite(float(value)):
                self.reason = f"{name} is {float(value)} at epoch {trainer.current_epoch}"
                trainer.should_stop = True
                return
        # Finite but diverged (a recipe's own rollback guard can leave a run going on at a
        # loss of 1e21): never a COMPLETE trial.
        diverged = self.loss.diverged() or unbounded_weights(trainer.lightning_module)
        if diverged:
            self.reason = f"{diverged} at epoch {trainer.current_epoch}"
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.loss.add(outputs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.loss.end_epoch()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.check(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)  # last epoch's training losses are in callback_metrics by now


class _InterruptPoint(Callback):
    """Raises a SIGTERM/SIGINT whose handler's exception was lost (it landed in a __del__)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        raise_if_interrupted()


class Trainable:
    """What trains one trial (Optuna calls it the objective function; Ray Tune a trainable):
    called with a trial, it builds the trial's recipe, fits it and returns the metric. Named
    apart from ``lit_optim.Objective``, the metric and its direction that it returns.

    Args:
        recipe: the recipe as a dict (see ``tuning.search.recipe.load_recipe``).
        space: the parsed search space.
        run_dir: ``runs/<study>``; each trial writes ``trial_<n>/recipe.yaml`` there.
        accelerator: the Trainer's accelerator for every trial.
        devices: the Trainer's devices (a worker's own GPU under ``--n-workers``).
    """

    def __init__(
        self,
        recipe: dict[str, Any],
        space: SearchSpace,
        run_dir: Path,
        *,
        accelerator: str = "auto",
        devices: Any = "auto",
    ) -> None:
        self.recipe, self.space, self.run_dir = recipe, space, Path(run_dir)
        self.accelerator, self.devices = accelerator, devices

    def trainer_args(self, root: Path | None = None) -> list[str]:
        """The overrides a trial's Trainer gets; ``root``: its folder, the Trainer's root, so
        that what a recipe's callbacks write there (a LayerDiagnostics plot) is the trial's,
        not overwritten by the next one."""
        args = trial_trainer_args(self.accelerator, self.devices)
        return args if root is None else [*args, f"--trainer.default_root_dir={root}"]

    def __call__(self, trial: optuna.Trial) -> float:
        merged = apply_overrides(self.recipe, self.space.suggest(trial))
        path = write_recipe(
            merged,
            self.run_dir / f"trial_{trial.number}" / "recipe.yaml",
            header=f"trial {trial.number} of study {trial.study.study_name}",
        )
        try:
            cli = build_trial_objects(path, *self.trainer_args(path.parent))
        except LitOptimError as err:  # this trial's combination of values (checked up front
            self._prune(trial, f"invalid configuration: {err}")  # for the first values)
        trainer = cli.trainer
        pruning = PyTorchLightningPruningCallback(trial, monitor=self.space.metric)
        guard = next((cb for cb in trainer.callbacks if isinstance(cb, NonFiniteGuard)), None)
        if guard is None:
            # A diverging trial must end early and say why. Divergence is a NaN/Inf or a loss
            # spike: a too-high lr often kills a ReLU net through huge finite steps instead.
            guard = NonFiniteGuard("stop", loss_spike_factor=10)
            trainer.callbacks.append(guard)
        watch = DivergenceWatch(self.space.metric)
        trainer.callbacks += [
            pruning,
            MetricCheck(self.space.metric, trial.study.direction.name.lower()),
            watch,
            _InterruptPoint(),
        ]
        try:
            trainer.fit(cli.model, datamodule=cli.datamodule)
        except NonFiniteError as err:
            self._prune(trial, f"diverged: {err}")
        except MetricNotLoggedError:
            raise  # no trial can report it: the study stops
        except LitOptimError as err:  # e.g. a warmup longer than this trial's run
            self._prune(trial, f"invalid configuration: {err}")
        watch.check(trainer)  # the last epoch's values, logged after the callbacks' last hook
        if guard.stop_reason or watch.reason:
            self._prune(trial, f"diverged: {guard.stop_reason or watch.reason}")
        pruning.check_pruned()
        value = trainer.callback_metrics.get(self.space.metric)
        # Kept for comparisons (lr sensitivity is read as final val_loss against lr).
        for name in ("val_loss", "val_acc", "train_loss"):
            if name in trainer.callback_metrics:
                trial.set_user_attr(name, float(trainer.callback_metrics[name]))
        if value is None or not math.isfinite(float(value)):
            self._prune(trial, f"{self.space.metric} is {value}: diverged or never logged")
        return float(value)

    @staticmethod
    def _prune(trial: optuna.Trial, reason: str) -> None:
        trial.set_user_attr("pruned_reason", reason)
        raise optuna.TrialPruned(reason)

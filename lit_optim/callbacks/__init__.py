"""Training-health callbacks, usable by name in a recipe's ``trainer.callbacks``.

    trainer:
      callbacks:
        - class_path: lit_optim.callbacks.NonFiniteGuard
          init_args: {action: rollback, lr_factor: 0.1}
        - class_path: lit_optim.callbacks.GradientClipper
          init_args: {mode: adaptive, percentile: 10}
        - class_path: lit_optim.callbacks.LayerDiagnostics
          init_args: {every_n_steps: 50, png: layer_ratios.png}

List the guard before the clipper: clipping a NaN gradient hides nothing but wastes work.
"""

from lit_optim.callbacks._grads import nonfinite_names
from lit_optim.callbacks.divergence import (
    DIVERGENCE_FACTOR,
    LossHistory,
    spike_step,
    unbounded_weights,
)
from lit_optim.callbacks.epoch_lines import EpochLines
from lit_optim.callbacks.finite_checkpoint import FiniteModelCheckpoint
from lit_optim.callbacks.gradient_clipper import GradientClipper
from lit_optim.callbacks.hyperparameter_schedule import HyperparameterSchedule
from lit_optim.callbacks.layer_diagnostics import LayerDiagnostics
from lit_optim.callbacks.nonfinite_guard import NonFiniteError, NonFiniteGuard
from lit_optim.callbacks.objective_check import ObjectiveCheck
from lit_optim.callbacks.plateau_resume import PlateauResume
from lit_optim.callbacks.run_summary import RunSummary
from lit_optim.callbacks.step_dispatch import skip_unused_batch_hooks
from lit_optim.callbacks.timed_bar import TimedProgressBar

__all__ = [
    "DIVERGENCE_FACTOR",
    "EpochLines",
    "FiniteModelCheckpoint",
    "GradientClipper",
    "HyperparameterSchedule",
    "LayerDiagnostics",
    "LossHistory",
    "NonFiniteError",
    "NonFiniteGuard",
    "ObjectiveCheck",
    "PlateauResume",
    "RunSummary",
    "TimedProgressBar",
    "nonfinite_names",
    "skip_unused_batch_hooks",
    "spike_step",
    "unbounded_weights",
]

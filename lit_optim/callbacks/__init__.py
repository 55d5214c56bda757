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

from lit_optim.callbacks.divergence import DIVERGENCE_FACTOR, LossHistory, unbounded_weights
from lit_optim.callbacks.finite_checkpoint import FiniteModelCheckpoint
from lit_optim.callbacks.gradient_clipper import GradientClipper
from lit_optim.callbacks.hyperparameter_schedule import HyperparameterSchedule
from lit_optim.callbacks.layer_diagnostics import LayerDiagnostics
from lit_optim.callbacks.nonfinite_guard import NonFiniteError, NonFiniteGuard
from lit_optim.callbacks.plateau_resume import PlateauResume
from lit_optim.callbacks.timed_bar import TimedProgressBar

__all__ = [
    "DIVERGENCE_FACTOR",
    "FiniteModelCheckpoint",
    "GradientClipper",
    "HyperparameterSchedule",
    "LayerDiagnostics",
    "LossHistory",
    "NonFiniteError",
    "NonFiniteGuard",
    "PlateauResume",
    "TimedProgressBar",
    "unbounded_weights",
]

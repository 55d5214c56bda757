"""The plugin catalog: registries, value checks, optimizers and schedulers by name, param
groups and the public factory (``create_optimizer`` / ``create_scheduler``).

The lowest layer: it imports torch only, never Lightning or torchmetrics, and nothing above it.
Its public names are exported from ``lit_optim`` itself; the helpers the other layers share
(name suggestions, value checks, lazy exports) from here.
"""

from typing import TYPE_CHECKING

from lit_optim.catalog.lazy import lazy_exports

# what the other layers (tuning/ included) use beyond lit_optim's own exports:
# public name -> the module that defines it, imported on first use
_EXPORTS = {
    "DIRECTION_WORDS": "lit_optim.catalog.objective",
    "check_count": "lit_optim.catalog.checks",
    "check_non_negative": "lit_optim.catalog.checks",
    "check_number": "lit_optim.catalog.checks",
    "chained_error": "lit_optim.catalog.errors",
    "disk_fault": "lit_optim.catalog.errors",
    "disk_fault_words": "lit_optim.catalog.errors",
    "error_chain": "lit_optim.catalog.errors",
    "did_you_mean": "lit_optim.catalog.registry",
    "lazy_exports": "lit_optim.catalog.lazy",
    "ConfigError": "lit_optim.catalog.errors",
    "DatasetNotFoundError": "lit_optim.catalog.errors",
    "Direction": "lit_optim.catalog.objective",
    "DirectionError": "lit_optim.catalog.errors",
    "LitOptimError": "lit_optim.catalog.errors",
    "LoggedDirections": "lit_optim.catalog.objective",
    "MissingPackageError": "lit_optim.catalog.errors",
    "OPTIMIZERS": "lit_optim.catalog.optimizers",
    "Objective": "lit_optim.catalog.objective",
    "OptimizerInfo": "lit_optim.catalog.optimizers",
    "Registry": "lit_optim.catalog.registry",
    "RegistryEntry": "lit_optim.catalog.registry",
    "SCHEDULERS": "lit_optim.catalog.schedulers",
    "SchedulerInfo": "lit_optim.catalog.schedulers",
    "UnknownNameError": "lit_optim.catalog.errors",
    "accepted_kwargs": "lit_optim.catalog.kwargs",
    "batch_norm_backward": "lit_optim.catalog.torch_private",
    "batch_norm_train": "lit_optim.catalog.torch_private",
    "build_optimizer": "lit_optim.catalog.optimizers",
    "build_param_groups": "lit_optim.catalog.param_groups",
    "check_kwargs": "lit_optim.catalog.kwargs",
    "check_lr_scaling": "lit_optim.catalog.factory",
    "check_optimizer_args": "lit_optim.catalog.optimizers",
    "check_optimizer_choice": "lit_optim.catalog.factory",
    "check_scheduler_args": "lit_optim.catalog.schedulers",
    "check_trains_real_steps": "lit_optim.catalog.trainer_info",
    "create_optimizer": "lit_optim.catalog.factory",
    "create_scheduler": "lit_optim.catalog.factory",
    "foreach_clamp_": "lit_optim.catalog.torch_private",
    "foreach_mul_": "lit_optim.catalog.torch_private",
    "foreach_norm": "lit_optim.catalog.torch_private",
    "foreach_sub": "lit_optim.catalog.torch_private",
    "has_step_hooks": "lit_optim.catalog.torch_private",
    "import_object": "lit_optim.catalog.registry",
    "is_logging_step": "lit_optim.catalog.trainer_info",
    "l2_penalty": "lit_optim.catalog.factory",
    "load_yaml": "lit_optim.catalog.checks",
    "logged_directions": "lit_optim.catalog.objective",
    "loss_weight_decay": "lit_optim.catalog.factory",
    "lr_scale_factor": "lit_optim.catalog.factory",
    "parse_direction": "lit_optim.catalog.objective",
    "plain_data": "lit_optim.catalog.kwargs",
    "rescale_hyperparameters": "lit_optim.catalog.rescale",
    "resolve_objective": "lit_optim.catalog.objective",
    "scaling_rule_factor": "lit_optim.catalog.factory",
    "takes_decay": "lit_optim.catalog.param_groups",
}

if TYPE_CHECKING:  # `name as name`: a re-export (editors and type checkers resolve it)
    from lit_optim.catalog.checks import check_count as check_count
    from lit_optim.catalog.checks import check_non_negative as check_non_negative
    from lit_optim.catalog.checks import check_number as check_number
    from lit_optim.catalog.checks import load_yaml as load_yaml
    from lit_optim.catalog.errors import ConfigError as ConfigError
    from lit_optim.catalog.errors import DatasetNotFoundError as DatasetNotFoundError
    from lit_optim.catalog.errors import DirectionError as DirectionError
    from lit_optim.catalog.errors import LitOptimError as LitOptimError
    from lit_optim.catalog.errors import MissingPackageError as MissingPackageError
    from lit_optim.catalog.errors import UnknownNameError as UnknownNameError
    from lit_optim.catalog.errors import chained_error as chained_error
    from lit_optim.catalog.errors import disk_fault as disk_fault
    from lit_optim.catalog.errors import disk_fault_words as disk_fault_words
    from lit_optim.catalog.errors import error_chain as error_chain
    from lit_optim.catalog.factory import check_lr_scaling as check_lr_scaling
    from lit_optim.catalog.factory import check_optimizer_choice as check_optimizer_choice
    from lit_optim.catalog.factory import create_optimizer as create_optimizer
    from lit_optim.catalog.factory import create_scheduler as create_scheduler
    from lit_optim.catalog.factory import l2_penalty as l2_penalty
    from lit_optim.catalog.factory import loss_weight_decay as loss_weight_decay
    from lit_optim.catalog.factory import lr_scale_factor as lr_scale_factor
    from lit_optim.catalog.factory import scaling_rule_factor as scaling_rule_factor
    from lit_optim.catalog.kwargs import accepted_kwargs as accepted_kwargs
    from lit_optim.catalog.kwargs import check_kwargs as check_kwargs
    from lit_optim.catalog.kwargs import plain_data as plain_data
    from lit_optim.catalog.lazy import lazy_exports as lazy_exports
    from lit_optim.catalog.objective import DIRECTION_WORDS as DIRECTION_WORDS
    from lit_optim.catalog.objective import Direction as Direction
    from lit_optim.catalog.objective import LoggedDirections as LoggedDirections
    from lit_optim.catalog.objective import Objective as Objective
    from lit_optim.catalog.objective import logged_directions as logged_directions
    from lit_optim.catalog.objective import parse_direction as parse_direction
    from lit_optim.catalog.objective import resolve_objective as resolve_objective
    from lit_optim.catalog.optimizers import OPTIMIZERS as OPTIMIZERS
    from lit_optim.catalog.optimizers import OptimizerInfo as OptimizerInfo
    from lit_optim.catalog.optimizers import build_optimizer as build_optimizer
    from lit_optim.catalog.optimizers import check_optimizer_args as check_optimizer_args
    from lit_optim.catalog.param_groups import build_param_groups as build_param_groups
    from lit_optim.catalog.param_groups import takes_decay as takes_decay
    from lit_optim.catalog.registry import Registry as Registry
    from lit_optim.catalog.registry import RegistryEntry as RegistryEntry
    from lit_optim.catalog.registry import did_you_mean as did_you_mean
    from lit_optim.catalog.registry import import_object as import_object
    from lit_optim.catalog.rescale import rescale_hyperparameters as rescale_hyperparameters
    from lit_optim.catalog.schedulers import SCHEDULERS as SCHEDULERS
    from lit_optim.catalog.schedulers import SchedulerInfo as SchedulerInfo
    from lit_optim.catalog.schedulers import check_scheduler_args as check_scheduler_args
    from lit_optim.catalog.torch_private import batch_norm_backward as batch_norm_backward
    from lit_optim.catalog.torch_private import batch_norm_train as batch_norm_train
    from lit_optim.catalog.torch_private import foreach_clamp_ as foreach_clamp_
    from lit_optim.catalog.torch_private import foreach_mul_ as foreach_mul_
    from lit_optim.catalog.torch_private import foreach_norm as foreach_norm
    from lit_optim.catalog.torch_private import foreach_sub as foreach_sub
    from lit_optim.catalog.torch_private import has_step_hooks as has_step_hooks
    from lit_optim.catalog.trainer_info import check_trains_real_steps as check_trains_real_steps
    from lit_optim.catalog.trainer_info import is_logging_step as is_logging_step

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""lit-optim: an optimizer lab and hyperparameter tuner for PyTorch Lightning.

Names are imported on first use (PEP 562), so ``import lit_optim.callbacks`` or
``from lit_optim import create_optimizer`` does not pull in the task, the models or the data
modules: each part of the toolkit costs only what it uses.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from lit_optim.catalog.lazy import lazy_exports

__version__ = "0.1.0"

# Lightning overwrites PYTORCH_NVML_BASED_CUDA_CHECK when imported; the value from before tells
# a user's own setting from Lightning's (lit_optim.cli.cuda_check). "lightning": imported first.
_NVML_CHECK_BEFORE_LIGHTNING = (
    "lightning" if "lightning" in sys.modules else os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
)

# public name -> module that defines it
_EXPORTS = {
    "DATASETS": "lit_optim.data",
    "ClassificationData": "lit_optim.data",
    "DatasetInfo": "lit_optim.data",
    "ConfigError": "lit_optim.catalog.errors",
    "DatasetNotFoundError": "lit_optim.catalog.errors",
    "LitOptimError": "lit_optim.catalog.errors",
    "MissingPackageError": "lit_optim.catalog.errors",
    "UnknownNameError": "lit_optim.catalog.errors",
    "MODELS": "lit_optim.training.models",
    "ModelInfo": "lit_optim.training.models",
    "build_model": "lit_optim.training.models",
    "OPTIMIZERS": "lit_optim.catalog.optimizers",
    "OptimizerInfo": "lit_optim.catalog.optimizers",
    "build_optimizer": "lit_optim.catalog.optimizers",
    "Registry": "lit_optim.catalog.registry",
    "RegistryEntry": "lit_optim.catalog.registry",
    "SCHEDULERS": "lit_optim.catalog.schedulers",
    "SchedulerInfo": "lit_optim.catalog.schedulers",
    "create_optimizer": "lit_optim.catalog.factory",
    "create_scheduler": "lit_optim.catalog.factory",
    "l2_penalty": "lit_optim.catalog.factory",
    "lr_scale_factor": "lit_optim.catalog.factory",
    "load_yaml": "lit_optim.catalog.checks",
    "ClassificationTask": "lit_optim.training.task",
    "DirectionError": "lit_optim.catalog.errors",
    "Objective": "lit_optim.catalog.objective",
    "logged_directions": "lit_optim.catalog.objective",
    "parse_direction": "lit_optim.catalog.objective",
    "resolve_objective": "lit_optim.catalog.objective",
}

# The same names for editors and type checkers, which cannot follow the table above (as
# optuna/__init__.py pairs its lazy imports with these).
if TYPE_CHECKING:  # `name as name`: a re-export
    from lit_optim.catalog.checks import load_yaml as load_yaml
    from lit_optim.catalog.errors import (
        ConfigError as ConfigError,
    )
    from lit_optim.catalog.errors import (
        DatasetNotFoundError as DatasetNotFoundError,
    )
    from lit_optim.catalog.errors import (
        DirectionError as DirectionError,
    )
    from lit_optim.catalog.errors import (
        LitOptimError as LitOptimError,
    )
    from lit_optim.catalog.errors import (
        MissingPackageError as MissingPackageError,
    )
    from lit_optim.catalog.errors import (
        UnknownNameError as UnknownNameError,
    )
    from lit_optim.catalog.factory import (
        create_optimizer as create_optimizer,
    )
    from lit_optim.catalog.factory import (
        create_scheduler as create_scheduler,
    )
    from lit_optim.catalog.factory import (
        l2_penalty as l2_penalty,
    )
    from lit_optim.catalog.factory import (
        lr_scale_factor as lr_scale_factor,
    )
    from lit_optim.catalog.objective import (
        Objective as Objective,
    )
    from lit_optim.catalog.objective import (
        logged_directions as logged_directions,
    )
    from lit_optim.catalog.objective import (
        parse_direction as parse_direction,
    )
    from lit_optim.catalog.objective import (
        resolve_objective as resolve_objective,
    )
    from lit_optim.catalog.optimizers import (
        OPTIMIZERS as OPTIMIZERS,
    )
    from lit_optim.catalog.optimizers import (
        OptimizerInfo as OptimizerInfo,
    )
    from lit_optim.catalog.optimizers import (
        build_optimizer as build_optimizer,
    )
    from lit_optim.catalog.registry import Registry as Registry
    from lit_optim.catalog.registry import RegistryEntry as RegistryEntry
    from lit_optim.catalog.schedulers import (
        SCHEDULERS as SCHEDULERS,
    )
    from lit_optim.catalog.schedulers import (
        SchedulerInfo as SchedulerInfo,
    )
    from lit_optim.data import (
        DATASETS as DATASETS,
    )
    from lit_optim.data import (
        ClassificationData as ClassificationData,
    )
    from lit_optim.data import (
        DatasetInfo as DatasetInfo,
    )
    from lit_optim.training.models import (
        MODELS as MODELS,
    )
    from lit_optim.training.models import (
        ModelInfo as ModelInfo,
    )
    from lit_optim.training.models import (
        build_model as build_model,
    )
    from lit_optim.training.task import ClassificationTask as ClassificationTask

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

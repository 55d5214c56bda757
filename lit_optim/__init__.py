"""lit-optim: an optimizer lab and hyperparameter tuner for PyTorch Lightning."""

from lit_optim.data import DATASETS, ClassificationData, DatasetInfo
from lit_optim.errors import ConfigError, DatasetNotFoundError, LitOptimError, UnknownNameError
from lit_optim.models import MODELS, ModelInfo, build_model
from lit_optim.optimizers import OPTIMIZERS, OptimizerInfo, build_optimizer
from lit_optim.registry import Registry, RegistryEntry
from lit_optim.schedulers import SCHEDULERS, SchedulerInfo, build_scheduler_config
from lit_optim.task import ClassificationTask

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "MODELS",
    "OPTIMIZERS",
    "SCHEDULERS",
    "ClassificationData",
    "ClassificationTask",
    "ConfigError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "LitOptimError",
    "ModelInfo",
    "OptimizerInfo",
    "Registry",
    "RegistryEntry",
    "SchedulerInfo",
    "UnknownNameError",
    "build_model",
    "build_optimizer",
    "build_scheduler_config",
]

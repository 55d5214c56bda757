"""Training: the networks by name, the example task (``ClassificationTask``), its metrics and
checkpoint I/O. Built on the catalog, ``lit_optim.data`` and ``lit_optim.callbacks``; the
finders, the population and the CLI build on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lit_optim.catalog.lazy import lazy_exports

# what the other packages use: public name -> the module that defines it, imported on
# first use (PEP 562)
_EXPORTS = {
    "ClassificationTask": "lit_optim.training.task",
    "MODELS": "lit_optim.training.models",
    "ModelInfo": "lit_optim.training.models",
    "SameFolderCheckpointIO": "lit_optim.training.checkpoints",
    "build_model": "lit_optim.training.models",
    "checkpoint_folders": "lit_optim.training.checkpoints",
    "overridden_settings": "lit_optim.training.checkpoints",
    "read_checkpoint": "lit_optim.training.checkpoints",
    "resolve_checkpoint": "lit_optim.training.checkpoints",
}

if TYPE_CHECKING:  # `name as name`: a re-export (editors and type checkers resolve it)
    from lit_optim.training.checkpoints import SameFolderCheckpointIO as SameFolderCheckpointIO
    from lit_optim.training.checkpoints import checkpoint_folders as checkpoint_folders
    from lit_optim.training.checkpoints import overridden_settings as overridden_settings
    from lit_optim.training.checkpoints import read_checkpoint as read_checkpoint
    from lit_optim.training.checkpoints import resolve_checkpoint as resolve_checkpoint
    from lit_optim.training.models import MODELS as MODELS
    from lit_optim.training.models import ModelInfo as ModelInfo
    from lit_optim.training.models import build_model as build_model
    from lit_optim.training.task import ClassificationTask as ClassificationTask

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""Datasets by name, served from memory on the training device.

Names are imported on first use (PEP 562): the dataset catalogue (``DATASETS``, read by
``lit-optim list``) loads no Lightning; ``ClassificationData`` does.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DATASETS": "lit_optim.data.datasets",
    "DatasetInfo": "lit_optim.data.datasets",
    "ClassificationData": "lit_optim.data.module",
    "EpochPermutation": "lit_optim.data.batches",
    "TensorBatches": "lit_optim.data.batches",
    "Splits": "lit_optim.data.sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lit_optim.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

"""Datasets by name, served from memory on the training device.

Names are imported on first use (PEP 562): the dataset catalogue (``DATASETS``, read by
``lit-optim list``) loads no Lightning; ``ClassificationData`` does.
"""

from __future__ import annotations

from lit_optim.catalog.lazy import lazy_exports

_EXPORTS = {
    "DATASETS": "lit_optim.data.datasets",
    "DatasetInfo": "lit_optim.data.datasets",
    "ClassificationData": "lit_optim.data.module",
    "EpochPermutation": "lit_optim.data.batches",
    "TensorBatches": "lit_optim.data.batches",
    "Splits": "lit_optim.data.sources",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

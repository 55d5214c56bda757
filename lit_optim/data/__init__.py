"""Datasets by name, served from memory on the training device.

Names are imported on first use (PEP 562): the dataset catalogue (``DATASETS``, read by
``lit-optim list``) loads no Lightning; ``ClassificationData`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lit_optim.catalog.lazy import lazy_exports

_EXPORTS = {
    "DATASETS": "lit_optim.data.datasets",
    "DatasetInfo": "lit_optim.data.datasets",
    "ClassificationData": "lit_optim.data.module",
    "EpochPermutation": "lit_optim.data.batches",
    "TensorBatches": "lit_optim.data.batches",
    "Splits": "lit_optim.data.sources",
}

# The same names for editors and type checkers, which cannot follow the table above (as
# optuna/__init__.py pairs its lazy imports with these).
if TYPE_CHECKING:  # `name as name`: a re-export
    from lit_optim.data.batches import (
        EpochPermutation as EpochPermutation,
    )
    from lit_optim.data.batches import (
        TensorBatches as TensorBatches,
    )
    from lit_optim.data.datasets import DATASETS as DATASETS
    from lit_optim.data.datasets import DatasetInfo as DatasetInfo
    from lit_optim.data.module import ClassificationData as ClassificationData
    from lit_optim.data.sources import Splits as Splits

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

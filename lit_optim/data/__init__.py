"""Datasets by name, served from memory on the training device."""

from lit_optim.data.batches import EpochPermutation, TensorBatches
from lit_optim.data.datasets import DATASETS, DatasetInfo
from lit_optim.data.module import ClassificationData
from lit_optim.data.sources import Splits

__all__ = [
    "DATASETS",
    "ClassificationData",
    "DatasetInfo",
    "EpochPermutation",
    "Splits",
    "TensorBatches",
]

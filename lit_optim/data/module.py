"""``ClassificationData``: any registered dataset as a LightningDataModule.

The dataset is loaded once, normalized once, split into train/val by seed and moved to the
training device in ``setup``; the loaders are ``TensorBatches`` over those tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from lit_optim.catalog.checks import check_count, check_number
from lit_optim.catalog.kwargs import check_kwargs, plain_data
from lit_optim.data.batches import TensorBatches
from lit_optim.data.datasets import DATASETS
from lit_optim.data.sources import Splits

__all__ = ["ClassificationData"]


class ClassificationData(L.LightningDataModule):
    """A classification dataset chosen by name (``lit-optim list datasets``).

    Args:
        dataset: registered dataset name.
        batch_size: training batch size.
        val_fraction: share of the training split held out for validation, chosen by ``seed``;
            0 trains on the whole training split with no validation (the protocol that
            reports the test split), so nothing can monitor ``val_*``.
        seed: seeds the train/val split and the per-epoch shuffling.
        data_dir: where torchvision datasets live (``<data_dir>/MNIST/raw`` …).
        download: fetch missing torchvision files (needs network access).
        eval_batch_size: batch size for validation and test (no gradients, so it can be large).
        dataset_kwargs: extra arguments of the dataset's loader (e.g. synthetic's
            ``num_samples``, ``input_shape``, ``num_classes``).
    """

    def __init__(
        self,
        dataset: str = "digits",
        batch_size: int = 128,
        val_fraction: float = 0.2,
        seed: int = 0,
        data_dir: str = "data",
        download: bool = False,
        eval_batch_size: int = 1024,
        dataset_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.info = DATASETS.get(dataset)
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            check_count(name, value)
        check_number(
            "val_fraction",
            val_fraction,
            low=0,
            high=1,
            high_open=True,
            note=" (0: no validation, train on the whole training split)",
        )
        dataset_kwargs = dict(dataset_kwargs or {})
        check_kwargs(
            dataset_kwargs,
            self.info.resolve(),
            what=f"dataset {self.info.name!r}",
            exclude=("data_dir", "download"),
        )
        dataset_kwargs = plain_data(dataset_kwargs)  # hparams.yaml for yaml.safe_load
        self.info.spec(dataset_kwargs)  # every dataset option checked before any training
        self.save_hyperparameters()
        self.dataset_name = self.info.name
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.data_dir = Path(data_dir)
        self.download = download
        self.dataset_kwargs = dataset_kwargs
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    # Known before any data is read, so the CLI can link them into the model's arguments.
    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.info.spec(self.dataset_kwargs)[0]

    @property
    def num_classes(self) -> int:
        return self.info.spec(self.dataset_kwargs)[1]

    def prepare_data(self) -> None:
        # Runs on one process per node: the only place a download may happen.
        if self.info.downloads and self.download:
            self.info.resolve()(self.data_dir, True, **self.dataset_kwargs)

    def setup(self, stage: str | None = None) -> None:
        if self._tensors is not None:
            return
        splits = self.info.resolve()(self.data_dir, False, **self.dataset_kwargs)
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        self._tensors = {
            name: (x.to(device), y.to(device)) if device is not None else (x, y)
            for name, (x, y) in self._split(self._normalize(splits)).items()
        }
        n_train = len(self._tensors["train"][1])
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size * world > n_train:
            rank_zero_warn(
                f"batch_size {self.batch_size}{f' × {world} devices' if world > 1 else ''} is "
                f"larger than the {n_train} training samples: every epoch is a single step on "
                f"all of them; use a batch_size below {n_train // world} for more than one step"
            )

    def _normalize(self, splits: Splits) -> Splits:
        if self.info.mean is None:
            return splits
        shape = (1, -1) + (1,) * (splits.train_x.ndim - 2)  # broadcast over channels
        dtype = splits.train_x.dtype
        mean = torch.tensor(self.info.mean, dtype=dtype).view(shape)
        std = torch.tensor(self.info.std, dtype=dtype).view(shape)
        return splits._replace(
            train_x=(splits.train_x - mean) / std, test_x=(splits.test_x - mean) / std
        )

    def _split(self, splits: Splits) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        n = len(splits.train_y)
        n_val = max(1, round(n * self.val_fraction)) if self.val_fraction > 0 else 0
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        val, train = order[:n_val], order[n_val:]
        return {
            "train": (splits.train_x[train], splits.train_y[train]),
            "val": (splits.train_x[val], splits.train_y[val]),
            "test": (splits.test_x, splits.test_y),
        }

    def _batches(
        self, split: str, batch_size: int, *, shuffle: bool, pad: bool = False
    ) -> TensorBatches:
        if self._tensors is None:
            self.setup()
        assert self._tensors is not None  # setup made them
        x, y = self._tensors[split]
        rank, world = (
            (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        )
        return TensorBatches(
            x, y, batch_size, shuffle=shuffle, seed=self.seed, rank=rank, world_size=world, pad=pad
        )

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", self.batch_size, shuffle=True, pad=True)

    def val_dataloader(self) -> TensorBatches | list:
        if self.val_fraction == 0:
            return []  # Lightning runs no validation for an empty list
        return self._batches("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size, shuffle=False)

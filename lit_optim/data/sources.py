"""Loaders that read a dataset into memory as tensors.

Each loader returns a ``Splits`` of float32 images in [0, 1] shaped (N, C, H, W) (or
(N, features)) and int64 labels. They read whole arrays (``dataset.data``), never samples one at
a time through PIL transforms: the data is small enough to live on the training device.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from lit_optim.catalog.errors import DatasetNotFoundError

__all__ = ["Splits", "load_digits", "load_synthetic", "torchvision_loader"]


class Splits(NamedTuple):
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


# Digits has no official test split. This one is fixed (not tied to the data seed) so that
# test_acc always means the same 360 images.
_DIGITS_TEST_SIZE = 360
_DIGITS_TEST_SEED = 20_240_601


def load_digits(data_dir: str | Path, download: bool) -> Splits:
    """scikit-learn's 1,797 8×8 handwritten digits; ships with scikit-learn, never downloads."""
    from sklearn.datasets import load_digits as sk_load_digits

    del data_dir, download  # part of every loader's signature; digits needs neither
    bunch = sk_load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # values 0..16
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(_DIGITS_TEST_SEED))
    test, train = order[:_DIGITS_TEST_SIZE], order[_DIGITS_TEST_SIZE:]
    return Splits(x[train], y[train], x[test], y[test])


def torchvision_loader(class_name: str, folder: str):
    """A loader for a torchvision dataset class with a ``train=`` flag and a ``.data`` array.

    Args:
        class_name: attribute of ``torchvision.datasets`` (``MNIST``, ``CIFAR10`` …).
        folder: where torchvision keeps its files under ``data_dir``, for the error message.
    """

    def load(data_dir: str | Path, download: bool) -> Splits:
        # torchvision is imported here, not at module import, so `lit-optim list` and the
        # digits default never pay for it.
        from torchvision import datasets

        cls = getattr(datasets, class_name)
        root = Path(data_dir).expanduser()
        try:
            train, test = (cls(str(root), train=flag, download=download) for flag in (True, False))
        except (RuntimeError, OSError) as err:
            where = root / folder
            if download:
                raise DatasetNotFoundError(
                    f"could not download {class_name} into {where}: {err}. "
                    f"Without network access, copy the files into {where} and run with "
                    "--data.download false"
                ) from err
            raise DatasetNotFoundError(
                f"{class_name} not found (or corrupted) in {where}; run once with "
                "--data.download true to fetch it, or point --data.data_dir at a copy"
            ) from err
        return Splits(
            _images(train.data), _labels(train.targets), _images(test.data), _labels(test.targets)
        )

    load.__name__ = f"load_{class_name.lower()}"
    return load


def _images(data) -> torch.Tensor:
    x = torch.as_tensor(data)
    if x.ndim == 3:  # (N, H, W) grayscale
        x = x.unsqueeze(1)
    elif x.shape[-1] in (1, 3):  # (N, H, W, C) as CIFAR stores it
        x = x.permute(0, 3, 1, 2)
    return x.contiguous().to(torch.float32).div_(255.0)


def _labels(targets) -> torch.Tensor:
    return torch.as_tensor(targets, dtype=torch.int64)


def load_synthetic(
    data_dir: str | Path,
    download: bool,
    *,
    num_samples: int = 2048,
    num_test_samples: int | None = None,
    input_shape: Sequence[int] = (1, 28, 28),
    num_features: int | None = None,
    num_classes: int = 10,
    noise: float = 1.0,
    seed: int = 0,
) -> Splits:
    """Gaussian class clusters: x = prototype[y] + noise·N(0, 1), learnable but not trivial.

    ``num_features=k`` is short for ``input_shape=[k]``. Values are already standardized, so
    the dataset entry declares no normalization.
    """
    del data_dir, download
    shape = synthetic_shape(input_shape, num_features)
    n_test = num_samples // 10 if num_test_samples is None else num_test_samples
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_classes, *shape, generator=gen)
    y = torch.randint(num_classes, (num_samples + n_test,), generator=gen)
    x = prototypes[y] + noise * torch.randn(len(y), *shape, generator=gen)
    return Splits(x[:num_samples], y[:num_samples], x[num_samples:], y[num_samples:])


def synthetic_shape(input_shape: Sequence[int], num_features: int | None) -> tuple[int, ...]:
    return (int(num_features),) if num_features is not None else tuple(int(s) for s in input_shape)

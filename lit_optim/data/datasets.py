"""Datasets by name.

An entry knows the shape of its inputs and its number of classes without loading anything, so
the CLI can build the network before the data is read; and its normalization constants, so
every dataset is served standardized.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lit_optim.data.sources as sources
from lit_optim.catalog.checks import check_count, check_number
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.registry import Registry, RegistryEntry, import_object

__all__ = ["DATASETS", "DatasetInfo"]


@dataclass(frozen=True, kw_only=True)
class DatasetInfo(RegistryEntry):
    """A registered dataset.

    Attributes:
        loader: ``loader(data_dir, download, **dataset_kwargs) -> Splits``.
        input_shape: (C, H, W) or (features,) of one sample.
        mean, std: per-channel constants on the [0, 1] scale; None when the loader already
            standardizes.
        shape_from_kwargs: for datasets whose shape is a parameter (synthetic):
            ``fn(**dataset_kwargs) -> (input_shape, num_classes)``.
        downloads: whether ``data_dir``/``download`` mean anything for it.
    """

    loader: Callable[..., sources.Splits] | str
    input_shape: tuple[int, ...]
    num_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    shape_from_kwargs: Callable[..., tuple[tuple[int, ...], int]] | None = None
    downloads: bool = False

    def resolve(self) -> Callable[..., sources.Splits]:
        return import_object(self.loader)

    def spec(self, kwargs: Mapping[str, Any]) -> tuple[tuple[int, ...], int]:
        """(input_shape, num_classes) for these dataset_kwargs, without loading data."""
        if self.shape_from_kwargs is None:
            return self.input_shape, self.num_classes
        return self.shape_from_kwargs(**kwargs)


def _synthetic_spec(
    input_shape: Sequence[int] = (1, 28, 28),
    num_features: int | None = None,
    num_classes: int = 10,
    num_samples: int = 2048,
    num_test_samples: int | None = None,
    noise: float = 1.0,
    **_: Any,
) -> tuple[tuple[int, ...], int]:
    """The shape and class count, after every value is checked (before any model is built)."""
    what = "dataset 'synthetic'"
    check_count(f"{what} num_classes", num_classes)
    check_count(f"{what} num_samples", num_samples)
    if num_test_samples is not None:
        check_count(f"{what} num_test_samples", num_test_samples)
    check_number(f"{what} noise", noise, low=0)
    if num_features is not None:
        check_count(f"{what} num_features", num_features)
    elif not isinstance(input_shape, (list, tuple)) or not input_shape:
        raise ConfigError(
            f"{what} input_shape must be a list of sizes such as [1, 28, 28], got {input_shape!r}"
        )
    else:
        for size in input_shape:
            check_count(f"{what} each of input_shape", size)
    return sources.synthetic_shape(input_shape, num_features), int(num_classes)


DATASETS: Registry[DatasetInfo] = Registry("datasets", DatasetInfo)

DATASETS.register(
    DatasetInfo(
        name="digits",
        loader=sources.load_digits,
        description="scikit-learn's 1,797 8×8 handwritten digits; built in, no download (default)",
        input_shape=(1, 8, 8),
        num_classes=10,
        # Measured on all 1,797 images (values 0..16 scaled to [0, 1]).
        mean=(0.3053,),
        std=(0.3760,),
    )
)
DATASETS.register(
    DatasetInfo(
        name="mnist",
        loader=sources.torchvision_loader("MNIST", "MNIST/raw"),
        description="MNIST 28×28 handwritten digits, 60k train / 10k test (torchvision)",
        input_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.1307,),
        std=(0.3081,),
        downloads=True,
    )
)
DATASETS.register(
    DatasetInfo(
        name="fashion_mnist",
        aliases=("fashionmnist",),
        loader=sources.torchvision_loader("FashionMNIST", "FashionMNIST/raw"),
        description="Fashion-MNIST 28×28 clothing images, 60k train / 10k test (torchvision)",
        input_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.2860,),
        std=(0.3530,),
        downloads=True,
    )
)
DATASETS.register(
    DatasetInfo(
        name="cifar10",
        aliases=("cifar_10",),
        loader=sources.torchvision_loader("CIFAR10", "cifar-10-batches-py"),
        description="CIFAR-10 32×32 colour images, 50k train / 10k test (torchvision)",
        input_shape=(3, 32, 32),
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        downloads=True,
    )
)
DATASETS.register(
    DatasetInfo(
        name="mnist1d",
        aliases=("mnist_1d",),
        # A string: the entry is listed without importing the generator or its package.
        loader="lit_optim.data.mnist1d.load_mnist1d",
        description="MNIST-1D (Greydanus & Kobak 2020): 4,000 train / 1,000 test sequences of 40 "
        "values, generated offline by the mnist1d package",
        input_shape=(1, 40),
        num_classes=10,
        shape_from_kwargs=lambda **kwargs: import_object("lit_optim.data.mnist1d.mnist1d_spec")(
            **kwargs
        ),
    )
)
DATASETS.register(
    DatasetInfo(
        name="synthetic",
        loader=sources.load_synthetic,
        description="Gaussian class clusters of any shape and size, for tests and benchmarks",
        input_shape=(1, 28, 28),
        num_classes=10,
        shape_from_kwargs=_synthetic_spec,
    )
)

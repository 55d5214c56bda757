"""MNIST-1D (Greydanus & Kobak, "Scaling down deep learning", 2020), generated in memory.

The ``mnist1d`` package (a dependency, pure Python) builds the dataset from ten 1-D
templates in about a second, so nothing is downloaded: its ``get_dataset`` would fetch a
pickle from the network, ``make_dataset`` only computes. With the
package's defaults (seed 42, 5,000 samples, an 80/20 split) it is the paper's dataset: 4,000
training and 1,000 test sequences of 40 values, already standardized.

Every option of ``mnist1d.data.get_dataset_args`` (except ``url``) can be given as
``--data.dataset_kwargs``; each is checked before anything is generated.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from lit_optim.catalog.checks import check_count, check_number
from lit_optim.catalog.errors import ConfigError, MissingPackageError
from lit_optim.catalog.kwargs import accepted_kwargs, check_kwargs
from lit_optim.data.sources import Splits

__all__ = ["load_mnist1d", "mnist1d_spec"]

# A dependency of lit-optim, so missing only from a broken or hand-made environment.
INSTALL_HINT = "pip install mnist1d"
_NUM_CLASSES = 10  # the package has ten templates, one per digit


def load_mnist1d(
    data_dir: str | Path,
    download: bool,
    *,
    num_samples: int = 5000,
    train_split: float = 0.8,
    template_len: int = 12,
    padding: Sequence[int] = (36, 60),
    scale_coeff: float = 0.4,
    max_translation: int = 48,
    corr_noise_scale: float = 0.25,
    iid_noise_scale: float = 2e-2,
    shear_scale: float = 0.75,
    shuffle_seq: bool = False,
    final_seq_length: int = 40,
    seed: int = 42,
) -> Splits:
    """The MNIST-1D splits: float32 sequences shaped (N, 1, final_seq_length), one channel so
    that 1-D convolutions and GRUs read them as they are, and int64 labels.

    The defaults are the package's, which make the paper's dataset; the options mean what
    they mean in ``mnist1d.data.get_dataset_args``.
    """
    options = {k: v for k, v in locals().items() if k not in ("data_dir", "download")}
    del data_dir, download  # generated, never read from disk or downloaded
    mnist1d_spec(**options)
    key = tuple(
        sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in options.items())
    )
    return Splits(*(t.clone() for t in _generate(key)))  # callers may change theirs in place


def mnist1d_spec(**options: Any) -> tuple[tuple[int, ...], int]:
    """(input_shape, num_classes) for these dataset_kwargs, after every option is checked and
    the package is found: called when the data module is built, so a bad value or a missing
    package ends the run before any model exists."""
    what = "dataset 'mnist1d'"
    check_kwargs(options, load_mnist1d, what=what, exclude=("data_dir", "download"))
    o = {**accepted_kwargs(load_mnist1d, exclude=("data_dir", "download")), **options}
    check_count(f"{what} num_samples", o["num_samples"])
    check_number(
        f"{what} train_split", o["train_split"], low=0, high=1, low_open=True, high_open=True
    )
    total = o["num_samples"] // _NUM_CLASSES * _NUM_CLASSES  # the package makes whole classes
    n_train = int(total * o["train_split"])
    if n_train < 1 or n_train >= total:
        raise ConfigError(
            f"{what} num_samples {o['num_samples']} with train_split {o['train_split']} leaves "
            "an empty train or test split; the paper uses num_samples 5000, train_split 0.8"
        )
    check_count(f"{what} template_len", o["template_len"])
    padding = o["padding"]
    if (
        isinstance(padding, (str, bytes))
        or not isinstance(padding, Sequence)
        or len(padding) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in padding)
        or not 0 <= padding[0] <= padding[1]
    ):
        raise ConfigError(
            f"{what} padding must be [low, high], whole numbers with "
            f"0 <= low <= high such as [36, 60], got {padding!r}"
        )
    check_count(f"{what} max_translation", o["max_translation"])
    for name in ("scale_coeff", "corr_noise_scale", "iid_noise_scale", "shear_scale"):
        check_number(f"{what} {name}", o[name], low=0)
    if not isinstance(o["shuffle_seq"], bool):
        raise ConfigError(f"{what} shuffle_seq must be true or false, got {o['shuffle_seq']!r}")
    check_count(f"{what} final_seq_length", o["final_seq_length"])
    seed = o["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"{what} seed must be an integer in [0, 2**32), got {seed!r}")
    if importlib.util.find_spec("mnist1d") is None:
        raise MissingPackageError(f"{what} needs the mnist1d package: {INSTALL_HINT}")
    return (1, int(o["final_seq_length"])), _NUM_CLASSES


@lru_cache(maxsize=4)
def _generate(options: tuple[tuple[str, Any], ...]) -> Splits:
    """Generated once per process and options: every trial of a study reads the same data."""
    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for name, value in options:
        setattr(args, name, list(value) if isinstance(value, tuple) else value)
    # make_dataset seeds numpy's and Python's global generators (mnist1d.utils.set_seed);
    # put them back, so generating the data does not change the run's own random stream.
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)

    def sequences(x: Any) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32).unsqueeze(1)

    def labels(y: Any) -> torch.Tensor:
        return torch.as_tensor(y, dtype=torch.int64)

    return Splits(
        sequences(data["x"]), labels(data["y"]), sequences(data["x_test"]), labels(data["y_test"])
    )

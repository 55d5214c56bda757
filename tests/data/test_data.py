"""Data modules: the real torchvision loading code on small files written in torchvision's
on-disk formats, digits, synthetic, splits, normalization and the device batch iterator."""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets as tv

from lit_optim import DATASETS, ClassificationData, ConfigError, DatasetNotFoundError
from lit_optim.data import TensorBatches

RNG = np.random.default_rng(0)


# --- writers for torchvision's file formats ------------------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format MNIST ships in: magic (0, 0, dtype 0x08 = uint8, ndim), sizes, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_like(root: Path, folder: str, n_train: int = 40, n_test: int = 12):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        arrays[split] = (images, labels)
    return arrays


def write_cifar10(root: Path, monkeypatch, per_batch: int = 8):
    """CIFAR-10's pickled batches; the class's md5 table is pointed at the files written, so
    torchvision's own integrity check still runs."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def dump(name, obj):
        (folder / name).write_bytes(pickle.dumps(obj))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    train_list, batches = [], []
    for i in range(1, 6):
        data = RNG.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = RNG.integers(0, 10, size=per_batch).tolist()
        train_list.append(dump(f"data_batch_{i}", {"data": data, "labels": labels}))
        batches.append((data, labels))
    test_data = RNG.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
    test_list = [dump("test_batch", {"data": test_data, "labels": [1] * per_batch})]
    meta_name, meta_md5 = dump("batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    monkeypatch.setattr(tv.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(tv.CIFAR10, "test_list", test_list)
    monkeypatch.setattr(tv.CIFAR10, "meta", {**tv.CIFAR10.meta, "md5": meta_md5})
    return batches


def _setup(dataset, root, **kwargs) -> ClassificationData:
    data = ClassificationData(dataset, data_dir=str(root), val_fraction=0.25, **kwargs)
    data.setup("fit")
    return data


# --- torchvision datasets -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dataset", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_like_files_load_split_and_normalize(tmp_path, dataset, folder):
    arrays = write_mnist_like(tmp_path, folder)
    data = _setup(dataset, tmp_path)
    info = DATASETS.get(dataset)
    x_train, y_train = data._tensors["train"]
    x_val, y_val = data._tensors["val"]
    x_test, y_test = data._tensors["test"]
    assert x_train.shape == (30, 1, 28, 28) and x_val.shape == (10, 1, 28, 28)
    assert x_test.shape == (12, 1, 28, 28) and x_train.dtype == torch.float32
    # The test split is the t10k file, pixel for pixel, normalized with the entry's constants.
    images, labels = arrays["t10k"]
    expected = (torch.from_numpy(images).float() / 255 - info.mean[0]) / info.std[0]
    assert torch.allclose(x_test[:, 0], expected, atol=1e-6)
    assert torch.equal(y_test, torch.from_numpy(labels).long())
    # Train + val is a permutation of the train file.
    train_labels = torch.cat([y_train, y_val]).sort().values
    assert torch.equal(train_labels, torch.from_numpy(arrays["train"][1]).long().sort().values)


def test_cifar10_files_load_as_nchw(tmp_path, monkeypatch):
    batches = write_cifar10(tmp_path, monkeypatch)
    data = _setup("cifar10", tmp_path)
    x_val, _ = data._tensors["val"]
    x_train, _ = data._tensors["train"]
    assert x_train.shape[1:] == (3, 32, 32) and len(x_train) + len(x_val) == 40
    x_test, y_test = data._tensors["test"]
    assert x_test.shape == (8, 3, 32, 32) and set(y_test.tolist()) == {1}
    # Un-normalizing recovers the stored bytes: channel-major as CIFAR stores them.
    info = DATASETS.get("cifar10")
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    pixels = ((torch.cat([x_train, x_val]) * std + mean) * 255).round().to(torch.uint8)
    stored = torch.from_numpy(np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32))
    assert sorted(map(bytes, pixels.flatten(1).numpy())) == sorted(
        map(bytes, stored.flatten(1).numpy())
    )


def test_corrupted_cifar_is_reported_as_missing(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DatasetNotFoundError, match="CIFAR10 not found .or corrupted."):
        _setup("cifar10", tmp_path)


@pytest.mark.parametrize(
    ("dataset", "folder"),
    [
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
    ],
)
def test_missing_files_offline_name_the_directory_and_the_flag(tmp_path, dataset, folder):
    with pytest.raises(DatasetNotFoundError) as info:
        _setup(dataset, tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / folder) in message
    assert "--data.download true" in message


def test_failed_download_says_what_to_do(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tv.CIFAR10, "download", no_network)
    data = ClassificationData("cifar10", data_dir=str(tmp_path), download=True)
    with pytest.raises(
        DatasetNotFoundError, match="could not download CIFAR10 into .*network is unreachable"
    ):
        data.prepare_data()


# --- digits and synthetic -------------------------------------------------------------------
def test_digits_ships_and_splits_deterministically():
    a, b = _setup("digits", "unused"), _setup("digits", "unused")
    c = ClassificationData("digits", val_fraction=0.25, seed=1)
    c.setup()
    assert [len(a._tensors[s][1]) for s in ("train", "val", "test")] == [1078, 359, 360]
    assert torch.equal(a._tensors["val"][1], b._tensors["val"][1])
    assert not torch.equal(a._tensors["val"][0], c._tensors["val"][0])
    # The test split does not depend on the data seed.
    assert torch.equal(a._tensors["test"][0], c._tensors["test"][0])
    # Standardized with the entry's constants: close to zero mean, unit variance overall.
    x = torch.cat([a._tensors[s][0] for s in ("train", "val", "test")])
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3


def test_synthetic_shape_comes_from_kwargs_without_loading():
    data = ClassificationData("synthetic", dataset_kwargs={"num_features": 5, "num_classes": 3})
    assert data.input_shape == (5,) and data.num_classes == 3 and data._tensors is None
    data.setup()
    x, y = data._tensors["train"]
    assert x.shape[1:] == (5,) and int(y.max()) <= 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": -4}, "batch_size must be an integer >= 1"),
        ({"eval_batch_size": 0}, "eval_batch_size must be an integer >= 1"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\) \(0: no validation"),
        ({"val_fraction": -0.1}, r"val_fraction must be in \[0, 1\)"),
        ({"dataset": "mnsit"}, "unknown dataset 'mnsit'; did you mean 'mnist'"),
        (
            {"dataset": "digits", "dataset_kwargs": {"num_samples": 3}},
            "dataset 'digits' does not take 'num_samples'",
        ),
    ],
)
def test_bad_data_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassificationData(**kwargs)


# --- the batch iterator ---------------------------------------------------------------------
def test_tensor_batches_cover_every_sample_once_per_epoch_in_a_seeded_order():
    x, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    batches = TensorBatches(x, y, 4, shuffle=True, seed=3)
    assert len(batches) == 3

    def epoch(e):
        batches.sampler.set_epoch(e)
        return torch.cat([b[1] for b in batches])

    first, again, second = epoch(0), epoch(0), epoch(1)
    assert sorted(first.tolist()) == list(range(10))
    assert torch.equal(first, again) and not torch.equal(first, second)
    assert [len(b[1]) for b in batches] == [4, 4, 2]


def test_tensor_batches_shard_by_rank_without_overlap():
    x, y = torch.zeros(10, 1), torch.arange(10)
    shards = [
        torch.cat([b[1] for b in TensorBatches(x, y, 3, shuffle=True, rank=r, world_size=2)])
        for r in (0, 1)
    ]
    assert sorted(torch.cat(shards).tolist()) == list(range(10))
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_eval_batches_are_contiguous_views():
    x, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    batches = list(TensorBatches(x, y, 4, shuffle=False))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].data_ptr() == x.data_ptr()  # no copy


def test_drop_last():
    batches = TensorBatches(torch.zeros(10, 1), torch.arange(10), 4, shuffle=True, drop_last=True)
    assert len(batches) == 2 and [len(b[1]) for b in batches] == [4, 4]

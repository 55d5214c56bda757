"""MNIST-1D: generated offline, the paper's dataset for the package's defaults, the same for
the same seed, its options checked before anything is generated, and its 1-D networks."""

from __future__ import annotations

import importlib.util
import random
import socket

import numpy as np
import pytest
import torch
from torch import nn

from lit_optim import ClassificationData, ConfigError, MissingPackageError, build_model
from lit_optim.cli.main import main as lit_optim
from lit_optim.data import mnist1d as source
from support import exit_status


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (the package's get_dataset downloads)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network call during MNIST-1D generation: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    source._generate.cache_clear()  # generate for real inside the test, not from the cache
    yield
    source._generate.cache_clear()


def test_generated_offline_and_the_same_for_the_same_seed(no_network, tmp_path):
    first = source.load_mnist1d(tmp_path / "nowhere", True)
    source._generate.cache_clear()
    again = source.load_mnist1d(tmp_path / "elsewhere", False)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    other = source.load_mnist1d(tmp_path, False, seed=7)
    assert not torch.equal(first.train_x, other.train_x)
    assert not any(tmp_path.iterdir())  # nothing written: no pickle cache, no download


def test_defaults_are_the_papers_dataset(no_network):
    """The paper's MNIST-1D: 4,000 train / 1,000 test sequences of 40, ten classes about
    evenly, standardized; equal to what the package itself makes with its defaults."""
    from mnist1d.data import get_dataset_args, make_dataset

    splits = source.load_mnist1d("data", False)
    assert splits.train_x.shape == (4000, 1, 40) and splits.test_x.shape == (1000, 1, 40)
    assert splits.train_x.dtype == torch.float32 and splits.train_y.dtype == torch.int64
    counts = torch.bincount(torch.cat([splits.train_y, splits.test_y]), minlength=10)
    assert counts.min() >= 450 and counts.max() <= 550  # 500 per class before the split
    x = torch.cat([splits.train_x, splits.test_x])
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3
    reference = make_dataset(get_dataset_args())  # the package's own generator, called directly
    np.testing.assert_allclose(splits.train_x.squeeze(1).numpy(), reference["x"], rtol=1e-6)
    np.testing.assert_array_equal(splits.test_y.numpy(), reference["y_test"])


def test_generation_leaves_the_global_random_streams_alone(no_network):
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    source.load_mnist1d("data", False, num_samples=200)
    assert (np.random.rand(), random.random()) == expected


def test_options_change_the_data_and_its_shape():
    data = ClassificationData(
        "mnist1d", dataset_kwargs={"num_samples": 500, "final_seq_length": 24}
    )
    assert data.input_shape == (1, 24) and data.num_classes == 10 and data._tensors is None
    data.setup()
    assert [len(data._tensors[s][1]) for s in ("train", "val", "test")] == [320, 80, 100]
    assert data._tensors["train"][0].shape[1:] == (1, 24)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_sample": 100}, "does not take 'num_sample'; did you mean 'num_samples'"),
        ({"url": "http://x"}, "does not take 'url'"),
        ({"train_split": 1.0}, r"train_split must be in \(0, 1\)"),
        ({"num_samples": 5}, "leaves an empty train or test split"),
        ({"padding": [5]}, "padding must be"),
        ({"padding": [10, 5]}, "padding must be"),
        ({"max_translation": 0}, "max_translation must be an integer >= 1"),
        ({"corr_noise_scale": -0.1}, "corr_noise_scale must be"),
        ({"seed": 2**32}, "seed must be an integer"),
    ],
)
def test_bad_options_fail_when_the_data_module_is_built(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassificationData("mnist1d", dataset_kwargs=kwargs)


def test_missing_package_is_one_line_that_says_how_to_install(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mnist1d" else real(name, *a)
    )
    with pytest.raises(MissingPackageError, match=r"pip install mnist1d"):
        ClassificationData("mnist1d")
    status = exit_status(lit_optim, "fit", "--data.dataset", "mnist1d", "--trainer.max_epochs", "1")
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "pip install mnist1d" in lines[0], err
    assert "Traceback" not in err


# --- the 1-D networks ------------------------------------------------------------------------
def test_cnn1d_defaults_are_the_papers_convnet():
    model = build_model("cnn1d", (1, 40), 10)
    convs = [m for m in model if isinstance(m, nn.Conv1d)]
    assert [
        (c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs
    ] == [(1, 25, 5, 2, 1), (25, 25, 3, 2, 1), (25, 25, 3, 2, 1)]
    head = model[-1]
    assert isinstance(head, nn.Linear) and head.in_features == 125  # 25 channels × 5 positions
    # Sequences given as (N, 40) and (N, 1, 40) are the same input.
    x = torch.randn(3, 40)
    torch.testing.assert_close(model(x), model(x.unsqueeze(1)))


def test_gru_reads_every_step_of_a_bidirectional_layer():
    model = build_model("gru", (1, 40), 10)
    assert model.gru.hidden_size == 6 and model.gru.bidirectional
    assert model.head.in_features == 2 * 6 * 40
    x = torch.randn(4, 1, 40)
    # The same computation written out with torch's GRU on (N, L, 1) sequences.
    outputs, _ = model.gru(x.transpose(1, 2))
    torch.testing.assert_close(model(x), model.head(outputs.reshape(4, -1)))
    # Each sample's logits depend on its own sequence only.
    torch.testing.assert_close(model(x[:1]), model(x)[:1])


def test_gru_takes_channels_as_features_of_each_step():
    model = build_model("gru", (3, 16), 5, hidden_size=4, bidirectional=False, num_layers=2)
    assert model.gru.input_size == 3 and model.head.in_features == 4 * 16
    assert model(torch.randn(2, 3, 16)).shape == (2, 5)


@pytest.mark.parametrize(
    ("name", "shape", "kwargs", "message"),
    [
        ("cnn1d", (1, 8, 8), {}, "cnn1d needs sequence input"),
        ("cnn1d", (1, 2), {}, "leaves no positions"),
        ("cnn1d", (1, 40), {"channels": [8, 8]}, "one kernel size per stage"),
        ("cnn1d", (1, 40), {"stride": 0}, "stride must be an integer >= 1"),
        ("gru", (3, 32, 32), {}, "gru needs sequence input"),
        ("gru", (1, 40), {"hidden_size": 0}, "hidden_size must be an integer >= 1"),
        ("gru", (1, 40), {"hiden_size": 8}, "did you mean 'hidden_size'"),
    ],
)
def test_bad_1d_network_arguments(name, shape, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_model(name, shape, 10, **kwargs)

"""Networks by name: output shapes, layer sizes, and bad arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_optim import MODELS, ConfigError, build_model

IMAGES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
SEQUENCES = [(1, 40), (40,), (2, 24)]
SEQUENCE_MODELS = {"cnn1d", "gru"}  # the MNIST-1D networks: (channels, length) inputs


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("index", range(3))
def test_every_model_maps_its_inputs_to_logits(name, index):
    shape = (SEQUENCES if name in SEQUENCE_MODELS else IMAGES)[index]
    model = build_model(name, shape, 10)
    assert model(torch.randn(5, *shape)).shape == (5, 10)


def test_mlp_is_the_lecture_network():
    model = build_model("mlp", (1, 28, 28), 10, hidden_dims=[200, 100, 50])
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 200),
        (200, 100),
        (100, 50),
        (50, 10),
    ]


def test_mlp_without_hidden_layers_is_logistic_regression():
    model = build_model("mlp", (64,), 10, hidden_dims=[])
    assert [type(m) for m in model] == [nn.Flatten, nn.Linear]
    assert sum(p.numel() for p in model.parameters()) == 64 * 10 + 10


def test_cnn_head_size_follows_the_input():
    model = build_model("cnn", (3, 32, 32), 10, channels=[8, 16, 32], hidden_dim=20)
    first_linear = next(m for m in model if isinstance(m, nn.Linear))
    assert first_linear.in_features == 32 * 4 * 4


@pytest.mark.parametrize(
    ("name", "shape", "kwargs", "message"),
    [
        ("cnn", (64,), {}, "cnn needs image input"),
        ("cnn", (1, 8, 8), {"channels": [4, 4, 4, 4]}, "below 1 pixel"),
        ("mlp", (64,), {"hidden_dims": [0]}, "each of hidden_dims must be an integer >= 1"),
        ("mlp", (64,), {"activation": "relux"}, "unknown activation 'relux'"),
        ("mlp", (64,), {"dropout": 1.0}, "dropout must be in"),
        ("mlp", (64,), {"hidden": [3]}, "model 'mlp' does not take 'hidden'"),
    ],
)
def test_bad_model_arguments(name, shape, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_model(name, shape, 10, **kwargs)

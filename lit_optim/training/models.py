"""Classification networks by name.

Every factory is called as ``factory(input_shape, num_classes, **network_kwargs)``; the data
module supplies ``input_shape`` (C, H, W) or (features,) and ``num_classes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.kwargs import check_kwargs
from lit_optim.catalog.checks import check_count, check_number
from lit_optim.catalog.registry import Registry, RegistryEntry, import_object

__all__ = ["CNN", "MLP", "MODELS", "ModelInfo", "build_model"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "silu": nn.SiLU,
}


def _activation(name: str) -> type[nn.Module]:
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown activation {name!r}; choose one of: {', '.join(_ACTIVATIONS)}"
        ) from None


def _check_widths(name: str, widths: object) -> None:
    """A list of layer widths: each an integer >= 1 (``[1.5]`` is not a width, ``64`` not a list)."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise ConfigError(f"{name} must be a list of positive integers such as [256, 128], "
                          f"got {widths!r}")
    for width in widths:
        check_count(f"each of {name}", width, note=f" (got {list(widths)!r})")


class MLP(nn.Sequential):
    """Flatten, then Linear-activation blocks, then a Linear classifier.

    ``hidden_dims=[]`` is multinomial logistic regression; ``[200, 100, 50]`` on 28×28 inputs is
    the 784-200-100-50-10 MNIST network of the lectures.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_dims: Sequence[int] = (200, 100, 50),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        act = _activation(activation)
        _check_widths("hidden_dims", hidden_dims)
        check_number("dropout", dropout, low=0, high=1, high_open=True)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for hidden in hidden_dims:
            layers += [nn.Linear(width, int(hidden)), act()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(hidden)
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


class CNN(nn.Sequential):
    """Stages of conv3×3 → (BatchNorm) → activation → 2×2 max-pool, then an MLP head.

    Works for any (C, H, W) input whose sides survive the pooling: 8×8 digits, 28×28×1
    (MNIST, Fashion-MNIST) and 32×32×3 (CIFAR-10).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        hidden_dim: int = 128,
        batch_norm: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        if len(input_shape) != 3:
            raise ConfigError(
                f"cnn needs image input (C, H, W), got shape {tuple(input_shape)}; use mlp"
            )
        act = _activation(activation)
        _check_widths("channels", channels)
        check_count("hidden_dim", hidden_dim)
        check_number("dropout", dropout, low=0, high=1, high_open=True)
        in_ch, height, width = (int(s) for s in input_shape)
        side = min(height, width) >> len(channels)
        if side < 1:
            raise ConfigError(
                f"cnn with {len(channels)} stages halves a {height}×{width} input below 1 pixel; "
                "use fewer channels entries"
            )
        layers: list[nn.Module] = []
        for out_ch in channels:
            # BatchNorm has its own shift, so the conv bias would be redundant.
            layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers += [act(), nn.MaxPool2d(2)]
            in_ch = out_ch
        flat = in_ch * (height >> len(channels)) * (width >> len(channels))
        layers += [nn.Flatten(), nn.Linear(flat, hidden_dim), act()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden_dim, num_classes))
        super().__init__(*layers)


@dataclass(frozen=True, kw_only=True)
class ModelInfo(RegistryEntry):
    """A registered network: ``factory(input_shape, num_classes, **kwargs) -> nn.Module``."""

    factory: Callable[..., nn.Module] | str

    def resolve(self) -> Callable[..., nn.Module]:
        return import_object(self.factory)


MODELS: Registry[ModelInfo] = Registry("models", ModelInfo)
MODELS.register(ModelInfo(
    name="mlp", factory=MLP,
    description="fully connected net; hidden_dims=[] is logistic regression",
))
MODELS.register(ModelInfo(
    name="cnn", factory=CNN,
    description="small conv net (conv-BN-ReLU-pool stages + MLP head) for image inputs",
))


def check_model_args(name: str, kwargs: dict) -> ModelInfo:
    info = MODELS.get(name)
    check_kwargs(
        kwargs, info.resolve(), what=f"model {info.name!r}",
        exclude=("input_shape", "num_classes"),
    )
    return info


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, **kwargs
) -> nn.Module:
    """Instantiate the network registered as ``name``."""
    info = check_model_args(name, kwargs)
    return info.resolve()(tuple(input_shape), int(num_classes), **kwargs)

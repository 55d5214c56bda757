"""Classification networks by name.

Every factory is called as ``factory(input_shape, num_classes, **network_kwargs)``; the data
module supplies ``input_shape`` (C, H, W) or (features,) and ``num_classes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from lit_optim.catalog.checks import check_count, check_number
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.kwargs import check_kwargs
from lit_optim.catalog.registry import Registry, RegistryEntry, import_object

__all__ = ["CNN", "CNN1D", "GRU", "MLP", "MODELS", "ModelInfo", "build_model"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
}


def _activation(name: str) -> type[nn.Module]:
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown activation {name!r}; choose one of: {', '.join(_ACTIVATIONS)}"
        ) from None


def _check_widths(name: str, widths: object) -> None:
    """A list of layer widths: each an integer >= 1 (``[1.5]`` is not a width, ``64`` not a
    list)."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise ConfigError(
            f"{name} must be a list of positive integers such as [256, 128], got {widths!r}"
        )
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


def _sequence_shape(name: str, input_shape: Sequence[int]) -> tuple[int, int]:
    """(channels, length) of a 1-D input: (C, L) as it is, (L,) as one channel."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    raise ConfigError(
        f"{name} needs sequence input (channels, length) or (length,), got shape "
        f"{shape}; use cnn for images, mlp for anything"
    )


class CNN1D(nn.Sequential):
    """Stages of conv1d (stride 2) → (BatchNorm) → activation, then a Linear classifier over
    the flattened features.

    The defaults are the CNN of the MNIST-1D paper's reference notebook (Greydanus & Kobak
    2020): three convolutions of 25 channels, kernels 5, 3, 3, stride 2, padding 1, no pooling;
    on 40 values the last stage has 5 positions (125 features).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (25, 25, 25),
        kernel_sizes: Sequence[int] = (5, 3, 3),
        stride: int = 2,
        batch_norm: bool = False,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        in_ch, length = _sequence_shape("cnn1d", input_shape)
        act = _activation(activation)
        _check_widths("channels", channels)
        _check_widths("kernel_sizes", kernel_sizes)
        if len(kernel_sizes) != len(channels):
            raise ConfigError(
                f"cnn1d needs one kernel size per stage: channels has "
                f"{len(channels)} entries, kernel_sizes {len(kernel_sizes)}"
            )
        check_count("stride", stride)
        check_number("dropout", dropout, low=0, high=1, high_open=True)
        # (N, L) and (N, C, L) alike become (N, C, L)
        layers: list[nn.Module] = [nn.Flatten(), nn.Unflatten(1, (in_ch, length))]
        for out_ch, kernel in zip(channels, kernel_sizes):
            out_len = (length + 2 - int(kernel)) // stride + 1  # padding 1 on each side
            if out_len < 1:
                raise ConfigError(
                    f"cnn1d: a kernel of {kernel} with stride {stride} leaves no positions of a "
                    f"{length}-long input; use fewer channels entries or smaller kernels"
                )
            layers.append(
                nn.Conv1d(
                    in_ch, int(out_ch), int(kernel), stride=stride, padding=1, bias=not batch_norm
                )
            )  # BatchNorm has its own shift
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(out_ch)))
            layers.append(act())
            in_ch, length = int(out_ch), out_len
        layers.append(nn.Flatten())
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(in_ch * length, num_classes))
        super().__init__(*layers)


class GRU(nn.Module):
    """A (bidirectional) GRU over the sequence, then a Linear classifier over the outputs of
    every time step, flattened.

    The defaults are the GRU of the MNIST-1D paper's reference notebook: one bidirectional
    layer of 6 units, read at all 40 steps (480 features). The input's channels are the
    features of each step.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_size: int = 6,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels, self.length = _sequence_shape("gru", input_shape)
        check_count("hidden_size", hidden_size)
        check_count("num_layers", num_layers)
        check_number("dropout", dropout, low=0, high=1, high_open=True)
        self.gru = nn.GRU(
            self.channels,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        width = hidden_size * (2 if bidirectional else 1) * self.length
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        steps = x.reshape(len(x), self.channels, self.length).transpose(1, 2)  # (N, L, C)
        outputs, _ = self.gru(steps)
        return self.head(self.dropout(outputs.flatten(1)))


@dataclass(frozen=True, kw_only=True)
class ModelInfo(RegistryEntry):
    """A registered network: ``factory(input_shape, num_classes, **kwargs) -> nn.Module``."""

    factory: Callable[..., nn.Module] | str

    def resolve(self) -> Callable[..., nn.Module]:
        return import_object(self.factory)


MODELS: Registry[ModelInfo] = Registry("models", ModelInfo)
MODELS.register(
    ModelInfo(
        name="mlp",
        factory=MLP,
        description="fully connected net; hidden_dims=[] is logistic regression",
    )
)
MODELS.register(
    ModelInfo(
        name="cnn",
        factory=CNN,
        description="small conv net (conv-BN-ReLU-pool stages + MLP head) for image inputs",
    )
)
MODELS.register(
    ModelInfo(
        name="cnn1d",
        factory=CNN1D,
        description="1-D conv net (stride-2 conv stages + linear head) for sequences; "
        "MNIST-1D paper's",
    )
)
MODELS.register(
    ModelInfo(
        name="gru",
        factory=GRU,
        description="bidirectional GRU read at every step + linear head, for sequences; "
        "MNIST-1D paper's",
    )
)


def check_model_args(name: str, kwargs: dict) -> ModelInfo:
    info = MODELS.get(name)
    check_kwargs(
        kwargs,
        info.resolve(),
        what=f"model {info.name!r}",
        exclude=("input_shape", "num_classes"),
    )
    return info


def build_model(name: str, input_shape: Sequence[int], num_classes: int, **kwargs) -> nn.Module:
    """Instantiate the network registered as ``name``."""
    info = check_model_args(name, kwargs)
    return info.resolve()(tuple(input_shape), int(num_classes), **kwargs)

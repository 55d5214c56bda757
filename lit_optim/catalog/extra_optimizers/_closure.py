"""The closure protocol of ``Optimizer.step``, shared by lit-optim's own optimizers."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["evaluate"]


def evaluate(closure: Callable[[], torch.Tensor] | None) -> torch.Tensor | None:
    """Re-evaluate the loss with gradients on (``step`` itself runs under no_grad)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()

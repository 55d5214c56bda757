"""Batched (foreach) reductions over parameters and gradients, shared by the callbacks."""

from __future__ import annotations

import torch
from lightning import LightningModule


def params_with_grads(module: LightningModule) -> tuple[list[str], list[torch.nn.Parameter]]:
    named = [(n, p) for n, p in module.named_parameters() if p.grad is not None]
    return [n for n, _ in named], [p for _, p in named]


def max_abs(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Per-tensor max |x| as one device vector. Unlike a 2-norm it cannot overflow, so it is
    non-finite exactly when a tensor holds an inf or a NaN."""
    if not tensors:
        return torch.zeros(0)
    return torch.stack(torch._foreach_norm(tensors, float("inf")))


def nonfinite_names(names: list[str], tensors: list[torch.Tensor], limit: int = 5) -> list[str]:
    """Names of the first tensors holding an inf or NaN (a host read: only on the bad path)."""
    bad = (~torch.isfinite(max_abs(tensors))).tolist() if tensors else []
    return [n for n, b in zip(names, bad) if b][:limit]

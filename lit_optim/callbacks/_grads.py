"""Batched (foreach) reductions over parameters and gradients, shared by the callbacks.

These run on every optimizer step, so they avoid per-call Python work: the callbacks cache
the (name, parameter) list once in ``setup`` and reduce with single foreach kernels.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import nn

from lit_optim.catalog.torch_private import foreach_norm

__all__ = [
    "any_nonfinite",
    "grad_norms",
    "grads_of",
    "member_norms",
    "named_trainable",
    "nonfinite_names",
    "norms",
    "with_grads",
]


T = TypeVar("T", bound=torch.Tensor)  # a parameter, or a population's stacked tensor


def named_trainable(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def with_grads(named: Sequence[tuple[str, T]]) -> tuple[list[str], list[T]]:
    pairs = [(n, p) for n, p in named if p.grad is not None]
    return [n for n, _ in pairs], [p for _, p in pairs]


def grads_of(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients of ``params`` (``with_grads`` chose them: each has one)."""
    return [p.grad for p in params if p.grad is not None]


def norms(tensors: list[torch.Tensor], norm_type: float = 2.0) -> torch.Tensor:
    """Per-tensor norms as one device vector: float32 for fp16/bf16/float32 tensors (so fp16
    cannot overflow the reduction), float64 when any tensor is float64 (foreach_norm cannot
    narrow float64 to float32, and a float64 run keeps its precision)."""
    wide = [t.dtype == torch.float64 for t in tensors]
    if not any(wide):
        return torch.stack(foreach_norm(tensors, norm_type, dtype=torch.float32))
    if all(wide):
        return torch.stack(foreach_norm(tensors, norm_type))
    narrow = iter(
        foreach_norm([t for t, w in zip(tensors, wide) if not w], norm_type, dtype=torch.float32)
    )
    double = iter(foreach_norm([t for t, w in zip(tensors, wide) if w], norm_type))
    return torch.stack([next(double) if w else next(narrow).double() for w in wide])


def member_norms(tensors: list[torch.Tensor], norm_type: float = 2.0) -> torch.Tensor:
    """[tensors, members] norms of tensors with a leading member axis (a population's stacked
    parameters or gradients): each member's column is what ``norms`` gives that member's own
    tensors, under the same dtype rule."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    return torch.stack(
        [torch.linalg.vector_norm(t.flatten(1), norm_type, dim=1, dtype=dtype) for t in tensors]
    )


# Trainer -> (step key, norms): kept beside the Trainer, not on it (no attribute of ours on a
# Lightning object), and gone with it.
_NORMS_OF_THIS_STEP: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def grad_norms(trainer, params: list[nn.Parameter], norm_type: float = 2.0) -> torch.Tensor:
    """Per-parameter gradient norms for this optimizer step, computed once per step and
    shared: the guard and the clipper both need them in the same hook. (If the clipper runs
    first, the guard reads pre-clip norms: finiteness is the same either way.)"""
    key = (trainer.global_step, norm_type, len(params), id(params[0].grad) if params else 0)
    cached = _NORMS_OF_THIS_STEP.get(trainer)
    if cached is not None and cached[0] == key:
        return cached[1]
    value = norms(grads_of(params), norm_type)
    _NORMS_OF_THIS_STEP[trainer] = (key, value)
    return value


def any_nonfinite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Device bool: does any tensor hold an inf or NaN? Uses 2-norms (an inf-norm kernel is
    ~8× slower on CPU); a NaN or inf makes its norm non-finite. A finite tensor whose norm
    overflows float32 (> 1.8e19) also counts: no healthy run has one."""
    if not tensors:
        return torch.zeros((), dtype=torch.bool)
    return ~torch.isfinite(norms(tensors)).all()


def nonfinite_names(names: list[str], tensors: list[torch.Tensor], limit: int = 5) -> list[str]:
    """Names of the first tensors holding an inf or NaN (exact, elementwise: only on the
    rare bad path)."""
    return [n for n, t in zip(names, tensors) if not torch.isfinite(t).all()][:limit]

"""The one place lit_optim calls torch APIs that torch does not document, each with why no
documented one will do; ``tests/catalog/test_torch_private.py`` checks every function here against
the documented torch it stands in for, on the torch in use.

- ``foreach_*``: the multi-tensor kernels torch.optim and ``clip_grad_norm_`` run on
  (``torch._foreach_*``). The callbacks reduce or scale every gradient on every step: one
  kernel for all tensors, where the documented per-tensor ops cost a launch (and on CPU a
  Python call) per parameter.
- ``batch_norm_train`` / ``batch_norm_backward``: torch's BatchNorm kernels forward with the
  saved batch statistics and backward (``torch.native_batch_norm``, ``aten.native_batch_norm_
  backward``). ``F.batch_norm`` returns only the output; a population folds its members into
  the channels of one BatchNorm and needs both halves (``population/batch_norm.py``).
- ``has_step_hooks``: whether ``optimizer.step()`` would call any step hook. Torch has
  ``register_step_pre/post_hook`` but no way to ask; a population steps its members' shadow
  optimizers (which hold no gradients) only for their hooks, and a no-op step is not free
  (bench/README.md, "Measured costs the code rests on").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.optim import optimizer as _optimizer_module

__all__ = [
    "batch_norm_backward",
    "batch_norm_train",
    "foreach_clamp_",
    "foreach_mul_",
    "foreach_norm",
    "foreach_sub",
    "has_step_hooks",
]


def foreach_norm(
    tensors: Sequence[torch.Tensor], ord: float = 2.0, dtype: torch.dtype | None = None
) -> list[torch.Tensor]:
    """``[torch.linalg.vector_norm(t, ord, dtype=dtype) for t in tensors]`` in one kernel."""
    return list(torch._foreach_norm(list(tensors), ord, dtype=dtype))


def foreach_sub(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``[x - y for x, y in zip(a, b)]`` in one kernel."""
    return list(torch._foreach_sub(list(a), list(b)))


def foreach_mul_(tensors: Sequence[torch.Tensor], scalar: torch.Tensor | float) -> None:
    """``t.mul_(scalar)`` for every tensor, in one kernel."""
    torch._foreach_mul_(list(tensors), scalar)


def foreach_clamp_(tensors: Sequence[torch.Tensor], low: float, high: float) -> None:
    """``t.clamp_(low, high)`` for every tensor, in two kernels."""
    torch._foreach_clamp_min_(list(tensors), low)
    torch._foreach_clamp_max_(list(tensors), high)


def batch_norm_train(x, weight, bias, running_mean, running_var, momentum: float, eps: float):
    """``F.batch_norm(x, running_mean, running_var, weight, bias, True, momentum, eps)``, also
    returning the batch mean and inverse std the backward reads: (output, mean, invstd)."""
    return torch.native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)


def batch_norm_backward(grad_out, x, weight, mean, invstd, eps: float):
    """Gradients (input, weight, bias) of ``batch_norm_train`` at the saved mean / invstd; the
    weight and bias ones are None when ``weight`` is None."""
    affine = weight is not None
    return torch.ops.aten.native_batch_norm_backward(
        grad_out, x, weight, None, None, mean, invstd, True, eps, [True, affine, affine]
    )


def has_step_hooks(optimizer: torch.optim.Optimizer) -> bool:
    """Would ``optimizer.step()`` call a step pre- or post-hook (its own or a global one)?"""
    return bool(
        optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or _optimizer_module._global_optimizer_pre_hooks
        or _optimizer_module._global_optimizer_post_hooks
    )

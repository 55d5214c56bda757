"""Training-mode BatchNorm for a population, with the member axis folded into the channels.

Why: under ``vmap`` torch.func batches ``batch_norm`` with per-member weights by normalizing
without the affine and applying it (and its backward) as separate vmapped ops: on the user CNN
of ``bench/user_cnn.py`` that was near half of a fwd+bwd, slower than the members' plain steps
one after another (bench/README.md, costs). But N members' BatchNorm over C channels
*is* one BatchNorm over N·C channels: the statistics are per channel, so folding the member
axis into the channel axis gives every member its own mean, variance, affine and running
statistics, computed by torch's one fused kernel forward and backward.

``FoldedBatchNorm`` is a ``TorchFunctionMode`` (public torch.overrides API): while it is on,
``F.batch_norm`` in training mode (what ``nn.BatchNorm1d/2d/3d`` call, or a user directly) goes
through ``_BatchNormTrain``, an ``autograd.Function`` whose ``vmap`` rule does the folding
(documented in "Extending torch.func with autograd.Function"). Everything else, and
BatchNorm in eval mode (elementwise with the running statistics, which vmap batches well),
runs as it would without the mode.

The kernels are torch's own BatchNorm forward and backward, reached through
``catalog.torch_private`` (``F.batch_norm`` does not return the batch statistics its backward
reads). ``tests/population/test_population_batch_norm.py`` checks the folding against
torch.func's own batching of ``F.batch_norm``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from lit_optim.catalog.torch_private import batch_norm_backward, batch_norm_train

__all__ = ["FoldedBatchNorm"]


def _fold(x: torch.Tensor, dim: int | None, n: int) -> torch.Tensor:
    """[members …] input (member axis at ``dim``; None: shared by all) -> [B, N·C, …]."""
    x = x.unsqueeze(1).expand(x.shape[0], n, *x.shape[1:]) if dim is None else x.movedim(dim, 1)
    return x.reshape(x.shape[0], n * x.shape[2], *x.shape[3:])


def _flat(t: torch.Tensor | None, dim: int | None, n: int) -> torch.Tensor | None:
    """A per-channel tensor ([N, C] at ``dim``, or [C] shared) -> [N·C]."""
    if t is None:
        return None
    return t.repeat(n) if dim is None else t.movedim(dim, 0).reshape(-1)


def _unfold(t: torch.Tensor, n: int) -> torch.Tensor:
    """[B, N·C, …] -> [B, N, C, …] (member axis 1)."""
    return t.view(t.shape[0], n, t.shape[1] // n, *t.shape[2:])


class _BatchNormBackward(torch.autograd.Function):
    """The backward as a Function of its own, so that under vmap it folds too."""

    @staticmethod
    def forward(grad_out, x, weight, mean, invstd, eps):
        return batch_norm_backward(grad_out, x, weight, mean, invstd, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("BatchNorm in a population has no second derivative")

    @staticmethod
    def vmap(info, in_dims, grad_out, x, weight, mean, invstd, eps):
        n = info.batch_size
        gx, gw, gb = _BatchNormBackward.apply(
            _fold(grad_out, in_dims[0], n),
            _fold(x, in_dims[1], n),
            _flat(weight, in_dims[2], n),
            _flat(mean, in_dims[3], n),
            _flat(invstd, in_dims[4], n),
            eps,
        )
        gw = None if gw is None else gw.view(n, -1)
        gb = None if gb is None else gb.view(n, -1)
        return (_unfold(gx, n), gw, gb), (1, None if gw is None else 0, None if gb is None else 0)


class _BatchNormTrain(torch.autograd.Function):
    """F.batch_norm(training=True): (output, batch mean, batch inverse std); the running
    statistics, when given, are updated in place as torch updates them."""

    @staticmethod
    def forward(x, weight, bias, running_mean, running_var, momentum, eps):
        return batch_norm_train(x, weight, bias, running_mean, running_var, momentum, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight = inputs[0], inputs[1]
        ctx.save_for_backward(x, weight, output[1], output[2])
        ctx.eps = inputs[6]

    @staticmethod
    def backward(ctx, grad_out, grad_mean, grad_invstd):
        x, weight, mean, invstd = ctx.saved_tensors
        gx, gw, gb = _BatchNormBackward.apply(grad_out, x, weight, mean, invstd, ctx.eps)
        return gx, gw, gb, None, None, None, None

    @staticmethod
    def vmap(info, in_dims, x, weight, bias, running_mean, running_var, momentum, eps):
        n = info.batch_size
        stats = []
        for stat, dim in ((running_mean, in_dims[3]), (running_var, in_dims[4])):
            if stat is None:
                stats.append((None, None))
                continue
            if dim is None:  # as vmap itself refuses: one buffer written by every member
                raise RuntimeError(
                    "batch_norm updates running statistics shared by all "
                    "members in place; each member needs its own"
                )
            members = stat.movedim(dim, 0)  # per member, a view of the stacked buffer
            # The kernel updates the flat tensor in place: a view when it can be one, else a
            # copy written back below.
            flat = members.view(-1) if members.is_contiguous() else members.reshape(-1)
            stats.append((members, flat))
        y, mean, invstd = _BatchNormTrain.apply(
            _fold(x, in_dims[0], n),
            _flat(weight, in_dims[1], n),
            _flat(bias, in_dims[2], n),
            stats[0][1],
            stats[1][1],
            momentum,
            eps,
        )
        for members, flat in stats:
            if members is not None and flat.data_ptr() != members.data_ptr():
                members.copy_(flat.view(members.shape))
        return (_unfold(y, n), mean.view(n, -1), invstd.view(n, -1)), (1, 0, 0)


def _batch_norm(
    input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    """F.batch_norm's signature; training mode through the folding Function."""
    if not training:
        return F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    return _BatchNormTrain.apply(input, weight, bias, running_mean, running_var, momentum, eps)[0]


class FoldedBatchNorm(TorchFunctionMode):
    """While on, training-mode ``F.batch_norm`` folds a vmapped member axis into channels."""

    def __torch_function__(self, func, types, args=(), kwargs=None) -> Any:
        if func is F.batch_norm:
            return _batch_norm(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))

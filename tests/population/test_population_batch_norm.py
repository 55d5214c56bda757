"""FoldedBatchNorm: training-mode BatchNorm of N members as one BatchNorm over N·C channels.

The reference is each member's own ``nn.BatchNorm`` run on its own input, one after another
(plain autograd, no vmap), in float64: outputs, gradients of input / weight / bias and the
running statistics must match it to round-off; and so must torch.func's own batching of
``F.batch_norm`` (the mode off).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from lit_optim.population.batch_norm import FoldedBatchNorm

N = 4


def _members(cls, channels, **kwargs):
    torch.manual_seed(0)
    members = [cls(channels, **kwargs).double() for _ in range(N)]
    for m in members:
        if m.affine:
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
        if m.track_running_stats:
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return members


def _per_member(members, xs):
    """The independent reference: each member's module on its own input, plain autograd."""
    outs, grads = [], []
    for m, x in zip(members, xs):
        m.train()
        x = x.clone().requires_grad_()
        loss = m(x).sin().sum()
        params = [p for p in m.parameters()]
        g = torch.autograd.grad(loss, [x, *params])
        outs.append(loss.detach())
        grads.append(g)
    return outs, grads


def _vmapped(members, xs, fold, shared_input=False):
    template = type(members[0])(
        members[0].num_features,
        affine=members[0].affine,
        track_running_stats=members[0].track_running_stats,
    ).double()
    template.train()
    params, buffers = stack_module_state(members)

    def one(p, b, x):
        return functional_call(template, {**p, **b}, (x,)).sin().sum()

    x_dim = None if shared_input else 0
    f = vmap(grad(one, argnums=(0, 2)), in_dims=(0, 0, x_dim))
    x = xs[0] if shared_input else torch.stack(xs)
    if fold:
        with FoldedBatchNorm():
            gp, gx = f(params, buffers, x)
    else:
        gp, gx = f(params, buffers, x)
    return gp, gx, buffers


CASES = [
    ("2d", nn.BatchNorm2d, (6, 3, 5, 5), {}),
    ("1d flat", nn.BatchNorm1d, (7, 3), {}),
    ("1d sequence", nn.BatchNorm1d, (5, 3, 4), {}),
    ("3d", nn.BatchNorm3d, (3, 2, 3, 3, 3), {}),
    ("no affine", nn.BatchNorm2d, (6, 3, 4, 4), {"affine": False}),
    ("no running stats", nn.BatchNorm2d, (6, 3, 4, 4), {"track_running_stats": False}),
]


@pytest.mark.parametrize("label,cls,shape,kwargs", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("shared_input", [False, True], ids=["own input", "shared input"])
def test_members_equal_their_own_batch_norm(label, cls, shape, kwargs, shared_input):
    torch.manual_seed(1)
    xs = [torch.randn(*shape, dtype=torch.float64) for _ in range(N)]
    if shared_input:
        xs = [xs[0]] * N
    members = _members(cls, shape[1], **kwargs)
    gp, gx, buffers = _vmapped(members, xs, fold=True, shared_input=shared_input)
    _, ref = _per_member(members, xs)  # updates each member's own running statistics
    names = [n for n, _ in members[0].named_parameters()]
    for i in range(N):
        torch.testing.assert_close(gx[i], ref[i][0], rtol=0, atol=1e-12)
        for k, name in enumerate(names):
            torch.testing.assert_close(gp[name][i], ref[i][1 + k], rtol=0, atol=1e-12)
        for name, buf in members[i].named_buffers():
            torch.testing.assert_close(buffers[name][i], buf, rtol=0, atol=1e-14)


@pytest.mark.parametrize("label,cls,shape,kwargs", CASES, ids=[c[0] for c in CASES])
def test_folding_matches_torch_func_batching(label, cls, shape, kwargs):
    torch.manual_seed(2)
    xs = [torch.randn(*shape, dtype=torch.float64) for _ in range(N)]
    folded = _vmapped(_members(cls, shape[1], **kwargs), xs, fold=True)
    plain = _vmapped(_members(cls, shape[1], **kwargs), xs, fold=False)
    torch.testing.assert_close(folded[1], plain[1], rtol=0, atol=1e-12)
    for name in plain[0]:
        torch.testing.assert_close(folded[0][name], plain[0][name], rtol=0, atol=1e-12)
    for name in plain[2]:
        torch.testing.assert_close(folded[2][name], plain[2][name], rtol=0, atol=1e-14)


def test_eval_mode_and_other_ops_pass_through():
    bn = _members(nn.BatchNorm2d, 3)[0].eval()
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    with FoldedBatchNorm():
        y = bn(x)
        z = torch.relu(x)
    torch.testing.assert_close(y, bn(x), rtol=0, atol=0)
    torch.testing.assert_close(z, torch.relu(x), rtol=0, atol=0)


def test_running_statistics_shared_by_all_members_are_refused():
    bn = nn.BatchNorm2d(3).double()
    x = torch.randn(N, 4, 3, 5, 5, dtype=torch.float64)

    def one(xi):
        return torch.nn.functional.batch_norm(xi, bn.running_mean, bn.running_var, training=True)

    with FoldedBatchNorm(), pytest.raises(RuntimeError, match="each member needs its own"):
        vmap(one)(x)

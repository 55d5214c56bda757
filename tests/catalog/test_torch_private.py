"""Each function of ``lit_optim.catalog.torch_private`` (torch APIs torch does not document)
against the documented torch it stands in for, on the torch installed; and no other module
of lit_optim or tuning reaches into ``torch._…``."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_post_hook

from lit_optim.catalog import torch_private as tp
from support import ROOT


def _tensors(dtype=torch.float64):
    torch.manual_seed(0)
    return [
        torch.randn(3, 4, dtype=dtype),
        torch.randn(5, dtype=dtype) * 10,
        torch.randn(2, 2, 2, dtype=dtype),
    ]


@pytest.mark.parametrize("ord", [2.0, 1.0, float("inf")])
def test_foreach_norm_is_vector_norm(ord):
    ts = _tensors()
    for got, t in zip(tp.foreach_norm(ts, ord), ts):
        torch.testing.assert_close(got, torch.linalg.vector_norm(t, ord), rtol=1e-15, atol=0)
    half = [t.half() for t in ts]
    got = tp.foreach_norm(half, 2.0, dtype=torch.float32)
    assert all(g.dtype == torch.float32 for g in got)
    for g, t in zip(got, half):
        torch.testing.assert_close(g, torch.linalg.vector_norm(t, 2.0, dtype=torch.float32))


def test_foreach_arithmetic_is_per_tensor_arithmetic():
    a, b = _tensors(), [t * 0.5 + 1 for t in _tensors()]
    for got, x, y in zip(tp.foreach_sub(a, b), a, b):
        torch.testing.assert_close(got, x - y, rtol=0, atol=0)
    scaled = [t.clone() for t in a]
    tp.foreach_mul_(scaled, torch.tensor(0.25, dtype=torch.float64))
    for got, x in zip(scaled, a):
        torch.testing.assert_close(got, x * 0.25, rtol=0, atol=0)
    clamped = [t.clone() for t in a]
    tp.foreach_clamp_(clamped, -0.5, 0.7)
    for got, x in zip(clamped, a):
        torch.testing.assert_close(got, x.clamp(-0.5, 0.7), rtol=0, atol=0)


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_kernels_are_f_batch_norm_and_its_gradient(affine):
    torch.manual_seed(1)
    x = torch.randn(6, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True) if affine else None
    b = torch.randn(3, dtype=torch.float64, requires_grad=True) if affine else None
    rm, rv = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    rm2, rv2 = rm.clone(), rv.clone()
    ref = F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
    y, mean, invstd = tp.batch_norm_train(
        x.detach(),
        None if w is None else w.detach(),
        None if b is None else b.detach(),
        rm2,
        rv2,
        0.1,
        1e-5,
    )
    torch.testing.assert_close(y, ref.detach(), rtol=0, atol=1e-13)
    torch.testing.assert_close(rm2, rm, rtol=0, atol=0)
    torch.testing.assert_close(rv2, rv, rtol=0, atol=0)
    torch.testing.assert_close(mean, x.detach().mean((0, 2, 3)), rtol=0, atol=1e-14)
    var = x.detach().var((0, 2, 3), unbiased=False)
    torch.testing.assert_close(invstd, (var + 1e-5).rsqrt(), rtol=1e-13, atol=0)
    g = torch.randn_like(ref)
    inputs = [x] + ([w, b] if affine else [])
    want = torch.autograd.grad(ref, inputs, g)
    got = tp.batch_norm_backward(
        g, x.detach(), None if w is None else w.detach(), mean, invstd, 1e-5
    )
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-12)
    if affine:
        torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-12)
        torch.testing.assert_close(got[2], want[2], rtol=0, atol=1e-12)


def test_has_step_hooks_sees_own_and_global_hooks():
    opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    assert not tp.has_step_hooks(opt)
    calls = []
    handle = opt.register_step_post_hook(lambda *a: calls.append("post"))
    assert tp.has_step_hooks(opt)
    handle.remove()
    handle = opt.register_step_pre_hook(lambda *a: calls.append("pre"))
    assert tp.has_step_hooks(opt)
    handle.remove()
    assert not tp.has_step_hooks(opt)
    handle = register_optimizer_step_post_hook(lambda *a: calls.append("g"))
    try:
        assert tp.has_step_hooks(opt)
        opt.step()
        assert calls == ["g"]  # the hook that made it true is one step() calls
    finally:
        handle.remove()
    assert not tp.has_step_hooks(opt)


def test_no_other_module_uses_private_torch():
    pattern = re.compile(r"\btorch\.(?:[a-z_]+\.)*_[a-z]")
    offenders = []
    for path in sorted([*ROOT.glob("lit_optim/**/*.py"), *ROOT.glob("tuning/**/*.py")]):
        if path.name == "torch_private.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "private torch APIs outside catalog/torch_private.py:\n" + "\n".join(
        offenders
    )

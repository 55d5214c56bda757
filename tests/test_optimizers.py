"""Optimizer entries: build by name, reject bad values and unknown kwargs, update rules."""

from __future__ import annotations

import pytest
import torch

from lit_optim import OPTIMIZERS, ConfigError, UnknownNameError, build_optimizer


def _quadratic_problem():
    torch.manual_seed(0)
    a = torch.randn(8, 8)
    h = a @ a.T / 8 + torch.eye(8)  # positive definite
    target = torch.randn(8)
    w = torch.nn.Parameter(torch.zeros(8))
    return w, lambda: 0.5 * (w - target) @ h @ (w - target)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_decreases_a_convex_quadratic(name):
    w, loss_fn = _quadratic_problem()
    opt = build_optimizer(name, [w], lr=0.05)
    start = loss_fn().item()
    for _ in range(50):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < 0.5 * start


def test_sgd_momentum_step_matches_the_formula():
    # torch's heavy ball: v <- momentum * v + g ; w <- w - lr * v
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = build_optimizer("sgd", [w], lr=0.1, momentum=0.9)
    expected, v = w.detach().clone(), torch.zeros(2)
    for _ in range(3):
        opt.zero_grad()
        (w**2).sum().backward()
        g = 2 * expected
        v = 0.9 * v + g
        expected = expected - 0.1 * v
        opt.step()
        assert torch.allclose(w.detach(), expected, atol=1e-7)


def test_adamw_decay_is_decoupled_and_adam_decay_is_l2():
    # With a zero gradient, AdamW still shrinks w by lr*wd; Adam turns wd*w into a gradient.
    for name, expected in (("adamw", 1.0 * (1 - 0.1 * 0.5)), ("adam", 1.0 - 0.1)):
        w = torch.nn.Parameter(torch.tensor([1.0]))
        opt = build_optimizer(name, [w], lr=0.1, weight_decay=0.5)
        w.grad = torch.zeros(1)
        opt.step()
        # Adam's first step with gradient wd*w moves by lr * sign (m/sqrt(v) = 1).
        assert w.item() == pytest.approx(expected, abs=1e-6)
    assert OPTIMIZERS.get("adamw").decoupled_weight_decay
    assert not OPTIMIZERS.get("adam").decoupled_weight_decay


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, r"lr must be a finite number > 0, got 0.0"),
        ({"lr": -1e-3}, r"lr must be a finite number > 0"),
        ({"lr": float("nan")}, r"lr must be a finite number > 0"),
        ({"lr": 1e-3, "weight_decay": -1.0}, r"weight_decay must be a finite number ≥ 0"),
        ({"lr": 1e-3, "momentum": 0.9}, r"optimizer 'adam' does not take 'momentum'; it takes: betas"),
    ],
)
def test_bad_optimizer_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_lr_inside_kwargs_points_to_the_flat_hyperparameter():
    from lit_optim.optimizers import check_optimizer_args

    with pytest.raises(ConfigError, match="set 'lr' with model.lr"):
        check_optimizer_args("sgd", 0.1, 0.0, {"lr": 0.2})


def test_unknown_optimizer():
    with pytest.raises(UnknownNameError, match="did you mean 'adam', 'adamw'"):
        build_optimizer("adamm", [torch.nn.Parameter(torch.zeros(1))], lr=0.1)

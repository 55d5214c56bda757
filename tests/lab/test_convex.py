"""Convex problems with known optima: gradient descent against its theoretical bound."""

from __future__ import annotations

import math

import pytest
import torch

from lit_optim import ConfigError
from lit_optim.lab.convex import (
    gd_bound,
    hessian_max_eigenvalue,
    logreg,
    nesterov_bound,
    quadratic,
    run_lecture_nesterov,
    run_optimizer,
)


def test_quadratic_has_the_requested_conditioning_and_optimum():
    problem = quadratic(dim=10, kappa=50.0)
    assert problem.kappa == pytest.approx(50.0)
    assert float(problem.loss(problem.theta_star)) == 0.0


@pytest.mark.parametrize("kappa", [10.0, 100.0])
def test_gradient_descent_stays_under_its_bound_on_the_quadratic(kappa):
    problem = quadratic(dim=20, kappa=kappa)
    gaps = run_optimizer(problem, "sgd", lr=1 / problem.L, steps=200)
    bound = gd_bound(problem, gaps[0], 200)
    assert all(g <= b * (1 + 1e-9) + 1e-15 for g, b in zip(gaps, bound))
    assert gaps[-1] < gaps[0] * 0.5  # and it does make progress


def test_gradient_descent_stays_under_its_bound_on_logistic_regression():
    problem = logreg(l2=1e-2)
    # L-BFGS found the optimum: the gradient there vanishes.
    theta = problem.theta_star.clone().requires_grad_(True)
    problem.loss(theta).backward()
    assert theta.grad.norm() < 1e-6
    gaps = run_optimizer(problem, "sgd", lr=1 / problem.L, steps=100)
    bound = gd_bound(problem, gaps[0], 100)
    assert all(g <= b * (1 + 1e-9) for g, b in zip(gaps, bound))
    assert all(g >= -1e-10 for g in gaps)  # F* really is the minimum


def test_nesterov_bound_is_the_lecture_formula():
    problem = quadratic(dim=4, kappa=10.0)
    r2 = float((problem.theta_star**2).sum())
    assert nesterov_bound(problem, 3) == pytest.approx(
        [2 * problem.L * r2 / (n + 1) ** 2 for n in range(4)]
    )


def test_accelerated_momentum_beats_gd_on_an_ill_conditioned_quadratic():
    problem = quadratic(dim=20, kappa=1000.0)
    beta = (math.sqrt(problem.kappa) - 1) / (math.sqrt(problem.kappa) + 1)
    gd = run_optimizer(problem, "sgd", lr=1 / problem.L, steps=300)
    nag = run_optimizer(problem, "nesterov", lr=1 / problem.L, steps=300, momentum=beta)
    assert nag[-1] < gd[-1] * 1e-3


def test_bad_convex_arguments():
    with pytest.raises(ConfigError, match="kappa >= 1"):
        quadratic(kappa=0.5)
    with pytest.raises(ConfigError, match="l2 > 0"):
        logreg(l2=0.0)


@pytest.mark.parametrize("name", ["quadratic", "logreg"])
def test_both_nesterovs_stay_under_the_accelerated_bound(name):
    problem = quadratic(dim=20, kappa=1000.0) if name == "quadratic" else logreg(l2=1e-2)
    bound = nesterov_bound(problem, 300)
    lecture = run_lecture_nesterov(problem, 1 / problem.L, 300)
    beta = (math.sqrt(problem.kappa) - 1) / (math.sqrt(problem.kappa) + 1)
    constant = run_optimizer(problem, "nesterov", lr=1 / problem.L, steps=300, momentum=beta)
    for name, gaps in (("lecture", lecture), ("torch constant-β", constant)):
        assert all(g <= b for g, b in zip(gaps, bound)), name
    assert lecture[-1] < lecture[0] * 1e-3  # and the lecture method does converge


def test_lecture_nesterov_follows_its_recursion_written_out():
    problem = quadratic(dim=5, kappa=10.0)
    gaps = run_lecture_nesterov(problem, 0.05, 3)
    # y_n = θ_n + n/(n+3)(θ_n − θ_{n−1}), θ_{n+1} = y_n − γ F'(y_n); F' = H(θ − θ*) here.
    eye = torch.eye(5, dtype=torch.float64)
    h = torch.autograd.functional.hessian(problem.loss, problem.theta_star.clone())
    assert torch.allclose(h, h.T) and not torch.allclose(h, eye)
    theta = prev = problem.theta0.clone()
    expected = [float(problem.loss(theta))]
    for n in range(3):
        y = theta + n / (n + 3) * (theta - prev)
        prev, theta = theta, y - 0.05 * h @ (y - problem.theta_star)
        expected.append(float(problem.loss(theta)))
    assert gaps == pytest.approx(expected, rel=1e-12)


def test_logreg_smoothness_comes_from_the_hessian():
    problem = logreg(l2=1e-2)
    # Independent: the full 650 × 650 Hessian at θ_0 and at θ*, eigenvalues by LAPACK.
    top = max(
        float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(problem.loss, t)).max())
        for t in (problem.theta0, problem.theta_star)
    )
    assert problem.L == pytest.approx(top, rel=1e-6)
    assert 1.0 < problem.L < 1.3 and problem.kappa == pytest.approx(problem.L / 1e-2)
    q = quadratic(dim=8, kappa=30.0)
    assert hessian_max_eigenvalue(q.loss, q.theta0) == pytest.approx(q.L, rel=1e-8)

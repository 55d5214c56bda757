"""Convex problems with a known optimum, for checking optimizers against the theory.

- ``quadratic``: F(θ) = ½ (θ-θ*)ᵀ H (θ-θ*) with H's eigenvalues spread log-uniformly in
  [μ, L] = [1, κ], so the condition number is exactly κ and F* = 0.
- ``logreg``: L2-regularized multinomial logistic regression on the digits data; F* is
  found with L-BFGS to high precision.

``run_optimizer`` runs any registered optimizer full-batch and returns F(θ_n) − F* per step;
``run_lecture_nesterov`` runs the lectures' accelerated method itself (torch's SGD-nesterov
is heavy-ball-like momentum with a constant β, not it). The bounds are the lectures':
gradient descent with step 1/L on a μ-strongly convex, L-smooth F satisfies
F(θ_n) − F* ≤ (1 − 1/κ)^n (F(θ_0) − F*); Nesterov's method on a convex L-smooth F satisfies
F(θ_n) − F* ≤ 2L‖θ_0 − θ*‖² / (n + 1)².
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.optimizers import build_optimizer

__all__ = [
    "ConvexProblem",
    "gd_bound",
    "hessian_max_eigenvalue",
    "logreg",
    "nesterov_bound",
    "quadratic",
    "run_lecture_nesterov",
    "run_optimizer",
]


@dataclass
class ConvexProblem:
    """F, its minimizer and minimum, and the smoothness / strong-convexity constants."""

    name: str
    loss: Callable[[torch.Tensor], torch.Tensor]
    theta0: torch.Tensor
    theta_star: torch.Tensor
    f_star: float
    L: float
    mu: float

    @property
    def kappa(self) -> float:
        return self.L / self.mu


def quadratic(dim: int = 20, kappa: float = 100.0, seed: int = 0) -> ConvexProblem:
    if dim < 1 or kappa < 1:
        raise ConfigError(f"quadratic needs dim >= 1 and kappa >= 1, got {dim}, {kappa}")
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    eig = torch.logspace(0, math.log10(kappa), dim, dtype=torch.float64)
    h = q @ torch.diag(eig) @ q.T
    theta_star = torch.randn(dim, generator=gen, dtype=torch.float64)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        d = theta - theta_star
        return 0.5 * d @ h @ d

    return ConvexProblem(
        "quadratic",
        loss,
        torch.zeros(dim, dtype=torch.float64),
        theta_star,
        0.0,
        L=float(eig.max()),
        mu=float(eig.min()),
    )


def logreg(l2: float = 1e-2, seed: int = 0) -> ConvexProblem:
    """Softmax regression on the 1,797 digits (64 features scaled to [0, 1], a bias column)."""
    from sklearn.datasets import load_digits

    if l2 <= 0:
        raise ConfigError(f"logreg needs l2 > 0 (strong convexity), got {l2}")
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float64)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    y = torch.tensor(digits.target)
    n, d = x.shape
    k = 10

    def loss(theta: torch.Tensor) -> torch.Tensor:
        w = theta.view(d, k)
        return torch.nn.functional.cross_entropy(x @ w, y) + 0.5 * l2 * (theta @ theta)

    theta = torch.zeros(d * k, dtype=torch.float64, requires_grad=True)
    lbfgs = torch.optim.LBFGS(
        [theta],
        lr=1,
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        lbfgs.zero_grad()
        value = loss(theta)
        value.backward()
        return value

    for _ in range(5):
        lbfgs.step(closure)
    star = theta.detach().clone()
    theta0 = torch.zeros(d * k, dtype=torch.float64)
    # L from the Hessian itself, at the start and at the optimum (the softmax curvature is
    # largest where the predictions are uniform, i.e. at θ_0 = 0): ≈ 1.15 for l2 = 1e-2. The
    # textbook bound ½ λmax(XᵀX)/n + l2 = 5.73 would overstate κ about 5×.
    L = max(hessian_max_eigenvalue(loss, theta0), hessian_max_eigenvalue(loss, star))
    return ConvexProblem("logreg", loss, theta0, star, float(loss(star)), L=L, mu=l2)


def hessian_max_eigenvalue(
    loss: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    iterations: int = 200,
    seed: int = 0,
) -> float:
    """λmax of the Hessian of ``loss`` at ``theta``, by power iteration on Hessian-vector
    products (the Hessian is PSD for a convex loss, so the top eigenvalue dominates)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
    v /= v.norm()
    value = 0.0
    for _ in range(iterations):
        _, hv = torch.autograd.functional.hvp(loss, theta, v)
        value = float(v @ hv)
        v = hv / hv.norm()
    return value


def run_optimizer(
    problem: ConvexProblem, name: str, lr: float, steps: int, **kwargs
) -> list[float]:
    """F(θ_n) − F* for n = 0 … steps, full-batch, with the optimizer registered as ``name``."""
    theta = torch.nn.Parameter(problem.theta0.clone())
    opt = build_optimizer(name, [theta], lr=lr, **kwargs)
    gaps = [float(problem.loss(theta.detach())) - problem.f_star]
    for _ in range(steps):

        def closure():
            opt.zero_grad()
            value = problem.loss(theta)
            value.backward()
            return value

        opt.step(closure)
        gaps.append(float(problem.loss(theta.detach())) - problem.f_star)
    return gaps


def run_lecture_nesterov(problem: ConvexProblem, lr: float, steps: int) -> list[float]:
    """F(θ_n) − F* for the lectures' accelerated gradient method:
    y_n = θ_n + n/(n+3) (θ_n − θ_{n−1}),  θ_{n+1} = y_n − γ F'(y_n),  θ_{−1} = θ_0."""
    theta = prev = problem.theta0.clone()
    gaps = [float(problem.loss(theta)) - problem.f_star]
    for n in range(steps):
        y = (theta + n / (n + 3) * (theta - prev)).requires_grad_(True)
        (g,) = torch.autograd.grad(problem.loss(y), y)
        prev, theta = theta, (y - lr * g).detach()
        gaps.append(float(problem.loss(theta)) - problem.f_star)
    return gaps


def gd_bound(problem: ConvexProblem, gap0: float, steps: int) -> list[float]:
    """(1 − 1/κ)^n · (F(θ_0) − F*): gradient descent with step 1/L."""
    return [gap0 * (1 - 1 / problem.kappa) ** n for n in range(steps + 1)]


def nesterov_bound(problem: ConvexProblem, steps: int) -> list[float]:
    """2L‖θ_0 − θ*‖² / (n + 1)²: Nesterov's accelerated gradient on a convex L-smooth F."""
    r2 = float(((problem.theta0 - problem.theta_star) ** 2).sum())
    return [2 * problem.L * r2 / (n + 1) ** 2 for n in range(steps + 1)]

"""Convex problems with a known optimum, for checking optimizers against the theory.

- ``quadratic``: F(θ) = ½ (θ-θ*)ᵀ H (θ-θ*) with H's eigenvalues spread log-uniformly in
  [μ, L] = [1, κ], so the condition number is exactly κ and F* = 0.
- ``logreg``: L2-regularized multinomial logistic regression on the digits data; F* is
  found with L-BFGS to high precision.

``run_optimizer`` runs any registered optimizer full-batch and returns F(θ_n) − F* per step;
the bounds are the lectures': gradient descent with step 1/L on a μ-strongly convex, L-smooth
F satisfies F(θ_n) − F* ≤ (1 − 1/κ)^n (F(θ_0) − F*); Nesterov's method on a convex L-smooth F
satisfies F(θ_n) − F* ≤ 2L‖θ_0 − θ*‖² / (n + 1)².
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lit_optim.errors import ConfigError
from lit_optim.optimizers import build_optimizer

__all__ = ["ConvexProblem", "gd_bound", "logreg", "nesterov_bound", "quadratic", "run_optimizer"]


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

    return ConvexProblem("quadratic", loss, torch.zeros(dim, dtype=torch.float64), theta_star,
                         0.0, L=float(eig.max()), mu=float(eig.min()))


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

    # Smoothness: the softmax Hessian is ≤ ½ I per sample, so L ≤ ½ λmax(XᵀX)/n + l2.
    L = 0.5 * float(torch.linalg.eigvalsh(x.T @ x / n).max()) + l2
    theta = torch.zeros(d * k, dtype=torch.float64, requires_grad=True)
    lbfgs = torch.optim.LBFGS([theta], lr=1, max_iter=500, tolerance_grad=1e-12,
                              tolerance_change=1e-14, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        value = loss(theta)
        value.backward()
        return value

    for _ in range(5):
        lbfgs.step(closure)
    star = theta.detach().clone()
    return ConvexProblem("logreg", loss, torch.zeros(d * k, dtype=torch.float64), star,
                         float(loss(star)), L=L, mu=l2)


def run_optimizer(problem: ConvexProblem, name: str, lr: float, steps: int,
                  **kwargs) -> list[float]:
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


def gd_bound(problem: ConvexProblem, gap0: float, steps: int) -> list[float]:
    """(1 − 1/κ)^n · (F(θ_0) − F*): gradient descent with step 1/L."""
    return [gap0 * (1 - 1 / problem.kappa) ** n for n in range(steps + 1)]


def nesterov_bound(problem: ConvexProblem, steps: int) -> list[float]:
    """2L‖θ_0 − θ*‖² / (n + 1)²: Nesterov's accelerated gradient on a convex L-smooth F."""
    r2 = float(((problem.theta0 - problem.theta_star) ** 2).sum())
    return [2 * problem.L * r2 / (n + 1) ** 2 for n in range(steps + 1)]

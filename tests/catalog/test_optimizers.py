"""Every optimizer by name: the update rule against its formula, written out here, and
registry-wide checks (a convex quadratic decreases; bad kwargs are named)."""

from __future__ import annotations

import math

import pytest
import torch

from lit_optim import OPTIMIZERS, ConfigError, UnknownNameError, build_optimizer
from lit_optim.catalog.optimizers import check_optimizer_args


@pytest.fixture(autouse=True)
def _float64():
    # Tight comparisons with the formulas; restored so no other test sees float64.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# The problem: f(w) = ½ Σ a_i w_i² + b·w, so g = a ⊙ w + b, known in closed form.
A = torch.tensor([1.0, 3.0, 0.5, 2.0], dtype=torch.float64)
B = torch.tensor([0.5, -1.0, 0.2, 0.0], dtype=torch.float64)
W0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
STEPS = 3


def grad(w):
    return A * w + B


def run_torch(name, lr, weight_decay=0.0, w0=W0, **kwargs):
    w = torch.nn.Parameter(w0.clone())
    opt = build_optimizer(name, [w], lr=lr, weight_decay=weight_decay, **kwargs)
    path = []
    for _ in range(STEPS):

        def closure():
            opt.zero_grad()
            loss = 0.5 * (A * w * w).sum() + (B * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        path.append(w.detach().clone())
    return path


# --- reference update rules -----------------------------------------------------------------
def ref_sgd(lr, wd, momentum=0.0, dampening=0.0, nesterov=False):
    w, v, path = W0.clone(), None, []
    for _ in range(STEPS):
        g = grad(w) + wd * w
        if momentum:
            # torch: the first step's buffer is the raw gradient, later ones βv + (1-dampening)g.
            v = g.clone() if v is None else momentum * v + (1 - dampening) * g
            g = g + momentum * v if nesterov else v
        w = w - lr * g
        path.append(w)
    return path


def ref_adagrad(lr, wd, eps=1e-10):
    w, s, path = W0.clone(), torch.zeros(4), []
    for _ in range(STEPS):
        g = grad(w) + wd * w
        s = s + g * g
        w = w - lr * g / (s.sqrt() + eps)
        path.append(w)
    return path


def ref_rmsprop(lr, wd, alpha=0.99, eps=1e-8):
    w, sq, path = W0.clone(), torch.zeros(4), []
    for _ in range(STEPS):
        g = grad(w) + wd * w
        sq = alpha * sq + (1 - alpha) * g * g
        w = w - lr * g / (sq.sqrt() + eps)
        path.append(w)
    return path


def ref_adadelta(lr, wd, rho=0.9, eps=1e-6):
    w, sq, acc, path = W0.clone(), torch.zeros(4), torch.zeros(4), []
    for _ in range(STEPS):
        g = grad(w) + wd * w
        sq = rho * sq + (1 - rho) * g * g
        delta = (acc + eps).sqrt() / (sq + eps).sqrt() * g
        acc = rho * acc + (1 - rho) * delta * delta
        w = w - lr * delta
        path.append(w)
    return path


def ref_adam(lr, wd, b1=0.9, b2=0.999, eps=1e-8, amsgrad=False, decoupled=False):
    w, m, v, vmax, path = W0.clone(), torch.zeros(4), torch.zeros(4), torch.zeros(4), []
    for t in range(1, STEPS + 1):
        g = grad(w)
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = torch.maximum(vmax, v)
        v_hat = (vmax if amsgrad else v) / (1 - b2**t)
        w = w - lr * (m / (1 - b1**t)) / (v_hat.sqrt() + eps)
        path.append(w)
    return path


def ref_nadam(lr, wd, b1=0.9, b2=0.999, eps=1e-8, psi=0.004):
    w, m, v, mu_prod, path = W0.clone(), torch.zeros(4), torch.zeros(4), 1.0, []
    for t in range(1, STEPS + 1):
        g = grad(w) + wd * w
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_prod *= mu_t
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denom = (v / (1 - b2**t)).sqrt() + eps
        w = w - lr * (1 - mu_t) / (1 - mu_prod) * g / denom
        w = w - lr * mu_next / (1 - mu_prod * mu_next) * m / denom
        path.append(w)
    return path


def ref_radam(lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    w, m, v, path = W0.clone(), torch.zeros(4), torch.zeros(4), []
    rho_inf = 2 / (1 - b2) - 1
    for t in range(1, STEPS + 1):
        g = grad(w) + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > 5:  # variance is tractable: rectified adaptive step
            r = math.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            w = w - lr * m_hat * r * math.sqrt(1 - b2**t) / (v.sqrt() + eps)
        else:  # early steps: plain momentum SGD
            w = w - lr * m_hat
        path.append(w)
    return path


def ref_adamax(lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    w, m, u, path = W0.clone(), torch.zeros(4), torch.zeros(4), []
    for t in range(1, STEPS + 1):
        g = grad(w) + wd * w
        m = b1 * m + (1 - b1) * g
        u = torch.maximum(b2 * u, g.abs() + eps)
        w = w - lr / (1 - b1**t) * m / u
        path.append(w)
    return path


def ref_adafactor(lr, wd, beta2_decay=-0.8, eps2=1e-3, d=1.0):
    # A vector parameter: the second moment is not factored.
    w, v, path = W0.clone(), torch.zeros(4), []
    eps1 = torch.finfo(w.dtype).eps
    for t in range(1, STEPS + 1):
        g = grad(w)
        rho = min(lr, 1 / math.sqrt(t))
        alpha = max(eps2, (w.norm() / math.sqrt(w.numel())).item()) * rho
        w = w * (1 - lr * wd)
        v = v + (g * g - v) * t**beta2_decay
        u = g / v.clamp(min=eps1 * eps1).sqrt()
        w = w - alpha / max(1.0, (u.norm() / (math.sqrt(u.numel()) * d)).item()) * u
        path.append(w)
    return path


def ref_lbfgs(lr, wd):
    # One iteration per step() (max_iter=1), no line search: two-loop recursion.
    w, path, s_hist, y_hist = W0.clone(), [], [], []
    g_prev = d_prev = t_prev = None
    for k in range(STEPS):
        g = grad(w)
        if k == 0:
            d, t = -g, min(1.0, 1.0 / g.abs().sum().item()) * lr
        else:
            y, s = g - g_prev, d_prev * t_prev
            if y @ s > 1e-10:
                y_hist.append(y)
                s_hist.append(s)
            q, alphas = -g, []
            for s_i, y_i in zip(reversed(s_hist), reversed(y_hist)):
                a_i = (s_i @ q) / (y_i @ s_i)
                alphas.append(a_i)
                q = q - a_i * y_i
            r = q * (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
            for (s_i, y_i), a_i in zip(zip(s_hist, y_hist), reversed(alphas)):
                r = r + s_i * (a_i - (y_i @ r) / (y_i @ s_i))
            d, t = r, lr
        w = w + t * d
        g_prev, d_prev, t_prev = g, d, t
        path.append(w)
    return path


def ref_lars(lr, wd, momentum=0.9, trust_coefficient=0.001):
    w, v, path = W0.clone(), torch.zeros(4), []
    for _ in range(STEPS):
        g = grad(w)
        local = trust_coefficient * w.norm() / (g.norm() + wd * w.norm())
        v = momentum * v + lr * local * (g + wd * w)
        w = w - v
        path.append(w)
    return path


def ref_lamb(lr, wd, b1=0.9, b2=0.999, eps=1e-6):
    w, m, v, path = W0.clone(), torch.zeros(4), torch.zeros(4), []
    for t in range(1, STEPS + 1):
        g = grad(w)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        r = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps) + wd * w
        w = w - lr * (w.norm() / r.norm()) * r
        path.append(w)
    return path


def ref_lookahead(lr, wd, k=2, alpha=0.5):
    fast = ref_adam(lr, wd)  # the base's fast steps, before any sync
    slow = W0 + alpha * (fast[1] - W0)  # at step k=2 the slow weights move, fast jumps there
    # Step 3 is the base's step from the synced point, with the base's state intact.
    g_state = _adam_state_after(lr, wd, [W0, fast[0]])
    third = _adam_step(slow, *g_state, t=3, lr=lr, wd=wd)
    return [fast[0], slow, third]


def _adam_state_after(lr, wd, points, b1=0.9, b2=0.999):
    m, v = torch.zeros(4), torch.zeros(4)
    for w in points:
        g = grad(w) + wd * w
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    return m, v


def _adam_step(w, m, v, *, t, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    g = grad(w) + wd * w
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    return w - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)


CASES = {
    # name: (lr, weight_decay, optimizer kwargs, reference path)
    "sgd": (0.1, 0.01, {}, lambda: ref_sgd(0.1, 0.01)),
    "momentum": (0.1, 0.01, {}, lambda: ref_sgd(0.1, 0.01, momentum=0.9)),
    "nesterov": (0.1, 0.01, {}, lambda: ref_sgd(0.1, 0.01, momentum=0.9, nesterov=True)),
    "adagrad": (0.1, 0.01, {}, lambda: ref_adagrad(0.1, 0.01)),
    "rmsprop": (0.01, 0.01, {}, lambda: ref_rmsprop(0.01, 0.01)),
    "adadelta": (1.0, 0.01, {}, lambda: ref_adadelta(1.0, 0.01)),
    "adam": (0.1, 0.01, {}, lambda: ref_adam(0.1, 0.01)),
    "amsgrad": (0.1, 0.01, {}, lambda: ref_adam(0.1, 0.01, amsgrad=True)),
    "adamw": (0.1, 0.1, {}, lambda: ref_adam(0.1, 0.1, decoupled=True)),
    "nadam": (0.1, 0.01, {}, lambda: ref_nadam(0.1, 0.01)),
    "radam": (0.1, 0.01, {}, lambda: ref_radam(0.1, 0.01)),
    "adamax": (0.1, 0.01, {}, lambda: ref_adamax(0.1, 0.01)),
    "adafactor": (0.1, 0.01, {}, lambda: ref_adafactor(0.1, 0.01)),
    "lbfgs": (0.5, 0.0, {"max_iter": 1}, lambda: ref_lbfgs(0.5, 0.0)),
    "lars": (1.0, 0.01, {}, lambda: ref_lars(1.0, 0.01)),
    "lamb": (0.1, 0.01, {}, lambda: ref_lamb(0.1, 0.01)),
    "lookahead": (
        0.1,
        0.01,
        {"base": "adam", "k": 2, "alpha": 0.5},
        lambda: ref_lookahead(0.1, 0.01),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_update_rule_matches_the_formula(name):
    lr, wd, kwargs, reference = CASES[name]
    got = run_torch(name, lr, wd, **kwargs)
    for step, (g, r) in enumerate(zip(got, reference()), start=1):
        assert torch.allclose(g, r, rtol=1e-9, atol=1e-12), f"{name} step {step}: {g} vs {r}"


def test_dampening_equal_to_beta_gives_the_ema_form_of_momentum():
    # The EMA recursion written out on its own (not through ref_sgd's torch algebra):
    # m_1 = g_1 (torch seeds the buffer with the first raw gradient), then
    # m_t = β m_{t-1} + (1-β) g_t, and w ← w - lr m. torch computes βm + (1-dampening)g, so
    # the EMA is dampening = β.
    beta, lr = 0.9, 0.1
    w, m, ema = W0.clone(), None, []
    for _ in range(STEPS):
        g = A * w + B
        m = g if m is None else beta * m + (1 - beta) * g
        w = w - lr * m
        ema.append(w)
    got = run_torch("sgd", lr, momentum=beta, dampening=beta)
    for step, (g, r) in enumerate(zip(got, ema), start=1):
        assert torch.allclose(g, r, rtol=1e-12), f"step {step}: {g} vs {r}"
    # dampening = 1-β (the README's old claim) gives βm + βg: not the EMA from step 2 on.
    wrong = run_torch("sgd", lr, momentum=beta, dampening=1 - beta)
    assert torch.allclose(wrong[0], ema[0]) and not torch.allclose(wrong[1], ema[1])


def test_muon_orthogonalizes_the_momentum_of_matrices():
    torch.set_default_dtype(torch.float32)  # Muon's Newton-Schulz runs in bfloat16 anyway
    try:
        torch.manual_seed(0)
        w0, target = torch.randn(4, 3), torch.randn(4, 3)
        w = torch.nn.Parameter(w0.clone())
        bias = torch.nn.Parameter(torch.zeros(3))
        opt = build_optimizer("muon", [w, bias], lr=0.02, weight_decay=0.1)
        assert opt.muon.param_groups[0]["params"] == [w]
        assert opt.adamw.param_groups[0]["params"] == [bias]
        buf, ref = torch.zeros(4, 3), w0.clone()
        a, b, c = 3.4445, -4.775, 2.0315
        for _ in range(STEPS):
            opt.zero_grad()
            (0.5 * ((w - target) ** 2).sum() + bias.sum()).backward()
            opt.step()
            g = ref - target
            buf = buf + (g - buf) * (1 - 0.95)
            update = g + (buf - g) * 0.95  # Nesterov
            x = update.to(torch.bfloat16).T  # tall matrices are transposed
            x = x / x.norm().clamp(min=1e-7)
            for _ in range(5):
                gram = x @ x.T
                x = a * x + (b * gram + c * gram @ gram) @ x
            ref = ref * (1 - 0.02 * 0.1) - 0.02 * 0.2 * math.sqrt(4) * x.T.to(torch.float32)
        assert torch.allclose(w.detach(), ref, atol=2e-2)
    finally:
        torch.set_default_dtype(torch.float64)


# --- registry-wide ----------------------------------------------------------------------------
# Registry-wide behaviour (a convex quadratic decreases, kwargs are checked, state
# round-trips, a Lightning fit runs) is the plugin contract: tests/test_plugins.py.


def test_capability_metadata():
    assert OPTIMIZERS.get("adamw").population_rule == "adamw"
    assert OPTIMIZERS.get("lamb").population_rule is None
    assert OPTIMIZERS.get("momentum").has_momentum and OPTIMIZERS.get("adam").has_betas
    assert not OPTIMIZERS.get("lbfgs").supports_weight_decay
    assert OPTIMIZERS.get("heavy_ball").name == "momentum"


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("adam", {"lr": 0.0}, r"lr must be a finite number > 0, got 0.0"),
        ("adam", {"lr": float("nan")}, r"lr must be a finite number > 0"),
        ("adam", {"lr": 1e-3, "weight_decay": -1.0}, r"weight_decay must be a finite number ≥ 0"),
        (
            "adam",
            {"lr": 1e-3, "momentum": 0.9},
            r"optimizer 'adam' does not take 'momentum'; it takes: betas",
        ),
        ("lookahead", {"lr": 1e-3, "base": "adamx"}, r"unknown optimizer 'adamx'; did you mean"),
        ("lookahead", {"lr": 1e-3, "base": "lookahead"}, r"cannot wrap itself"),
        ("lookahead", {"lr": 1e-3, "k": 0}, r"k must be an integer >= 1"),
        (
            "lookahead",
            {"lr": 1e-3, "base": "sgd", "betas": (0.9, 0.9)},
            r"optimizer 'lookahead' .base 'sgd'. does not take 'betas'",
        ),
    ],
)
def test_bad_optimizer_arguments(name, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_optimizer(name, [torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_lr_inside_kwargs_points_to_the_flat_hyperparameter():
    with pytest.raises(ConfigError, match="set 'lr' with model.lr"):
        check_optimizer_args("sgd", 0.1, 0.0, {"lr": 0.2})


def test_unknown_optimizer():
    with pytest.raises(UnknownNameError, match="did you mean 'adam', 'radam', 'nadam', 'adamw'"):
        build_optimizer("adamm", [torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_lookahead_state_survives_a_round_trip():
    w = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer("lookahead", [w], lr=0.1, base="momentum", k=3)
    for _ in range(2):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
    clone = build_optimizer("lookahead", [w], lr=0.1, base="momentum", k=3)
    clone.load_state_dict(opt.state_dict())
    assert clone.fast_steps == 2 and clone.param_groups is clone.base.param_groups
    assert torch.equal(clone.state[w]["slow"], opt.state[w]["slow"])
    assert torch.equal(clone.base.state[w]["momentum_buffer"], opt.base.state[w]["momentum_buffer"])

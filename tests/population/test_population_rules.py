"""Population update rules against torch.optim itself: member i of a population equals the
sequential optimizer with member i's hyperparameters (float64, per-step lr changes included)."""

from __future__ import annotations

import pytest
import torch

from lit_optim import ConfigError
from lit_optim.catalog.optimizers import build_optimizer
from lit_optim.population import PopulationUpdate

SHAPES = [(3, 5), (5,)]
STEPS = 6

MEMBERS = {
    "sgd": [
        {"lr": 0.1, "weight_decay": 0.0},
        {"lr": 0.05, "weight_decay": 1e-2},
        {"lr": 0.2, "weight_decay": 1e-3, "momentum": 0.5, "dampening": 0.1},
        {"lr": 0.01, "weight_decay": 0.0, "momentum": 0.9},
    ],
    "momentum": [
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 1e-2},
        {"lr": 0.2, "momentum": 0.99, "dampening": 0.9},
        {"lr": 0.01, "momentum": 0.0},
    ],
    "nesterov": [
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 1e-2},
        {"lr": 0.2, "momentum": 0.99},
        {"lr": 0.01, "momentum": 0.7},
    ],
    "adam": [
        {"lr": 1e-3},
        {"lr": 3e-3, "weight_decay": 1e-2, "betas": (0.8, 0.99)},
        {"lr": 1e-2, "eps": 1e-6},
        {"lr": 3e-4, "betas": (0.95, 0.9999), "weight_decay": 1e-4},
    ],
    "amsgrad": [
        {"lr": 1e-3},
        {"lr": 3e-3, "weight_decay": 1e-2, "betas": (0.8, 0.99)},
        {"lr": 1e-2, "eps": 1e-6},
        {"lr": 3e-4, "betas": (0.95, 0.9999)},
    ],
    "adamw": [
        {"lr": 1e-3, "weight_decay": 1e-2},
        {"lr": 3e-3, "weight_decay": 0.1, "betas": (0.8, 0.99)},
        {"lr": 1e-2, "weight_decay": 0.0, "eps": 1e-6},
        {"lr": 3e-4, "weight_decay": 0.3},
    ],
    "rmsprop": [
        {"lr": 1e-3},
        {"lr": 3e-3, "weight_decay": 1e-2, "alpha": 0.9},
        {"lr": 1e-2, "momentum": 0.9},
        {"lr": 3e-4, "momentum": 0.5, "eps": 1e-6},
    ],
    "adagrad": [
        {"lr": 0.05},
        {"lr": 0.1, "weight_decay": 1e-2, "lr_decay": 1e-2},
        {"lr": 0.01, "eps": 1e-8},
        {"lr": 0.2, "initial_accumulator_value": 0.1},
    ],
}


def _grads(step: int, n: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(n, *shape, generator=gen, dtype=torch.float64) for shape in SHAPES]


def _lr_scale(step: int) -> float:  # a schedule: the lr changes every step
    return 1.0 / (1 + 0.3 * step)


def _run(name: str, members: list[dict], extra: dict | None = None):
    n = len(members)
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(n, *shape, generator=gen, dtype=torch.float64) for shape in SHAPES]
    members = [{**m, **(extra or {})} for m in members]
    # The population.
    stacked = [s.clone().requires_grad_(True) for s in start]
    population = PopulationUpdate(name, stacked, members)
    base = [m["lr"] for m in members]
    for step in range(STEPS):
        population.set_lr([lr * _lr_scale(step) for lr in base])
        for p, g in zip(stacked, _grads(step, n)):
            p.grad = g
        population.step()
    # Each member alone, with torch.optim through the registry.
    alone = []
    for i, m in enumerate(members):
        params = [torch.nn.Parameter(s[i].clone()) for s in start]
        kwargs = {k: v for k, v in m.items() if k != "lr"}
        opt = build_optimizer(name, params, lr=m["lr"], **kwargs)
        for step in range(STEPS):
            for group in opt.param_groups:
                group["lr"] = m["lr"] * _lr_scale(step)
            for p, g in zip(params, _grads(step, n)):
                p.grad = g[i].clone()
            opt.step()
        alone.append([p.detach() for p in params])
    return stacked, alone


# Populations where every member has momentum, or none has: the rules skip the per-member
# masking there, so these take other code than the mixed populations above.
UNIFORM = {
    "sgd": [
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 1e-2},
        {"lr": 0.2, "momentum": 0.3, "dampening": 0.5},
    ],
    "momentum": [{"lr": 0.1, "momentum": 0.0}, {"lr": 0.05, "momentum": 0.0, "weight_decay": 1e-2}],
    "rmsprop": [{"lr": 1e-3, "momentum": 0.9}, {"lr": 3e-3, "momentum": 0.5, "alpha": 0.9}],
}


CASES = [(name, MEMBERS[name]) for name in sorted(MEMBERS)] + [
    (name, UNIFORM[name]) for name in sorted(UNIFORM)
]


@pytest.mark.parametrize(
    ("name", "members"),
    CASES,
    ids=[
        f"{name}-{'mixed' if i < len(MEMBERS) else 'uniform'}" for i, (name, _) in enumerate(CASES)
    ],
)
def test_each_member_equals_its_sequential_torch_optimizer(name, members):
    stacked, alone = _run(name, members)
    for i, weights in enumerate(alone):
        for p, w in zip(stacked, weights):
            assert torch.allclose(p[i].detach(), w, rtol=0, atol=1e-12), (name, i)
    # and the members really differ (distinct hyperparameters took effect)
    assert not torch.allclose(stacked[0][0], stacked[0][1])


@pytest.mark.parametrize(
    ("name", "extra"), [("rmsprop", {"centered": True}), ("adam", {"amsgrad": True})]
)
def test_structural_options_shared_by_all_members(name, extra):
    stacked, alone = _run(name, MEMBERS[name], extra)
    for i, weights in enumerate(alone):
        for p, w in zip(stacked, weights):
            assert torch.allclose(p[i].detach(), w, rtol=0, atol=1e-12)


def test_a_member_without_gradient_steps_is_left_alone_and_bad_input_is_refused():
    with pytest.raises(ConfigError, match="nesterov must be the same for every member"):
        PopulationUpdate(
            "sgd",
            [torch.zeros(2, 3)],
            [{"lr": 0.1, "momentum": 0.9, "nesterov": True}, {"lr": 0.1, "momentum": 0.9}],
        )
    with pytest.raises(ConfigError, match="has no population rule; those that do: sgd"):
        PopulationUpdate("lamb", [torch.zeros(2, 3)], [{"lr": 0.1}, {"lr": 0.1}])
    with pytest.raises(ConfigError, match="does not take betas"):
        PopulationUpdate(
            "sgd", [torch.zeros(2, 3)], [{"lr": 0.1, "betas": (0.9, 0.99)}, {"lr": 0.1}]
        )
    with pytest.raises(ConfigError, match="leading member axis of 2"):
        PopulationUpdate("adam", [torch.zeros(3, 3)], [{"lr": 0.1}, {"lr": 0.1}])


def test_every_registered_optimizer_with_a_population_rule_is_checked_against_torch():
    from lit_optim.catalog.optimizers import OPTIMIZERS
    from lit_optim.population import POPULATION_OPTIMIZERS

    with_rule = {info.name for info in OPTIMIZERS if info.population_rule is not None}
    assert with_rule == set(POPULATION_OPTIMIZERS)
    assert with_rule == set(MEMBERS)  # each family above


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_members_that_give_only_an_lr_get_torch_and_the_registry_defaults(name):
    # Nothing but lr: whatever the rule assumes for the rest must be what torch's class and
    # the registry entry (momentum's 0.9, amsgrad's flag, adamw's decay 1e-2) give.
    stacked, alone = _run(name, [{"lr": 0.01}, {"lr": 0.03}])
    for i, weights in enumerate(alone):
        for p, w in zip(stacked, weights):
            assert torch.allclose(p[i].detach(), w, rtol=0, atol=1e-12), (name, i)


def test_population_optimizers_is_a_live_view_of_the_registry_with_aliases():
    from lit_optim.catalog.optimizers import OPTIMIZERS, OptimizerInfo
    from lit_optim.population import POPULATION_OPTIMIZERS

    assert POPULATION_OPTIMIZERS["heavy_ball"] == POPULATION_OPTIMIZERS["momentum"]
    assert "lamb" not in POPULATION_OPTIMIZERS and "no-such" not in POPULATION_OPTIMIZERS
    OPTIMIZERS.register(
        OptimizerInfo(
            name="sgd_half",
            factory=torch.optim.SGD,
            population_rule="sgd",
            defaults={"momentum": 0.5},
            description="a plugin's SGD",
        )
    )
    try:
        assert POPULATION_OPTIMIZERS["sgd_half"] == ("sgd", {"momentum": 0.5})
        stacked, alone = _run("sgd_half", [{"lr": 0.1}, {"lr": 0.05}])
        for i, weights in enumerate(alone):
            for p, w in zip(stacked, weights):
                assert torch.allclose(p[i].detach(), w, rtol=0, atol=1e-12)
    finally:
        OPTIMIZERS.unregister("sgd_half")
    assert "sgd_half" not in POPULATION_OPTIMIZERS


JOIN_AT, LEAVE_AT = 3, 5  # population steps: two members join, the first one leaves


@pytest.mark.parametrize(
    ("name", "extra"),
    [(name, {}) for name in sorted(MEMBERS)]
    + [("rmsprop", {"centered": True}), ("adam", {"amsgrad": True})],
)
def test_a_member_that_joins_later_equals_a_torch_optimizer_started_then(name, extra):
    # Members 0-1 start at step 0; 2-3 join at step JOIN_AT with fresh state; member 0 leaves
    # at LEAVE_AT. Each equals torch's optimizer built when it joined and stepped on the same
    # gradients: its own step count (bias correction, SGD's first buffer, Adagrad's decay).
    members = [{**m, **extra} for m in MEMBERS[name]]
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(4, *shape, generator=gen, dtype=torch.float64) for shape in SHAPES]
    alive = [0, 1]
    stacked = [s[alive].clone().requires_grad_(True) for s in start]
    population = PopulationUpdate(name, stacked, members[:2])
    for step in range(STEPS + JOIN_AT):
        if step == JOIN_AT:
            alive += [2, 3]
            stacked = [
                torch.cat([p.detach(), s[2:]]).requires_grad_(True) for p, s in zip(stacked, start)
            ]
            population.join(members[2:], stacked)
        if step == LEAVE_AT:
            mask = torch.tensor([i != 0 for i in alive])
            alive = [i for i in alive if i != 0]
            stacked = [p.detach()[mask].clone().requires_grad_(True) for p in stacked]
            population.keep(mask, stacked)
        population.set_lr([members[i]["lr"] * _lr_scale(step) for i in alive])
        for p, g in zip(stacked, _grads(step, 4)):
            p.grad = g[alive].clone()
        population.step()
    for position, i in enumerate(alive):
        params = [torch.nn.Parameter(s[i].clone()) for s in start]
        kwargs = {k: v for k, v in members[i].items() if k != "lr"}
        opt = build_optimizer(name, params, lr=members[i]["lr"], **kwargs)
        for step in range(JOIN_AT if i >= 2 else 0, STEPS + JOIN_AT):
            for group in opt.param_groups:
                group["lr"] = members[i]["lr"] * _lr_scale(step)
            for p, g in zip(params, _grads(step, 4)):
                p.grad = g[i].clone()
            opt.step()
        for p, w in zip(stacked, params):
            assert torch.allclose(p[position].detach(), w.detach(), rtol=0, atol=1e-12), (name, i)
    assert population.steps.tolist() == [STEPS + JOIN_AT, STEPS, STEPS]


def test_a_newcomer_with_another_structural_option_is_refused():
    population = PopulationUpdate("adam", [torch.zeros(1, 3)], [{"lr": 0.1}])
    with pytest.raises(ConfigError, match="amsgrad must be the same for every member"):
        population.join([{"lr": 0.1, "amsgrad": True}], [torch.zeros(2, 3)])

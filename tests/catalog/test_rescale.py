"""``rescale_hyperparameters`` (PBT's explore, and its replay) against an independent
reference: a schedule whose lr was rescaled by r mid-run goes on as the same schedule built
with r times the lr from the start, at the same position."""

from __future__ import annotations

import pytest
import torch
from torch.optim import lr_scheduler as sched

from lit_optim import ConfigError
from lit_optim.catalog.rescale import rescale_hyperparameters

SCHEDULES = {
    "cosine": lambda opt: sched.CosineAnnealingLR(opt, T_max=20),
    "step": lambda opt: sched.StepLR(opt, step_size=3, gamma=0.5),
    "warmup+cosine": lambda opt: sched.SequentialLR(
        opt,
        [
            sched.LinearLR(opt, start_factor=0.1, total_iters=4),
            sched.CosineAnnealingLR(opt, T_max=16),
        ],
        milestones=[4],
    ),
    "onecycle": lambda opt: sched.OneCycleLR(
        opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=20
    ),
    "cyclic": lambda opt: sched.CyclicLR(
        opt,
        base_lr=[g["lr"] / 10 for g in opt.param_groups],
        max_lr=[g["lr"] for g in opt.param_groups],
        step_size_up=3,
    ),
    "exponential": lambda opt: sched.ExponentialLR(opt, gamma=0.9),
}


def _optimizer(lr: float, weight_decay: float) -> torch.optim.Optimizer:
    # Two groups, the second with ten times the lr and no weight decay (a head, biases).
    return torch.optim.SGD(
        [
            {"params": [torch.nn.Parameter(torch.zeros(1))]},
            {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr * 10, "weight_decay": 0.0},
        ],
        lr=lr,
        momentum=0.9,
        weight_decay=weight_decay,
    )


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_rescaled_schedule_goes_on_as_the_schedule_of_the_rescaled_lr(name):
    ratio, at = 1.2, 6
    rescaled = _optimizer(0.1, 1e-3)
    schedule = SCHEDULES[name](rescaled)
    reference = _optimizer(0.1 * ratio, 1e-3 * 0.8)
    reference_schedule = SCHEDULES[name](reference)
    for step in range(15):
        if step == at:
            rescale_hyperparameters(rescaled, [schedule], lr=ratio, weight_decay=0.8)
        if step >= at:
            assert _lrs(rescaled) == pytest.approx(_lrs(reference), rel=1e-12), step
            assert [g["weight_decay"] for g in rescaled.param_groups] == pytest.approx([8e-4, 0.0])
        for opt, sch in ((rescaled, schedule), (reference, reference_schedule)):
            opt.step()
            sch.step()


def test_only_the_named_groups_change_and_plateau_keeps_its_own_floor_in_step():
    opt = _optimizer(0.1, 1e-3)
    plateau = sched.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=[0.01, 0.02])
    rescale_hyperparameters(opt, [plateau], lr=2.0, groups=[1])
    assert _lrs(opt) == [0.1, 2.0] and plateau.min_lrs == [0.01, 0.04]
    for value in range(10):
        plateau.step(1.0)  # no improvement: halves until the floors
    assert _lrs(opt) == pytest.approx([0.01, 0.04])


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf")])
def test_a_factor_that_is_not_a_positive_number_is_refused(factor):
    opt = _optimizer(0.1, 1e-3)
    with pytest.raises(ConfigError, match="factor must be a finite number > 0"):
        rescale_hyperparameters(opt, [], lr=factor)
    assert _lrs(opt) == [0.1, pytest.approx(1.0)]

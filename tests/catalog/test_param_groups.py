"""Param groups (per-module lr/decay, no decay on biases and norms) and batch-size lr scaling."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from lit_optim import ClassificationData, ClassificationTask, ConfigError, lr_scale_factor
from lit_optim.catalog.param_groups import build_param_groups


class TwoPart(nn.Module):
    def __init__(self):
        super().__init__()
        self.part1 = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
        self.part2 = nn.Linear(8, 3)


def _by_param(groups):
    return {id(p): g for g in groups for p in g["params"]}


def test_lecture_example_two_parts_with_their_own_lr_and_decay():
    model = TwoPart()
    groups = build_param_groups(
        model,
        lr=1.0,
        weight_decay=0.5,
        specs=[
            {"params": "part1.*", "lr": 0.01, "weight_decay": 0.0},
            {"params": "part2.*", "lr": 0.1, "weight_decay": 1e-4},
        ],
    )
    g = _by_param(groups)
    assert (
        g[id(model.part1[0].weight)]["lr"] == 0.01
        and g[id(model.part1[0].weight)]["weight_decay"] == 0.0
    )
    assert (
        g[id(model.part2.weight)]["lr"] == 0.1 and g[id(model.part2.weight)]["weight_decay"] == 1e-4
    )
    # Biases keep their group's lr but get no decay.
    assert g[id(model.part2.bias)]["lr"] == 0.1 and g[id(model.part2.bias)]["weight_decay"] == 0.0
    assert sum(len(x["params"]) for x in groups) == len(list(model.parameters()))


def test_biases_and_norm_weights_get_no_decay_by_default():
    model = TwoPart()
    g = _by_param(build_param_groups(model, lr=0.1, weight_decay=0.5))
    decayed = {n for n, p in model.named_parameters() if g[id(p)]["weight_decay"] > 0}
    assert decayed == {"part1.0.weight", "part2.weight"}
    g = _by_param(build_param_groups(model, lr=0.1, weight_decay=0.5, decay_bias_and_norm=True))
    assert all(g[id(p)]["weight_decay"] == 0.5 for p in model.parameters())


def test_no_decay_really_leaves_the_bias_alone_under_adamw():
    # With a zero gradient AdamW moves only by decay: the bias must not move at all.
    model = nn.Linear(3, 2)
    groups = build_param_groups(model, lr=0.1, weight_decay=0.5)
    opt = torch.optim.AdamW(groups, lr=0.1)
    before = model.bias.detach().clone(), model.weight.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(model.bias, before[0])
    assert torch.allclose(model.weight, before[1] * (1 - 0.1 * 0.5))


def test_first_matching_group_wins_and_a_dead_pattern_is_an_error():
    model = TwoPart()
    with pytest.raises(
        ConfigError, match=r"param_groups\[1\] pattern 'part1.0.\*' matches no parameter"
    ):
        build_param_groups(
            model, lr=0.1, weight_decay=0.0, specs=[{"params": "part1.*"}, {"params": "part1.0.*"}]
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"param_groups": [{"lr": 0.1}]}, r"param_groups\[0\] needs 'params'"),
        (
            {"param_groups": [{"params": "net.*", "betas": (0.9, 0.9)}], "optimizer": "sgd"},
            r"sets 'betas', which the optimizer does not take",
        ),
        (
            {"param_groups": [{"params": "net.*", "lr": -1}]},
            r"param_groups\[0\].lr must be a finite number > 0",
        ),
        (
            {"param_groups": [{"params": "net.*"}], "optimizer": "lbfgs", "lr": 1.0},
            "takes a single parameter group",
        ),
        ({"lr_scaling": "linear"}, "needs base_batch_size"),
        ({"lr_scaling": "cubic"}, "lr_scaling must be one of none|linear|sqrt"),
    ],
)
def test_bad_group_and_scaling_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassificationTask((1, 8, 8), 10, **kwargs)


@pytest.mark.parametrize(("rule", "factor"), [("linear", 4.0), ("sqrt", 2.0), ("none", 1.0)])
def test_lr_scaling_sets_and_logs_the_effective_lr(make_trainer, tmp_path, rule, factor):
    data = ClassificationData("digits", batch_size=256)
    task = ClassificationTask(
        data.input_shape,
        10,
        lr=0.01,
        lr_scaling=rule,
        base_batch_size=64,
        optimizer="sgd",
        param_groups=[{"params": "net.1.*", "lr": 0.001}],
    )
    monitor = LearningRateMonitor(logging_interval="step")
    trainer = make_trainer(
        max_epochs=1, log_every_n_steps=1, logger=CSVLogger(tmp_path), callbacks=[monitor]
    )
    trainer.fit(task, datamodule=data)
    lrs = sorted({g["lr"] for g in trainer.optimizers[0].param_groups})
    assert lrs == pytest.approx([0.001 * factor, 0.01 * factor])
    # Lightning's LearningRateMonitor logs every group's effective lr, one column each.
    groups = [g["lr"] for g in trainer.optimizers[0].param_groups]
    assert sorted(monitor.lrs) == [f"lr/pg{i + 1}" for i in range(len(groups))]
    for i, lr in enumerate(groups):
        assert monitor.lrs[f"lr/pg{i + 1}"] == pytest.approx([lr] * trainer.global_step)


def test_lr_scaling_counts_gradient_accumulation(make_trainer):
    data = ClassificationData("digits", batch_size=32)
    task = ClassificationTask(
        data.input_shape, 10, lr=0.01, lr_scaling="linear", base_batch_size=32
    )
    trainer = make_trainer(max_epochs=1, accumulate_grad_batches=4)
    trainer.fit(task, datamodule=data)
    assert lr_scale_factor(trainer, "linear", 32) == 4.0
    assert math.isclose(trainer.optimizers[0].param_groups[0]["lr"], 0.04)


def test_a_dead_pattern_fails_in_the_constructor():
    with pytest.raises(ConfigError, match="'net.0.\\*' matches no parameter.*net.1.weight"):
        ClassificationTask((1, 8, 8), 10, param_groups=[{"params": "net.0.*"}])

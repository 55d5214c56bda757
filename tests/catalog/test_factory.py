"""The public factory from a user's own LightningModule: create_optimizer / create_scheduler,
every value checked up front, run lengths read off the Trainer in every configuration."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_optim import ConfigError, create_optimizer, create_scheduler
from lit_optim.catalog.trainer_info import run_length


class Regressor(L.LightningModule):
    """A user's module: not a classifier, its own metric names, the factory in 3 lines."""

    def __init__(
        self,
        optimizer="adamw",
        lr=0.01,
        weight_decay=0.01,
        scheduler="cosine",
        scheduler_kwargs=None,
        monitor="val/loss",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 1))
        self.seen: dict = {}

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        self.seen["run"] = run_length(self.trainer)
        opt = create_optimizer(
            self, self.hparams.optimizer, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        return {
            "optimizer": opt,
            "lr_scheduler": create_scheduler(
                self.hparams.scheduler,
                opt,
                self.trainer,
                monitor=self.hparams.monitor,
                **(self.hparams.scheduler_kwargs or {}),
            ),
        }


def _loader(n=40, batch=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=batch)


def _fit(make_trainer, module, **trainer_overrides):
    trainer = make_trainer(**trainer_overrides)
    trainer.fit(module, train_dataloaders=_loader(), val_dataloaders=_loader(16))
    return trainer


# -- create_optimizer --------------------------------------------------------------------------
def test_a_module_gets_no_decay_on_biases_and_norm_weights_unless_asked():
    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    opt = create_optimizer(net, "adamw", lr=0.1, weight_decay=0.05)
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    matrices = {id(net[0].weight), id(net[2].weight)}
    assert by_decay[0.05] == matrices
    assert by_decay[0.0] == {id(p) for p in net.parameters()} - matrices
    opt = create_optimizer(net, "adamw", lr=0.1, weight_decay=0.05, decay_bias_and_norm=True)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05]


def test_params_are_used_as_given():
    w, b = nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2))
    opt = create_optimizer(
        [{"params": [w], "lr": 0.5}, {"params": [b]}],
        "sgd",
        lr=0.1,
        weight_decay=0.01,
        momentum=0.9,
    )
    assert [(g["lr"], g["weight_decay"], g["momentum"]) for g in opt.param_groups] == [
        (0.5, 0.01, 0.9),
        (0.1, 0.01, 0.9),
    ]
    assert type(create_optimizer(iter([w]), "adam", lr=1e-3)) is torch.optim.Adam


def test_param_groups_globs_and_lr_scale():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    opt = create_optimizer(
        net,
        "sgd",
        lr=0.1,
        lr_scale=2.0,
        param_groups=[{"params": "0.*", "lr": 0.01, "momentum": 0.5}],
    )
    # No weight decay: nothing to exempt biases from, so one group per glob (an optimizer runs
    # its step's Python once per group); with decay, each splits into decayed and exempt.
    assert sorted((g["lr"], g["momentum"]) for g in opt.param_groups) == [(0.02, 0.5), (0.2, 0)]
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2]
    opt = create_optimizer(
        net,
        "sgd",
        lr=0.1,
        weight_decay=0.1,
        lr_scale=2.0,
        param_groups=[{"params": "0.*", "lr": 0.01, "momentum": 0.5}],
    )
    assert sorted((g["lr"], g["momentum"], g["weight_decay"]) for g in opt.param_groups) == [
        (0.02, 0.5, 0.0),
        (0.02, 0.5, 0.1),
        (0.2, 0, 0.0),
        (0.2, 0, 0.1),
    ]


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        (
            "adam",
            {"betas": [1.5, 0.9]},
            r"optimizer 'adam' betas\[0\] must be in \[0, 1\), got 1.5",
        ),
        ("adam", {"betas": [0.9]}, r"optimizer 'adam' betas must be a pair \[beta1, beta2\]"),
        ("sgd", {"momentum": -0.5}, r"optimizer 'sgd' momentum must be in \[0, 1\), got -0.5"),
        (
            "adamw",
            {"eps": -1e-8},
            r"optimizer 'adamw' eps must be a finite number ≥ 0 \(a small number such as 1e-8\), "
            r"got -1e-08",
        ),
        (
            "lookahead",
            {"base": "sgd", "momentum": -1.0},
            r"optimizer 'lookahead' momentum must be in \[0, 1\), got -1.0",
        ),
        ("lbfgs", {"weight_decay": 0.1}, "has no weight decay.*add it to the loss"),
        ("adam", {"lr": math.nan}, "lr must be a finite number > 0"),
        ("adam", {"lr": True}, "lr must be a finite number > 0, got True"),
        ("adamm", {}, "did you mean 'adam'"),
        ("adam", {"momentum": 0.9}, "optimizer 'adam' does not take 'momentum'"),
        (
            "adam",
            {"param_groups": [{"params": "0.*", "lr": math.inf}]},
            r"param_groups\[0\].lr must be a finite number > 0, got inf",
        ),
        (
            "adam",
            {"param_groups": [{"params": "0.*", "lr": True}]},
            r"param_groups\[0\].lr must be a finite number > 0, got True",
        ),
        (
            "adam",
            {"param_groups": [{"params": "0.*", "weight_decay": math.nan}]},
            r"param_groups\[0\].weight_decay must be a finite number ≥ 0, got nan",
        ),
        (
            "sgd",
            {"param_groups": [{"params": "0.*", "momentum": -2}]},
            r"param_groups\[0\]: optimizer 'sgd' momentum must be in \[0, 1\), got -2",
        ),
    ],
)
def test_every_name_kwarg_and_value_is_checked_first(name, kwargs, message):
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    kwargs = {"lr": 0.01, **kwargs}
    with pytest.raises(ConfigError, match=message):
        create_optimizer(net, name, **kwargs)


def test_param_groups_need_the_module():
    with pytest.raises(ConfigError, match="pass the module itself"):
        create_optimizer(
            [nn.Parameter(torch.ones(1))], "sgd", lr=0.1, param_groups=[{"params": "*", "lr": 0.1}]
        )


# -- create_scheduler: run length from the Trainer ---------------------------------------------
# 40 samples / batch 8 = 5 batches an epoch.
# (Named run_kwargs: a parameter called trainer_kwargs would replace conftest's fixture of that
# name, and these Trainers would log into the working directory.)
@pytest.mark.parametrize(
    ("run_kwargs", "total", "per_epoch"),
    [
        ({"max_epochs": 3}, 15, 5),
        (
            {"max_epochs": -1, "max_steps": 7},
            7,
            5,
        ),  # Lightning leaves num_training_batches inf here
        ({"max_epochs": 3, "max_steps": 8}, 8, 5),
        ({"max_epochs": 2, "accumulate_grad_batches": 2}, 6, 3),  # the epoch's last partial step
        ({"max_epochs": 2, "limit_train_batches": 2}, 4, 2),
        ({"max_epochs": 4, "limit_train_batches": 0.4}, 8, 2),
    ],
)
def test_cosine_spans_the_whole_run_in_every_configuration(
    make_trainer, run_kwargs, total, per_epoch
):
    module = Regressor()
    trainer = _fit(make_trainer, module, **run_kwargs)
    assert (module.seen["run"].total_steps, module.seen["run"].steps_per_epoch) == (
        total,
        per_epoch,
    )
    assert trainer.lr_scheduler_configs[0].scheduler.T_max == total
    assert trainer.global_step == total


def test_epoch_schedule_with_warmup_epochs_under_max_steps(make_trainer):
    # step: ×0.5 every epoch after a 1-epoch (5-step) warmup; the run is 12 steps, max_epochs -1.
    module = Regressor(
        optimizer="sgd",
        lr=0.1,
        weight_decay=0.0,
        scheduler="step",
        scheduler_kwargs={"step_size": 1, "gamma": 0.5, "warmup_epochs": 1},
    )
    trainer = _fit(make_trainer, module, max_epochs=-1, max_steps=12)
    assert module.seen["run"].total_epochs == 3
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.05)


def test_plateau_monitors_a_metric_named_by_the_user(make_trainer):
    # val/loss is logged as a plain tensor: its direction is the user's to give (mode).
    module = Regressor(
        optimizer="sgd",
        lr=0.1,
        weight_decay=0.0,
        scheduler="plateau",
        scheduler_kwargs={"patience": 0, "factor": 0.5, "threshold": 1.0, "mode": "min"},
    )
    trainer = _fit(make_trainer, module, max_epochs=3, check_val_every_n_epoch=1)
    (config,) = trainer.lr_scheduler_configs
    assert config.monitor == "val/loss" and config.scheduler.mode == "min"
    # threshold 1.0 in min mode: no epoch improves, so every validation halves the lr.
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)


def test_plateau_steps_only_on_epochs_that_validate(make_trainer):
    module = Regressor(scheduler="plateau", monitor="val/loss", scheduler_kwargs={"mode": "min"})
    trainer = _fit(make_trainer, module, max_epochs=4, check_val_every_n_epoch=2)
    assert trainer.lr_scheduler_configs[0].frequency == 2


def test_a_monitor_never_logged_fails_when_lightning_first_needs_it_listing_what_is(make_trainer):
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    module = Regressor(scheduler="plateau", monitor="val_loss")
    with pytest.raises(MisconfigurationException, match=r"val_loss.*not available.*val/loss"):
        _fit(make_trainer, module, max_epochs=2)


def test_mode_is_given_or_a_standard_names_never_guessed():
    # tests/ has no __init__.py: pytest puts the folder itself on sys.path (prepend mode)
    from test_schedulers import build_scheduler_config

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False)
    from lit_optim.catalog.trainer_info import RunLength

    run = RunLength(10, 5)
    # Without the module's logs to ask, a name that is not a standard one needs a mode: "f1"
    # in the name is no evidence.
    with pytest.raises(ConfigError, match="direction of metric 'val/f1' is not known"):
        build_scheduler_config("plateau", opt, {}, run=run, val_every_n_epochs=1, monitor="val/f1")
    assert (
        build_scheduler_config(
            "plateau", opt, {}, run=run, val_every_n_epochs=1, monitor="val_acc"
        )["scheduler"].mode
        == "max"
    )
    assert (
        build_scheduler_config(
            "plateau", opt, {"mode": "min"}, run=run, val_every_n_epochs=1, monitor="val/f1"
        )["scheduler"].mode
        == "min"
    )
    with pytest.raises(ConfigError, match="mode must be min or max"):
        create_scheduler("plateau", opt, trainer, monitor="val/f1", mode="up")


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        (
            "cyclic",
            {"mode": "triangle"},
            "scheduler 'cyclic' mode must be one of triangular, triangular2, exp_range, "
            "got 'triangle'",
        ),
        ("inverse_time", {"decay_rate": -1}, "inverse_time decay_rate must be a finite number ≥ 0"),
        ("step", {"gamma": -1}, "scheduler 'step' gamma must be a finite number > 0"),
        ("multistep", {"milestones": "abc"}, "scheduler 'multistep' milestones must be a list"),
        ("multistep", {"milestones": [5, 3]}, "must be increasing epochs"),
        ("cosine", {"warmup_steps": 0}, "warmup_steps must be an integer >= 1"),
    ],
)
def test_scheduler_values_are_checked_before_training(name, kwargs, message):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match=message):
        create_scheduler(name, opt, L.Trainer(max_epochs=1, logger=False), **kwargs)


def test_a_fit_checks_its_optimizer_values_once(make_trainer, monkeypatch):
    # The task checks in __init__ and create_optimizer again in configure_optimizers: the
    # throwaway build that proves torch takes the values runs once for the same values.
    from lit_optim import ClassificationData, ClassificationTask
    from lit_optim.catalog import optimizers

    builds = []
    real = optimizers._try_build
    monkeypatch.setattr(optimizers, "_try_build", lambda *a: builds.append(a[0].name) or real(*a))
    monkeypatch.setattr(optimizers, "_CHECKED", {})
    data = ClassificationData("digits", batch_size=256)
    task = ClassificationTask(
        data.input_shape,
        10,
        optimizer="momentum",
        lr=0.0123,
        optimizer_kwargs={"momentum": 0.8},
        network_kwargs={"hidden_dims": [8]},
    )
    make_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1).fit(
        task, datamodule=data
    )
    assert builds == ["momentum"]
    # other values are checked (and refused) as before
    with pytest.raises(ConfigError, match="momentum"):
        ClassificationTask(
            data.input_shape,
            10,
            optimizer="momentum",
            lr=0.0123,
            optimizer_kwargs={"momentum": 1.5},
        )
    assert builds == ["momentum"]  # refused by the domain check, before any build

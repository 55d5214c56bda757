"""Scheduler entries: Lightning wiring from registry metadata, and schedules vs formulas."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from lit_optim import SCHEDULERS, ClassificationData, ClassificationTask, ConfigError
from lit_optim.schedulers import build_scheduler_config


class RecordLR(L.Callback):
    """The lr in effect for every optimizer step, and at every epoch start."""

    def __init__(self):
        self.per_step, self.per_epoch = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.per_step.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_start(self, trainer, pl_module):
        self.per_epoch.append(trainer.optimizers[0].param_groups[0]["lr"])


def _fit(make_trainer, scheduler, scheduler_kwargs=None, epochs=3, **trainer_overrides):
    data = ClassificationData("synthetic", batch_size=32, dataset_kwargs={
        "num_samples": 160, "num_features": 6, "num_classes": 3})  # 4 steps per epoch
    task = ClassificationTask(data.input_shape, data.num_classes, lr=0.1, optimizer="sgd",
                              scheduler=scheduler, scheduler_kwargs=scheduler_kwargs)
    rec = RecordLR()
    trainer = make_trainer(max_epochs=epochs, callbacks=[rec], **trainer_overrides)
    trainer.fit(task, datamodule=data)
    return rec, trainer


def test_constant_keeps_the_lr(make_trainer):
    rec, _ = _fit(make_trainer, "constant")
    assert set(rec.per_step) == {0.1}


def test_cosine_follows_its_formula_per_step(make_trainer):
    rec, trainer = _fit(make_trainer, "cosine", {"eta_min": 0.01})
    total = trainer.estimated_stepping_batches
    assert total == 12 and len(rec.per_step) == 12
    for t, lr in enumerate(rec.per_step):
        expected = 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * t / total)) / 2
        assert lr == pytest.approx(expected, rel=1e-6)


def test_step_decays_per_epoch(make_trainer):
    rec, _ = _fit(make_trainer, "step", {"step_size": 2, "gamma": 0.5}, epochs=5)
    assert rec.per_epoch == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_plateau_cuts_the_lr_when_the_metric_stalls(make_trainer):
    # In min mode with threshold 1.0 (relative) a value counts as better only below
    # best * (1 - 1.0) = 0, which a loss never is: every epoch is a bad one, and with patience
    # 0 the lr is halved after every validation, starting with the first.
    rec, _ = _fit(make_trainer, "plateau",
                  {"patience": 0, "factor": 0.5, "threshold": 1.0}, epochs=4)
    assert rec.per_epoch == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_plateau_on_accuracy_uses_max_mode():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cfg = build_scheduler_config("plateau", opt, {"monitor": "val_acc"}, total_steps=10,
                                 val_every_n_epochs=1)
    assert cfg["monitor"] == "val_acc" and cfg["scheduler"].mode == "max"


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_registry_metadata_drives_the_lightning_config(name):
    info = SCHEDULERS.get(name)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cfg = build_scheduler_config(name, opt, {}, total_steps=100, val_every_n_epochs=2)
    assert cfg["interval"] == info.interval
    assert ("monitor" in cfg) == info.needs_monitor
    # A val-monitoring scheduler steps only on epochs that validate.
    assert cfg["frequency"] == (2 if info.needs_monitor else 1)


def test_schedule_needing_total_steps_rejects_an_endless_run():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match="needs a finite run"):
        build_scheduler_config("cosine", opt, {}, total_steps=math.inf, val_every_n_epochs=1)


def test_plateau_on_val_metric_without_validation_fails_before_training(make_trainer):
    with pytest.raises(ConfigError, match="validation never runs"):
        _fit(make_trainer, "plateau", epochs=1, limit_val_batches=0)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("plateau", {"monitor": "val_f1"}, "monitors 'val_f1', which is never logged"),
        ("step", {"step": 3}, "scheduler 'step' does not take 'step'"),
        ("cosine", {"total_steps": 3}, "scheduler 'cosine' does not take 'total_steps'"),
        ("cosin", {}, "did you mean 'cosine'"),
    ],
)
def test_bad_scheduler_arguments_fail_in_the_task_constructor(name, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassificationTask((4,), 2, scheduler=name, scheduler_kwargs=kwargs)

"""Schedulers by name: a short real fit per entry, the logged lr checked at every step
against the schedule's formula (written out here), plus Lightning wiring and bad input."""

from __future__ import annotations

import csv
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger

from lit_optim import SCHEDULERS, ClassificationData, ClassificationTask, ConfigError
from lit_optim.catalog.schedulers import check_scheduler_args, scheduler_config
from lit_optim.catalog.trainer_info import RunLength


def build_scheduler_config(name, optimizer, kwargs, *, run, val_every_n_epochs, monitor=None):
    """What ``create_scheduler`` builds, with the run length given instead of read off a
    Trainer: its two steps, check then build."""
    info, monitor = check_scheduler_args(name, kwargs, monitor=monitor)
    return scheduler_config(
        info, monitor, optimizer, kwargs, run=run, val_every_n_epochs=val_every_n_epochs
    )


LR, S, E = 0.1, 4, 6  # initial lr, optimizer steps per epoch, epochs
T = S * E
START = 1e-3  # default warmup_start_factor


def _cos(start, end, pct):
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


def _cyclic(k, scale_fn):
    base, up = LR / 10, T // 8
    cycle = math.floor(1 + k / (2 * up))
    x = abs(k / up - 2 * cycle + 1)
    return base + (LR - base) * max(0.0, 1 - x) * scale_fn(cycle, k)


def _cyclic_from(j):
    # cyclic over the T - 3 steps left after a 3-step warmup: step_size_up = (T - 3) // 8.
    base, up = LR / 10, (T - 3) // 8
    cycle = math.floor(1 + j / (2 * up))
    return base + (LR - base) * max(0.0, 1 - abs(j / up - 2 * cycle + 1))


def _onecycle(k, pct=0.3, div=25.0, final=1e4):
    initial, peak_step = LR / div, pct * T - 1
    if k <= peak_step:
        return _cos(initial, LR, k / peak_step)
    return _cos(LR, initial / final, (k - peak_step) / (T - 1 - peak_step))


def _sgdr(e, t0=2, mult=2):
    t_i, t_cur = t0, e
    while t_cur >= t_i:
        t_cur, t_i = t_cur - t_i, t_i * mult
    return _cos(LR, 0.0, t_cur / t_i)


def _ramp(k, n):
    return LR * (START + (1 - START) * k / n)


# name: (scheduler_kwargs, lr as a function of (optimizer step k, epoch e))
FORMULAS = {
    "constant": ({}, lambda k, e: LR),
    "step": ({"step_size": 2, "gamma": 0.5}, lambda k, e: LR * 0.5 ** (e // 2)),
    "multistep": (
        {"milestones": [1, 4], "gamma": 0.5},
        lambda k, e: LR * 0.5 ** sum(e >= m for m in (1, 4)),
    ),
    "exponential": ({"gamma": 0.8}, lambda k, e: LR * 0.8**e),
    "cosine": ({"eta_min": 0.01}, lambda k, e: _cos(LR, 0.01, k / T)),
    "cosine_restarts": ({"T_0": 2, "T_mult": 2}, lambda k, e: _sgdr(e)),
    "cyclic": ({}, lambda k, e: _cyclic(k, lambda c, k: 1.0)),
    "onecycle": ({}, lambda k, e: _onecycle(k)),
    "inverse_time": ({"decay_rate": 0.5, "decay_epochs": 2}, lambda k, e: LR / (1 + 0.5 * e / 2)),
    "polynomial": ({"power": 0.5}, lambda k, e: LR * (1 + k) ** -0.5),
}
# Variants of registered names: same scheduler, other options.
VARIANTS = {
    "cyclic/triangular2": (
        "cyclic",
        {"mode": "triangular2"},
        lambda k, e: _cyclic(k, lambda c, k: 1 / 2 ** (c - 1)),
    ),
    "cyclic/exp_range": (
        "cyclic",
        {"mode": "exp_range", "gamma": 0.9},
        lambda k, e: _cyclic(k, lambda c, k: 0.9**k),
    ),
    "inverse_time/staircase": (
        "inverse_time",
        {"decay_rate": 0.5, "decay_epochs": 2, "staircase": True},
        lambda k, e: LR / (1 + 0.5 * (e // 2)),
    ),
    "cosine+warmup_steps": (
        "cosine",
        {"warmup_steps": 4},
        lambda k, e: _ramp(k, 4) if k < 4 else _cos(LR, 0.0, (k - 4) / (T - 4)),
    ),
    "cosine+warmup_epochs": (
        "cosine",
        {"warmup_epochs": 2, "warmup_start_factor": 0.1},
        lambda k, e: LR * (0.1 + 0.9 * k / 8) if k < 8 else _cos(LR, 0.0, (k - 8) / (T - 8)),
    ),
    "step+warmup_epochs": (
        "step",
        {"step_size": 2, "gamma": 0.5, "warmup_epochs": 1},
        lambda k, e: LR * START if e < 1 else LR * 0.5 ** ((e - 1) // 2),
    ),
    "cyclic+warmup_steps": (
        "cyclic",
        {"warmup_steps": 3},
        lambda k, e: _ramp(k, 3) if k < 3 else _cyclic_from(k - 3),
    ),
}


def _fit(make_trainer, tmp_path, scheduler, kwargs, epochs=E, **overrides):
    data = ClassificationData(
        "synthetic",
        batch_size=32,
        val_fraction=0.2,
        dataset_kwargs={"num_samples": 160, "num_features": 6, "num_classes": 3},
    )  # 128 train → 4 steps/epoch
    task = ClassificationTask(
        data.input_shape,
        data.num_classes,
        lr=LR,
        optimizer="sgd",
        scheduler=scheduler,
        scheduler_kwargs=kwargs,
    )
    # The lr as Lightning's LearningRateMonitor logs it (lit-optim fit adds one).
    trainer = make_trainer(
        max_epochs=epochs,
        log_every_n_steps=1,
        logger=CSVLogger(tmp_path, name="log"),
        callbacks=[LearningRateMonitor(logging_interval="step")],
        **overrides,
    )
    trainer.fit(task, datamodule=data)
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    return [float(r["lr"]) for r in rows if r.get("lr")], trainer


def _check(lrs, formula):
    assert len(lrs) == T
    for k, lr in enumerate(lrs):
        expected = formula(k, k // S)
        if expected is not None:
            assert lr == pytest.approx(expected, rel=1e-6, abs=1e-12), f"step {k}"


@pytest.mark.parametrize("name", [n for n in SCHEDULERS.names() if n in FORMULAS])
def test_logged_lr_follows_the_formula(name, make_trainer, tmp_path):
    kwargs, formula = FORMULAS[name]
    lrs, _ = _fit(make_trainer, tmp_path, name, kwargs)
    _check(lrs, formula)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_and_warmups_follow_their_formula(variant, make_trainer, tmp_path):
    name, kwargs, formula = VARIANTS[variant]
    lrs, _ = _fit(make_trainer, tmp_path, name, kwargs)
    _check(lrs, formula)


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_every_scheduler_runs_with_defaults_and_keeps_a_positive_lr(name, make_trainer, tmp_path):
    kwargs = {"milestones": [2]} if name == "multistep" else {}
    lrs, trainer = _fit(make_trainer, tmp_path, name, kwargs, epochs=2)
    assert len(lrs) == 2 * S and all(lr > 0 and math.isfinite(lr) for lr in lrs)
    info = SCHEDULERS.get(name)
    (config, *_) = trainer.lr_scheduler_configs
    assert config.interval == info.interval
    assert (config.monitor is not None) == info.needs_monitor


def test_plateau_cuts_the_lr_when_the_metric_stalls(make_trainer, tmp_path):
    # In min mode with threshold 1.0 (relative) a value counts as better only below
    # best · (1 - 1.0) = 0, which a loss never is: every epoch is a bad one, and with
    # patience 0 the lr is halved after every validation, starting with the first.
    lrs, _ = _fit(
        make_trainer,
        tmp_path,
        "plateau",
        {"patience": 0, "factor": 0.5, "threshold": 1.0},
        epochs=4,
    )
    assert lrs[::S] == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_plateau_after_a_warmup(make_trainer, tmp_path):
    lrs, trainer = _fit(
        make_trainer,
        tmp_path,
        "plateau",
        {"patience": 0, "factor": 0.5, "threshold": 1.0, "warmup_steps": 4},
        epochs=3,
    )
    # One Lightning config (the plateau, per epoch); the ramp rides on optimizer.step.
    assert [c.interval for c in trainer.lr_scheduler_configs] == ["epoch"]
    assert lrs[:4] == pytest.approx([_ramp(k, 4) for k in range(4)])
    assert lrs[4::S] == pytest.approx([0.05, 0.025])  # full lr reached, then halved per epoch


def test_plateau_on_accuracy_uses_max_mode():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cfg = build_scheduler_config(
        "plateau", opt, {"monitor": "val_acc"}, run=RunLength(10, 5), val_every_n_epochs=2
    )
    assert cfg["monitor"] == "val_acc" and cfg["scheduler"].mode == "max"
    assert cfg["frequency"] == 2  # steps only on epochs that validate


@pytest.mark.parametrize(
    ("name", "kwargs", "run", "message"),
    [
        ("cosine", {}, RunLength(math.inf, None), "needs a finite run"),
        (
            "cosine",
            {"warmup_steps": 24},
            RunLength(24, 4),
            "warmup of 24 steps is not shorter than training .24 steps.",
        ),
        (
            "step",
            {"warmup_epochs": 6},
            RunLength(24, 4),
            "warmup of 6 epochs is not shorter than training .6 epochs.",
        ),
        (
            "cosine",
            {"warmup_epochs": 1},
            RunLength(24, None),
            "warmup_epochs needs a known epoch length",
        ),
    ],
)
def test_run_length_errors(name, kwargs, run, message):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match=message):
        build_scheduler_config(name, opt, kwargs, run=run, val_every_n_epochs=1)


def test_plateau_on_val_metric_without_validation_fails_before_training(make_trainer, tmp_path):
    with pytest.raises(ConfigError, match="validation never runs"):
        _fit(make_trainer, tmp_path, "plateau", {}, epochs=1, limit_val_batches=0)


def test_warmup_longer_than_training_fails_before_training(make_trainer, tmp_path):
    with pytest.raises(ConfigError, match="not shorter than training"):
        _fit(make_trainer, tmp_path, "cosine", {"warmup_epochs": 3}, epochs=2)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("plateau", {"monitor": "val_f1"}, "monitors 'val_f1', which is never logged"),
        ("step", {"step": 3}, "scheduler 'step' does not take 'step'"),
        ("step", {"monitor": "val_loss"}, "scheduler 'step' does not take 'monitor'"),
        ("cosine", {"total_steps": 3}, "scheduler 'cosine' does not take 'total_steps'"),
        ("multistep", {}, "scheduler 'multistep' needs 'milestones'"),
        ("cosin", {}, "did you mean 'cosine'"),
        ("step", {"warmup_steps": 5}, "steps once per epoch; give warmup_epochs"),
        ("cosine", {"warmup_steps": 5, "warmup_epochs": 1}, "not both"),
        ("cosine", {"warmup_steps": 0}, "warmup_steps must be an integer >= 1"),
        ("cosine", {"warmup_start_factor": 0.1}, "needs warmup_steps or warmup_epochs"),
        ("onecycle", {"warmup_steps": 2}, "has its own warmup .pct_start.; remove warmup_steps"),
    ],
)
def test_bad_scheduler_arguments_fail_in_the_task_constructor(name, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassificationTask((4,), 2, scheduler=name, scheduler_kwargs=kwargs)


class _RecordLR(L.Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_plateau_warmup_resumes_mid_ramp_from_a_checkpoint(make_trainer, tmp_path):
    # A 6-step ramp over 4-step epochs, checkpointed after epoch 0 (in the middle of the ramp)
    # and resumed: the ramp goes on from step 4, exactly as in the uninterrupted run and as the
    # formula. patience 100 keeps the plateau from cutting, so only the ramp is measured.
    from lightning.pytorch.callbacks import ModelCheckpoint

    kwargs = {"patience": 100, "warmup_steps": 6}

    def task_and_data():
        data = ClassificationData(
            "synthetic",
            batch_size=32,
            val_fraction=0.2,
            dataset_kwargs={"num_samples": 160, "num_features": 6, "num_classes": 3},
        )
        task = ClassificationTask(
            data.input_shape,
            data.num_classes,
            lr=LR,
            optimizer="sgd",
            scheduler="plateau",
            scheduler_kwargs=kwargs,
        )
        return task, data

    class StopAfterFirstEpoch(L.Callback):  # an interruption, with the run planned as 3 epochs
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = True

    whole, first, rest = _RecordLR(), _RecordLR(), _RecordLR()
    make_trainer(max_epochs=3, callbacks=[whole]).fit(*task_and_data())
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    make_trainer(
        max_epochs=3, callbacks=[first, ckpt, StopAfterFirstEpoch()], enable_checkpointing=True
    ).fit(*task_and_data())
    assert len(first.lrs) == 4
    task, data = task_and_data()
    make_trainer(max_epochs=3, callbacks=[rest]).fit(
        task, datamodule=data, ckpt_path=tmp_path / "ckpt" / "last.ckpt"
    )
    expected = [_ramp(k, 6) for k in range(6)] + [LR] * 6
    assert whole.lrs == pytest.approx(expected)
    assert first.lrs + rest.lrs == pytest.approx(expected)

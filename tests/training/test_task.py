"""ClassificationTask with a real Trainer: logged metrics, learning, checkpoint reload."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger

from lit_optim import ClassificationData, ClassificationTask, ConfigError, l2_penalty


def _digits_task(**kwargs):
    data = ClassificationData("digits", batch_size=64)
    task = ClassificationTask(data.input_shape, data.num_classes, **kwargs)
    return data, task


def test_fit_logs_the_metric_vocabulary_and_learns(make_trainer, tmp_path):
    data, task = _digits_task(lr=3e-3, network_kwargs={"hidden_dims": [64]})
    trainer = make_trainer(
        max_epochs=3,
        log_every_n_steps=5,
        logger=CSVLogger(tmp_path),
        callbacks=[LearningRateMonitor(logging_interval="step")],
    )
    trainer.fit(task, datamodule=data)
    metrics = trainer.callback_metrics
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "train_loss_step"} <= set(metrics)
    assert metrics["val_acc"] > 0.8  # chance is 0.1
    # Lightning's LearningRateMonitor logs the lr under the scheduler config's name.
    with open(trainer.logger.experiment.metrics_file_path) as f:
        lrs = [row["lr"] for row in csv.DictReader(f) if row.get("lr")]
    assert len(lrs) == trainer.global_step // 5 and {float(v) for v in lrs} == {3e-3}
    (result,) = trainer.test(task, datamodule=data, verbose=False)
    assert set(result) == {"test_loss", "test_acc"} and result["test_acc"] > 0.8


def test_epoch_metrics_equal_a_direct_computation(make_trainer):
    data, task = _digits_task()
    trainer = make_trainer()
    trainer.validate(task, datamodule=data, verbose=False)
    x, y = data._tensors["val"]
    with torch.no_grad():
        logits = task(x)
    assert trainer.callback_metrics["val_acc"].item() == pytest.approx(
        (logits.argmax(1) == y).float().mean().item(), abs=1e-6
    )
    assert trainer.callback_metrics["val_loss"].item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5
    )


def test_checkpoint_reloads_on_its_own(make_trainer, tmp_path):
    data, task = _digits_task(
        optimizer="sgd",
        lr=0.05,
        optimizer_kwargs={"momentum": 0.9},
        network_kwargs={"hidden_dims": [32, 16]},
        scheduler="cosine",
    )
    trainer = make_trainer(max_epochs=1, enable_checkpointing=True)
    trainer.fit(task, datamodule=data)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = ClassificationTask.load_from_checkpoint(path)
    assert restored.hparams.optimizer == "sgd" and restored.hparams.optimizer_kwargs == {
        "momentum": 0.9
    }
    x = data._tensors["test"][0]
    task.eval()
    restored.eval()
    with torch.no_grad():
        assert torch.equal(task(x), restored(x))


class StopAfterEpoch(L.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(make_trainer, tmp_path):
    # The per-epoch data order depends only on (seed, epoch), and the optimizer and schedule
    # state travel in the checkpoint: resuming must land on the same weights.
    kwargs = dict(scheduler="cosine", lr=0.01, optimizer="adamw", weight_decay=1e-2)
    L.seed_everything(0)
    data, whole = _digits_task(**kwargs)
    make_trainer(max_epochs=4).fit(whole, datamodule=data)

    L.seed_everything(0)
    data, part = _digits_task(**kwargs)
    first = make_trainer(max_epochs=4, callbacks=[StopAfterEpoch(1)])
    first.fit(part, datamodule=data)
    assert first.current_epoch == 2
    path = tmp_path / "mid.ckpt"
    first.save_checkpoint(path)

    data, resumed = _digits_task(**kwargs)
    second = make_trainer(max_epochs=4)
    second.fit(resumed, datamodule=data, ckpt_path=path)
    assert second.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0}, "lr must be a finite number > 0"),
        ({"weight_decay": -1e-4}, "weight_decay must be a finite number ≥ 0"),
        (
            {"optimizer": "adamm"},
            "unknown optimizer 'adamm'; did you mean 'adam', 'radam', 'nadam', 'adamw'",
        ),
        ({"scheduler": "cosin"}, "unknown scheduler 'cosin'; did you mean 'cosine'"),
        ({"network": "mpl"}, "unknown model 'mpl'; did you mean 'mlp'"),
        (
            {"optimizer": "sgd", "optimizer_kwargs": {"betas": (0.9, 0.99)}},
            "optimizer 'sgd' does not take 'betas'",
        ),
    ],
)
def test_bad_task_arguments_fail_in_the_constructor(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClassificationTask((1, 8, 8), 10, **kwargs)


def test_the_guard_against_a_bad_value_comes_before_any_data_is_read(monkeypatch):
    calls = []
    monkeypatch.setattr(ClassificationData, "setup", lambda self, stage=None: calls.append(stage))
    with pytest.raises(ConfigError):
        data, task = _digits_task(lr=-1)
        L.Trainer().fit(task, datamodule=data)
    assert calls == []


def test_lbfgs_gets_weight_decay_as_an_l2_term_in_its_loss(make_trainer):
    data, task = _digits_task(
        optimizer="lbfgs", lr=0.5, weight_decay=0.1, optimizer_kwargs={"max_iter": 3}
    )
    weights = [p for p in task.parameters() if p.ndim >= 2]
    expected = 0.05 * sum((p**2).sum() for p in weights)
    assert torch.allclose(l2_penalty(task, 0.1), expected)
    trainer = make_trainer(max_epochs=1)
    trainer.fit(task, datamodule=data)
    assert trainer.global_step > 0 and torch.isfinite(trainer.callback_metrics["val_loss"])


class _StepLosses(L.Callback):
    """Each step's loss, and what callback_metrics holds of it when each epoch ends."""

    def __init__(self):
        self.losses, self.at_epoch_end = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))

    def on_train_epoch_end(self, trainer, pl_module):
        self.at_epoch_end.append(float(trainer.callback_metrics["train_loss_step"]))


@pytest.mark.parametrize("reader", ["none", "logger", "progress bar"])
def test_per_step_values_are_logged_where_someone_reads_them(make_trainer, tmp_path, reader):
    # No logger and no progress bar (a lit-tune trial): only the epoch's last step is logged,
    # so epoch-end readers of callback_metrics still see it; otherwise every logging step.
    data, task = _digits_task(network_kwargs={"hidden_dims": [16]})
    logged, log = [], task.log

    def counting_log(name, *args, **kwargs):
        logged.append(name)
        return log(name, *args, **kwargs)

    task.log = counting_log
    probe = _StepLosses()
    extra = (
        {"logger": L.pytorch.loggers.CSVLogger(tmp_path)}
        if reader == "logger"
        else ({"enable_progress_bar": True} if reader == "progress bar" else {})
    )
    make_trainer(max_epochs=2, log_every_n_steps=1, callbacks=[probe], **extra).fit(
        task, datamodule=data
    )
    steps = len(probe.losses)
    assert steps % 2 == 0 and steps > 4  # two equal epochs of several steps
    expected = 2 if reader == "none" else steps
    assert logged.count("train_loss_step") == expected
    last = [probe.losses[steps // 2 - 1], probe.losses[-1]]
    assert probe.at_epoch_end == pytest.approx(last)

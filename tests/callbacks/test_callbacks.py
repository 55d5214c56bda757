"""Training-health callbacks with a real Trainer and injected faults."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import yaml

from lit_optim import ClassificationData, ClassificationTask, ConfigError
from lit_optim.callbacks import GradientClipper, LayerDiagnostics, NonFiniteError, NonFiniteGuard
from lit_optim.catalog.optimizers import OPTIMIZERS
from support import ROOT


class Faulty(ClassificationTask):
    """Injects one fault at optimizer step ``fault_step``: a NaN loss, an Inf gradient in
    net.1.weight, or a NaN weight in net.3.weight; and records weights around that step."""

    def __init__(
        self, *args, fault: str | None = None, fault_step: int = 3, every_step=False, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.fault, self.fault_step, self.every_step = fault, fault_step, every_step
        self.before: dict[int, list[torch.Tensor]] = {}
        self.after: dict[int, list[torch.Tensor]] = {}
        self.post_hook_grads: list[list[torch.Tensor]] = []

    def _now(self):
        return self.every_step or self.trainer.global_step == self.fault_step

    def _weights(self):
        return [p.detach().clone() for p in self.net.parameters()]

    def on_train_batch_start(self, batch, batch_idx):
        self.before[self.trainer.global_step] = self._weights()
        if self.fault == "param" and self._now():
            with torch.no_grad():
                self.net[3].weight[0, 0] = float("nan")

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.fault == "loss" and self._now() else loss

    def on_after_backward(self):
        if self.fault == "grad" and self._now():
            self.net[1].weight.grad[0, 0] = float("inf")

    def on_before_optimizer_step(self, optimizer):
        # Module hooks run after the callbacks' hooks: this sees the gradients they left.
        self.post_hook_grads.append(
            [p.grad.detach().clone() for p in self.parameters() if p.grad is not None]
        )

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.after[self.trainer.global_step - 1] = self._weights()


def _fit(make_trainer, callbacks, *, epochs=1, optimizer="adam", lr=1e-3, **task_kwargs):
    data = ClassificationData("digits", batch_size=128)
    task = Faulty(
        data.input_shape,
        10,
        optimizer=optimizer,
        lr=lr,
        network_kwargs={"hidden_dims": [32, 16]},
        **task_kwargs,
    )
    trainer = make_trainer(max_epochs=epochs, callbacks=callbacks, log_every_n_steps=1)
    trainer.fit(task, datamodule=data)
    return task, trainer


# --- NonFiniteGuard ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ("loss", "the loss is non-finite"),
        ("grad", "non-finite gradient in net.1.weight"),
    ],
)
def test_raise_names_the_step_and_what_was_non_finite(make_trainer, fault, named):
    with pytest.raises(NonFiniteError) as info:
        _fit(make_trainer, [NonFiniteGuard("raise")], fault=fault)
    assert "at step 3" in str(info.value) and named in str(info.value)


def test_raise_on_a_nan_weight_names_the_parameter(make_trainer):
    with pytest.raises(NonFiniteError, match="non-finite weights in net.3.weight"):
        _fit(make_trainer, [NonFiniteGuard("raise", check_params=True)], fault="param")


@pytest.mark.parametrize("fault", ["loss", "grad"])
def test_skip_leaves_weights_and_optimizer_bit_identical_across_the_bad_step(make_trainer, fault):
    guard = NonFiniteGuard("skip")
    task, trainer = _fit(make_trainer, [guard], fault=fault, epochs=2)
    for b, a in zip(task.before[3], task.after[3]):
        assert torch.equal(a, b)
    for b, a in zip(task.before[4], task.after[4]):
        assert not torch.equal(a, b)  # the next step trains normally
    assert guard.skipped == 1 and trainer.callback_metrics["nonfinite_skipped"] == 1
    # Adam took one step fewer on every parameter.
    steps = {int(s["step"]) for s in trainer.optimizers[0].state.values()}
    assert steps == {trainer.global_step - 1}
    assert math.isfinite(trainer.callback_metrics["val_loss"])


def test_rollback_restores_the_last_snapshot(make_trainer):
    guard = NonFiniteGuard("rollback", snapshot_every_n_steps=2, lr_factor=0.5)
    task, trainer = _fit(make_trainer, [guard], fault="grad", fault_step=5)
    # The last clean snapshot was taken before step 4's update.
    for snap, after in zip(task.before[4], task.after[5]):
        assert torch.equal(snap, after)
    assert guard.rollbacks == 1
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(5e-4)


def test_rollback_with_a_sparse_check_reports_the_window(make_trainer):
    guard = NonFiniteGuard("rollback", check_every_n_steps=4, snapshot_every_n_steps=2)
    task, _ = _fit(make_trainer, [guard], fault="grad", fault_step=5)
    assert guard.rollbacks == 1
    # Checks read the flag at steps 3 and 7: the fault at step 5 is caught at step 7 and the
    # weights go back to the snapshot of the clean check at step 3 (taken before its update).
    for snap, after in zip(task.before[3], task.after[7]):
        assert torch.equal(snap, after)


def test_stop_ends_training_cleanly_with_the_reason_logged(make_trainer, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    guard = NonFiniteGuard("stop")
    data = ClassificationData("digits", batch_size=128)
    task = Faulty(data.input_shape, 10, fault="loss", fault_step=3)
    trainer = make_trainer(max_epochs=5, callbacks=[guard], logger=CSVLogger(tmp_path))
    with pytest.warns(UserWarning, match="stopping training: NaN/Inf at step 3"):
        trainer.fit(task, datamodule=data)
    assert trainer.global_step == 4  # the bad step 3 was the last one
    hparams = yaml.safe_load(next(tmp_path.rglob("hparams.yaml")).read_text())
    assert "the loss is non-finite" in hparams["stop_reason"]
    for b, a in zip(task.before[3], task.after[3]):
        assert torch.equal(a, b)  # the bad step itself was not applied


def test_skip_gives_up_after_max_consecutive(make_trainer):
    with pytest.raises(
        NonFiniteError, match="4 bad checks in a row .max_consecutive=3., giving up"
    ):
        _fit(
            make_trainer, [NonFiniteGuard("skip", max_consecutive=3)], fault="loss", every_step=True
        )


def test_rollback_without_a_snapshot_yet_says_so_and_loses_nothing(make_trainer):
    guard = NonFiniteGuard("rollback", snapshot_at_start=False, snapshot_every_n_steps=10)
    with pytest.raises(NonFiniteError, match="rollback has no snapshot yet") as info:
        _fit(make_trainer, [guard], fault="grad", fault_step=0)
    assert "the bad step was dropped" in str(info.value)


def test_huge_lr_recovers_with_rollback_and_diverges_without(make_trainer):
    def run(callbacks):
        L.seed_everything(0)
        data = ClassificationData("digits", batch_size=128)
        task = ClassificationTask(
            data.input_shape,
            10,
            optimizer="sgd",
            lr=1000.0,
            network_kwargs={"hidden_dims": [256, 128]},
        )
        trainer = make_trainer(max_epochs=20, callbacks=callbacks)
        trainer.fit(task, datamodule=data)
        return trainer.callback_metrics, trainer.optimizers[0].param_groups[0]["lr"]

    unguarded, _ = run([])
    assert not math.isfinite(unguarded["train_loss"]) and unguarded["val_acc"] < 0.2
    # NaNs alone are not enough here: at lr 10 plain SGD kills this ReLU net through huge
    # but finite steps (loss stuck at ln 10, no NaN ever), so the spike check is on too.
    guard = NonFiniteGuard("rollback", lr_factor=0.1, max_consecutive=10, loss_spike_factor=10)
    guarded, lr = run([guard])
    assert guard.rollbacks >= 3 and guarded["val_acc"] >= 0.9
    assert lr == pytest.approx(1000.0 * 0.1**guard.rollbacks) and lr <= 1.0


def test_nan_only_rollback_reduces_the_lr_each_time(make_trainer):
    # Without the spike check the guard still acts on every NaN: each rollback cuts the lr.
    L.seed_everything(0)
    data = ClassificationData("digits", batch_size=128)
    task = ClassificationTask(
        data.input_shape, 10, optimizer="sgd", lr=1000.0, network_kwargs={"hidden_dims": [256, 128]}
    )
    guard = NonFiniteGuard("rollback", lr_factor=0.1, max_consecutive=10)
    trainer = make_trainer(max_epochs=5, callbacks=[guard])
    trainer.fit(task, datamodule=data)
    assert guard.rollbacks >= 2
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(
        1000.0 * 0.1**guard.rollbacks
    )
    assert math.isfinite(trainer.callback_metrics["train_loss"])


def test_loss_spike_is_named_in_the_message(make_trainer):
    L.seed_everything(0)
    data = ClassificationData("digits", batch_size=128)
    task = ClassificationTask(data.input_shape, 10, optimizer="sgd", lr=1000.0)
    with pytest.raises(NonFiniteError, match=r"the loss [\d.e+]+ is above 10 × its running mean"):
        make_trainer(max_epochs=2, callbacks=[NonFiniteGuard("raise", loss_spike_factor=10)]).fit(
            task, datamodule=data
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "explode"}, "action must be one of raise|skip|rollback|stop, got 'explode'"),
        ({"check_every_n_steps": 0}, "check_every_n_steps must be an integer >= 1, got 0"),
        ({"check_every_n_steps": -5}, "check_every_n_steps must be an integer >= 1, got -5"),
        (
            {"action": "skip", "check_every_n_steps": 10},
            "action 'skip' needs check_every_n_steps=1",
        ),
        ({"lr_factor": 0.0}, r"lr_factor must be in \(0, 1\]"),
        ({"max_consecutive": 0}, "max_consecutive must be an integer >= 1"),
    ],
)
def test_guard_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        NonFiniteGuard(**kwargs)


# --- GradientClipper -----------------------------------------------------------------------
def _global_norm(grads, p=2.0):
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, p) for g in grads]), p)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_norm_clipping_bounds_the_global_norm(make_trainer, norm_type):
    clipper = GradientClipper("norm", max_norm=0.05, norm_type=norm_type)
    task, trainer = _fit(make_trainer, [clipper], optimizer="sgd", lr=0.1)
    assert task.post_hook_grads
    for grads in task.post_hook_grads:
        assert _global_norm(grads, norm_type) <= 0.05 + 1e-6
    assert trainer.callback_metrics["grad_clipped_frac"] > 0
    assert "grad_norm" in trainer.callback_metrics


def test_value_clipping_bounds_every_element(make_trainer):
    task, trainer = _fit(make_trainer, [GradientClipper("value", clip_value=1e-3)])
    for grads in task.post_hook_grads:
        assert max(g.abs().max() for g in grads) <= torch.tensor(1e-3)  # in float32
    assert trainer.callback_metrics["grad_clipped_frac"] == 1.0


def test_adaptive_clipping_uses_the_percentile_of_seen_norms(make_trainer):
    clipper = GradientClipper("adaptive", percentile=25, history=100)
    task, _ = _fit(make_trainer, [clipper])
    seen = clipper._norms[~torch.isnan(clipper._norms)]
    assert len(seen) == clipper._seen == len(task.post_hook_grads)
    assert clipper.last_threshold == pytest.approx(torch.quantile(seen, 0.25).item())
    assert _global_norm(task.post_hook_grads[-1]) <= clipper.last_threshold + 1e-6


def test_clipping_under_bf16_mixed_precision_on_cpu(make_trainer):
    clipper = GradientClipper("norm", max_norm=0.05)
    data = ClassificationData("digits", batch_size=128)
    task = Faulty(data.input_shape, 10, network_kwargs={"hidden_dims": [32]})
    trainer = make_trainer(max_epochs=1, callbacks=[clipper], precision="bf16-mixed")
    trainer.fit(task, datamodule=data)
    for grads in task.post_hook_grads:
        assert all(g.dtype == torch.float32 for g in grads)
        assert _global_norm(grads) <= 0.05 + 1e-6
    assert clipper.last_norm.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "clamp"}, "mode must be one of norm|value|adaptive"),
        ({"max_norm": -1.0}, "max_norm must be a finite number > 0, got -1.0"),
        ({"max_norm": 0}, "max_norm must be a finite number > 0"),
        ({"mode": "value"}, "mode 'value' needs clip_value > 0, got None"),
        ({"mode": "adaptive", "percentile": 0}, r"percentile must be in \(0, 100\]"),
        ({"norm_type": -2}, "norm_type must be > 0 or inf"),
    ],
)
def test_clipper_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GradientClipper(**kwargs)


# --- LayerDiagnostics ----------------------------------------------------------------------
class Recorder(L.Callback):
    """Direct computation of the diagnostics at step 0, from outside the callback."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step == 0:
            self.named = [
                (n, p.detach().clone(), p.grad.detach().clone())
                for n, p in pl_module.named_parameters()
                if p.grad is not None
            ]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 1:
            params = dict(pl_module.named_parameters())
            self.expected = {
                n: {
                    "w_norm": w.norm().item(),
                    "grad_norm": g.norm().item(),
                    "update_ratio": (params[n].detach() - w).norm().item() / w.norm().item(),
                    "trust_ratio": w.norm().item() / g.norm().item(),
                }
                for n, w, g in self.named
            }


def test_logged_layer_norms_equal_a_direct_computation(make_trainer, tmp_path):
    import csv

    from lightning.pytorch.loggers import CSVLogger

    diag, rec = LayerDiagnostics(every_n_steps=5, png="ratios.png"), Recorder()
    data = ClassificationData("digits", batch_size=128)
    task = ClassificationTask(data.input_shape, 10, network_kwargs={"hidden_dims": [32]})
    trainer = make_trainer(max_epochs=2, callbacks=[rec, diag], logger=CSVLogger(tmp_path))
    trainer.fit(task, datamodule=data)
    step0, table = diag.history[0]
    assert step0 == 0 and [s for s, _ in diag.history] == [0, 5, 10, 15]
    assert set(table) == set(rec.expected)
    for name, row in rec.expected.items():
        for q, value in row.items():
            assert table[name][q] == pytest.approx(value, rel=1e-5), (name, q)
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    logged = next(r for r in rows if r.get("diag/net.1.weight/w_norm"))
    assert float(logged["diag/net.1.weight/w_norm"]) == pytest.approx(
        rec.expected["net.1.weight"]["w_norm"], rel=1e-5
    )
    png = next(tmp_path.rglob("ratios.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diagnostics_bad_argument():
    with pytest.raises(ConfigError, match="every_n_steps must be an integer >= 1, got 0"):
        LayerDiagnostics(every_n_steps=0)


# --- checkpoint and resume -----------------------------------------------------------------
def test_checkpoint_keeps_the_guard_and_clipper_state(make_trainer, tmp_path):
    guard, clipper = NonFiniteGuard("skip"), GradientClipper("adaptive", history=50)
    task, trainer = _fit(make_trainer, [guard, clipper], fault="loss", fault_step=2)
    path = tmp_path / "health.ckpt"
    trainer.save_checkpoint(path)
    assert guard.skipped == 1 and clipper._seen == trainer.global_step - 1

    new_guard, new_clipper = NonFiniteGuard("skip"), GradientClipper("adaptive", history=50)
    data = ClassificationData("digits", batch_size=128)
    resumed = Faulty(data.input_shape, 10, network_kwargs={"hidden_dims": [32, 16]})
    second = make_trainer(max_epochs=2, callbacks=[new_guard, new_clipper])
    second.fit(resumed, datamodule=data, ckpt_path=path)
    assert new_guard.skipped == 1
    assert new_clipper._seen == clipper._seen + (second.global_step - trainer.global_step)
    assert torch.equal(new_clipper._norms[: clipper._seen], clipper._norms[: clipper._seen])


def test_recipes_switch_the_callbacks_on_by_name(tmp_path, monkeypatch):

    from lit_optim.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-optim"])
    extra = tmp_path / "health.yaml"
    extra.write_text(
        "trainer:\n"
        "  callbacks:\n"
        "    - class_path: lit_optim.callbacks.NonFiniteGuard\n"
        "      init_args: {action: rollback, lr_factor: 0.1, loss_spike_factor: 10}\n"
        "    - class_path: GradientClipper\n"  # a short class name works too
        "      init_args: {mode: adaptive, percentile: 10}\n"
        "    - class_path: lit_optim.callbacks.LayerDiagnostics\n"
        "      init_args: {every_n_steps: 5, png: layer_ratios.png}\n"
    )
    recipe = ROOT / "recipes" / "digits" / "mlp.yaml"
    main(
        [
            "fit",
            "--config",
            str(recipe),
            "--config",
            str(extra),
            "--trainer.max_epochs",
            "2",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    assert any(tmp_path.rglob("layer_ratios.png"))
    saved = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())
    names = [cb["class_path"] for cb in saved["trainer"]["callbacks"]]
    assert names == [
        "lit_optim.callbacks.NonFiniteGuard",
        "lit_optim.callbacks.GradientClipper",
        "lit_optim.callbacks.LayerDiagnostics",
    ]


def test_each_lit_tune_trial_keeps_its_own_diagnostics_plot(tmp_path, monkeypatch):

    from tuning.cli import main as lit_tune

    monkeypatch.chdir(tmp_path)
    recipe = yaml.safe_load((ROOT / "recipes" / "digits" / "mlp.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 1
    recipe["trainer"]["callbacks"] = [
        {
            "class_path": "lit_optim.callbacks.LayerDiagnostics",
            "init_args": {"every_n_steps": 5, "png": "ratios.png"},
        }
    ]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "space.yaml").write_text(
        yaml.safe_dump({"metric": "val_acc", "params": {"model.lr": "log[1e-3, 1e-1]"}})
    )
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "d",
            "--n-trials",
            "2",
            "--population",
            "1",
            "--accelerator",
            "cpu",
        ]
    )
    plots = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("ratios.png"))
    assert plots == ["runs/d/trial_0/ratios.png", "runs/d/trial_1/ratios.png"]


def test_bad_callback_argument_from_a_recipe_is_one_clear_error(tmp_path, monkeypatch, capsys):

    from lit_optim.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-optim"])
    recipe = ROOT / "recipes" / "digits" / "mlp.yaml"
    with pytest.raises(SystemExit) as info:
        main(
            [
                "fit",
                "--config",
                str(recipe),
                "--trainer.callbacks+=NonFiniteGuard",
                "--trainer.callbacks.action=explode",
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert "explode" in err


def test_nan_weight_with_rollback_goes_back_to_finite_weights(make_trainer):
    guard = NonFiniteGuard("rollback", check_params=True, snapshot_every_n_steps=2)
    task, trainer = _fit(make_trainer, [guard], fault="param", fault_step=5)
    assert guard.rollbacks == 1
    # The weight was poisoned before step 5's forward; the check after step 5 caught it and
    # step 6 started from the snapshot taken at the clean check of step 4.
    for snap, now in zip(task.before[4], task.before[6]):
        assert torch.equal(snap, now)
    assert all(torch.isfinite(p).all() for p in task.parameters())


def test_nan_weight_with_stop_names_the_weight(make_trainer):
    guard = NonFiniteGuard("stop", check_params=True)
    with pytest.warns(UserWarning, match="non-finite weights in net.3.weight"):
        _fit(make_trainer, [guard], fault="param", fault_step=5)
    assert "net.3.weight" in guard.stop_reason


def test_nan_weight_with_skip_gives_up_since_no_step_can_fix_it(make_trainer):
    guard = NonFiniteGuard("skip", check_params=True, max_consecutive=2)
    with pytest.raises(NonFiniteError, match="net.3.weight.*giving up"):
        _fit(make_trainer, [guard], fault="param", fault_step=5)


# --- exact in every precision, with wrappers and per-step schedules ---------------------------
class Recorded(Faulty):
    """Faulty, plus the optimizer state and the step-scheduler position around each step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.opt_before: dict[int, dict] = {}
        self.opt_after: dict[int, dict] = {}
        self.sched: dict[int, tuple] = {}

    def _state(self):
        import copy

        return copy.deepcopy(self.trainer.optimizers[0].state_dict())

    def on_train_batch_start(self, batch, batch_idx):
        super().on_train_batch_start(batch, batch_idx)
        self.opt_before[self.trainer.global_step] = self._state()
        self.sched[self.trainer.global_step] = self._schedule()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        super().on_train_batch_end(outputs, batch, batch_idx)
        self.opt_after[self.trainer.global_step - 1] = self._state()

    def _schedule(self):
        configs = self.trainer.lr_scheduler_configs
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        return (configs[0].scheduler.last_epoch if configs else None, lr)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _fit_recorded(make_trainer, callbacks, *, epochs=1, **task_kwargs):
    data = ClassificationData("digits", batch_size=128)
    task = Recorded(data.input_shape, 10, network_kwargs={"hidden_dims": [32, 16]}, **task_kwargs)
    trainer = make_trainer(max_epochs=epochs, callbacks=callbacks, log_every_n_steps=1)
    trainer.fit(task, datamodule=data)
    return task, trainer


def _skip_step_leaves_everything(task, step):
    for b, a in zip(task.before[step], task.after[step]):
        assert torch.equal(a, b), "weights moved on a dropped step"
    assert _same(task.opt_before[step], task.opt_after[step]), "optimizer state moved"


@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS.names()) - {"lbfgs"}))
def test_a_skipped_step_leaves_every_optimizer_bit_identical(make_trainer, name):
    kwargs = {"optimizer_kwargs": {"k": 2}} if name == "lookahead" else {}
    task, _ = _fit_recorded(
        make_trainer, [NonFiniteGuard("skip")], fault="loss", optimizer=name, lr=1e-3, **kwargs
    )
    _skip_step_leaves_everything(task, 3)


@pytest.mark.parametrize("k", [2, 4, 5])
def test_rollback_with_lookahead_ends_on_the_snapshot(make_trainer, k):
    guard = NonFiniteGuard("rollback", snapshot_every_n_steps=2)
    task, _ = _fit_recorded(
        make_trainer,
        [guard],
        fault="grad",
        fault_step=5,
        optimizer="lookahead",
        optimizer_kwargs={"k": k},
    )
    assert guard.rollbacks == 1
    for snap, after in zip(task.before[4], task.after[5]):
        assert torch.equal(snap, after)
    assert _same(task.opt_before[4]["fast_steps"], task.opt_after[5]["fast_steps"])


@pytest.mark.parametrize(
    ("scheduler", "kwargs"),
    [
        ("cosine", {}),
        ("onecycle", {}),
        ("plateau", {"warmup_steps": 6}),  # the warmup ramp is an optimizer step hook
    ],
)
def test_a_skipped_step_does_not_advance_the_schedule(make_trainer, scheduler, kwargs):
    task, trainer = _fit_recorded(
        make_trainer,
        [NonFiniteGuard("skip")],
        fault="loss",
        scheduler=scheduler,
        scheduler_kwargs=kwargs,
    )
    assert task.sched[4] == task.sched[3], "the lr moved on a dropped step"
    assert task.sched[3] != task.sched[2] or scheduler == "plateau"
    assert task.sched[5] != task.sched[4]  # and moves again on the next real step
    _skip_step_leaves_everything(task, 3)


@pytest.mark.parametrize("precision", ["64-true", "32-true", "bf16-mixed", "bf16-true", "16-true"])
def test_guard_and_clipper_work_in_every_precision(make_trainer, precision):
    guard, clipper = NonFiniteGuard("skip"), GradientClipper("norm", max_norm=1e-3)
    task, trainer = _fit_precision(make_trainer, [guard, clipper], precision)
    assert guard.skipped == 1
    assert float(trainer.callback_metrics["grad_clipped_frac"]) == 1.0
    for b, a in zip(task.before[3], task.after[3]):
        assert torch.equal(a, b)
    if precision == "64-true":
        assert all(p.dtype == torch.float64 for p in task.parameters())


def _fit_precision(make_trainer, callbacks, precision):
    data = ClassificationData("digits", batch_size=128)
    # SGD: Adam's eps = 1e-8 underflows to 0 in pure fp16 ("16-true"), whatever the callbacks.
    task = Recorded(
        data.input_shape,
        10,
        network_kwargs={"hidden_dims": [32, 16]},
        fault="grad",
        optimizer="sgd",
        lr=0.1,
    )
    trainer = make_trainer(
        max_epochs=1, callbacks=callbacks, log_every_n_steps=1, precision=precision
    )
    trainer.fit(task, datamodule=data)
    return task, trainer


def test_grad_clipped_frac_is_the_share_of_each_epoch(make_trainer):
    clipper = GradientClipper("norm", max_norm=1e-6)  # every step of epoch 1 is clipped

    class Loosen(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                clipper.max_norm = 1e9  # none of epoch 2's

    seen = []

    class Read(L.Callback):  # the previous epoch's value, once the epoch's logs are in
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch:
                seen.append(float(trainer.callback_metrics["grad_clipped_frac"]))

        def on_train_end(self, trainer, pl_module):
            seen.append(float(trainer.callback_metrics["grad_clipped_frac"]))

    _fit(make_trainer, [clipper, Loosen(), Read()], epochs=3)
    assert seen == [1.0, 0.0, 0.0]  # a running share would read 1, 1/2, 1/3


def test_two_instances_of_a_callback_keep_separate_checkpoint_state(make_trainer, tmp_path):
    tight, loose = (
        GradientClipper("adaptive", percentile=10),
        GradientClipper("adaptive", percentile=90),
    )
    _, trainer = _fit(make_trainer, [tight, loose])
    assert tight.state_key != loose.state_key
    path = tmp_path / "two.ckpt"
    trainer.save_checkpoint(path)
    states = torch.load(path, weights_only=False)["callbacks"]
    assert {tight.state_key, loose.state_key} <= set(states)
    again = [GradientClipper("adaptive", percentile=10), GradientClipper("adaptive", percentile=90)]
    data = ClassificationData("digits", batch_size=128)
    resumed = Faulty(data.input_shape, 10, network_kwargs={"hidden_dims": [32, 16]})
    make_trainer(max_epochs=1, callbacks=again).fit(resumed, datamodule=data, ckpt_path=path)
    for old, new in zip((tight, loose), again):
        assert torch.equal(new._norms[: old._seen], old._norms[: old._seen])


# --- TimedProgressBar --------------------------------------------------------------------
def test_timed_bar_redraws_at_its_interval_and_on_the_last_batch(make_trainer, monkeypatch):
    from lightning.pytorch.callbacks import TQDMProgressBar

    from lit_optim.callbacks import TimedProgressBar, timed_bar

    clock = iter(i * 0.1 for i in range(10_000))  # each batch takes 0.1 s
    monkeypatch.setattr(timed_bar.time, "monotonic", lambda: next(clock))
    drawn: list[int] = []
    original = TQDMProgressBar.on_train_batch_end

    def counting(self, trainer, pl_module, outputs, batch, batch_idx):
        drawn.append(batch_idx)
        return original(self, trainer, pl_module, outputs, batch, batch_idx)

    monkeypatch.setattr(TQDMProgressBar, "on_train_batch_end", counting)
    data = ClassificationData("digits", batch_size=128)
    task = ClassificationTask(data.input_shape, 10, network_kwargs={"hidden_dims": [8]})
    trainer = make_trainer(
        max_epochs=1,
        callbacks=[TimedProgressBar(interval=0.25)],
        enable_progress_bar=True,
        limit_val_batches=0,
    )
    trainer.fit(task, datamodule=data)
    # 0.1 s a batch, a redraw once 0.25 s passed: the first, every third, the epoch's last
    last = trainer.num_training_batches - 1
    assert last >= 7 and drawn == sorted({*range(0, last, 3), last}), drawn


def test_fit_shows_the_timed_bar_in_a_terminal_and_epoch_lines_in_a_log(monkeypatch):
    from lit_optim.callbacks import TimedProgressBar
    from lit_optim.callbacks.epoch_lines import EpochLines
    from lit_optim.cli.trainer_setup import with_cli_defaults

    for terminal, kind in ((True, TimedProgressBar), (False, EpochLines)):
        monkeypatch.setattr("sys.stdout.isatty", lambda terminal=terminal: terminal)
        callbacks = with_cli_defaults({})[0]["callbacks"]
        assert [type(cb) for cb in callbacks if type(cb) in (TimedProgressBar, EpochLines)] == [
            kind
        ]


def test_the_step_loss_is_on_the_timed_bar_but_not_read_back_every_batch(make_trainer):
    # Lightning reads a prog_bar value back to the host after every batch (a GPU sync each
    # step); the task logs its step loss without prog_bar and the bar reads it when it draws.
    from lit_optim.callbacks import TimedProgressBar

    class Probe(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            self.pbar = dict(trainer.progress_bar_metrics)
            self.shown = bar.get_metrics(trainer, pl_module)
            self.logged = float(trainer.callback_metrics["train_loss_step"])

    data = ClassificationData("digits", batch_size=128)
    task = ClassificationTask(data.input_shape, 10, network_kwargs={"hidden_dims": [8]})
    bar, probe = TimedProgressBar(), Probe()
    make_trainer(
        max_epochs=1,
        callbacks=[bar, probe],
        enable_progress_bar=True,
        log_every_n_steps=1,
        limit_val_batches=0,
    ).fit(task, datamodule=data)
    assert "train_loss_step" not in probe.pbar
    assert probe.shown["train_loss_step"] == pytest.approx(probe.logged)
    assert "train_loss_step" not in TimedProgressBar(also_show=()).get_metrics(task.trainer, task)


@pytest.mark.parametrize("monitor", [False, True])
def test_epoch_lines_show_each_distinct_lr(make_trainer, capsys, tmp_path, monitor):
    # A LearningRateMonitor also puts a logging step's lr of each group among the logged
    # values: neither the line nor the run summary shows those as an epoch's values.
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    from lit_optim.callbacks.epoch_lines import EpochLines
    from lit_optim.callbacks.run_summary import RunSummary

    class Undeclared(ClassificationTask):  # as a user's module: the summary picks names
        EPOCH_METRICS = None

    data = ClassificationData("digits", batch_size=256)
    task = Undeclared(
        data.input_shape,
        10,
        network_kwargs={"hidden_dims": [8]},
        optimizer="sgd",
        lr=0.02,
        param_groups=[{"params": "net.1.*", "lr": 0.005}],
    )
    summary = RunSummary()
    extra = {"logger": CSVLogger(tmp_path), "log_every_n_steps": 1} if monitor else {}
    trainer = make_trainer(
        max_epochs=1,
        enable_progress_bar=True,
        limit_val_batches=0,
        **extra,
        callbacks=[EpochLines(), summary, *[LearningRateMonitor()] * monitor],
    )
    trainer.fit(task, datamodule=data)
    assert ("lr/pg1" in trainer.callback_metrics) == monitor
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch 1")]
    assert "  lr 0.005/0.02" in line or "  lr 0.02/0.005" in line, line
    assert "pg1" not in line and set(summary.history) == {"train_loss", "train_acc"}


def test_the_cli_adds_a_learning_rate_monitor_where_there_is_a_logger():
    from lightning.pytorch.callbacks import LearningRateMonitor

    from lit_optim.cli.trainer_setup import with_cli_defaults

    def monitors(config):
        return [
            cb
            for cb in with_cli_defaults(config)[0]["callbacks"]
            if isinstance(cb, LearningRateMonitor)
        ]

    assert [m.logging_interval for m in monitors({})] == ["step"]  # Lightning's default logger
    assert monitors({"logger": False}) == [] and monitors({"logger": []}) == []
    own = LearningRateMonitor(logging_interval="epoch")
    assert monitors({"callbacks": [own]}) == [own]  # the recipe's own, not a second

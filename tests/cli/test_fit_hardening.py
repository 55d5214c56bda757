"""`lit-optim fit` hardening: every mistake is one line, no silent wrong result, checkpoints
that resume, output a person can read. Each case runs the real entry point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lit_optim.cli.main import main
from support import ROOT, exit_status

DIGITS = str(ROOT / "recipes" / "digits" / "mlp.yaml")
FAST = ["--trainer.max_epochs", "2", "--trainer.enable_model_summary", "false"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-optim"])


def _exit_code(*args: str) -> int:
    return exit_status(main, *args)


def _cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """The installed command in a subprocess: its stdout is a pipe, as in CI or `| tee`."""
    return subprocess.run(
        [sys.executable, "-m", "lit_optim.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- every mistake: one line, exit 2, no traceback, before training --------------------------------
def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "text.ckpt").write_text("hello, I am not a checkpoint\n")
    (tmp / "random.ckpt").write_bytes(os.urandom(4096))
    fit = ["fit", "--config", DIGITS]
    cases = [
        (["--model.optimizer_kwargs", '{"betas": [1.5, 0.9]}'], "betas[0] must be in [0, 1)"),
        (["--model.optimizer_kwargs", '{"betas": [0.9]}'], "betas must be a pair"),
        (
            ["--model.optimizer", "sgd", "--model.optimizer_kwargs", '{"momentum": -0.5}'],
            "momentum must be in [0, 1), got -0.5",
        ),
        (["--model.optimizer_kwargs", '{"eps": -1}'], "eps must be a finite number ≥ 0"),
        (
            ["--model.optimizer", "lamb", "--model.optimizer_kwargs", '{"betas": [0.9, 1.2]}'],
            "betas[1] must be in [0, 1)",
        ),
        (
            ["--model.optimizer", "lookahead", "--model.optimizer_kwargs", '{"k": 0}'],
            "lookahead's k must be an integer >= 1",
        ),
        (
            ["--model.scheduler", "cyclic", "--model.scheduler_kwargs", '{"mode": "triangle"}'],
            "scheduler 'cyclic' mode must be one of triangular, triangular2, exp_range",
        ),
        (
            ["--model.scheduler", "step", "--model.scheduler_kwargs", '{"gamma": -1}'],
            "scheduler 'step' gamma must be a finite number > 0",
        ),
        (
            ["--model.scheduler", "inverse_time", "--model.scheduler_kwargs", '{"decay_rate": -1}'],
            "decay_rate must be a finite number ≥ 0",
        ),
        (
            ["--model.scheduler", "multistep", "--model.scheduler_kwargs", '{"milestones": "abc"}'],
            "milestones must be a list of epochs",
        ),
        (["--model.network_kwargs", '{"hidden_dims": "abc"}'], "hidden_dims must be a list"),
        (["--model.network_kwargs", '{"hidden_dims": 64}'], "hidden_dims must be a list"),
        (["--model.network_kwargs", '{"hidden_dims": [1.5]}'], "each of hidden_dims"),
        (["--model.param_groups", '[{"params": "net.*", "lr": NaN}]'], "param_groups[0].lr"),
        (
            ["--model.param_groups", '[{"params": "net.*", "weight_decay": true}]'],
            "param_groups[0].weight_decay",
        ),
        (["--model.lr", "nan"], "model.lr must be a finite number, got nan"),
        (["--model.lr", "inf"], "model.lr must be a finite number, got inf"),
        (["--model.lr", "-1"], "lr must be a finite number > 0"),
        (["--model.weight_decay", "-1"], "weight_decay must be a finite number ≥ 0"),
        (["--trainer.max_epochs", "-5"], "max_epochs"),
        (["--trainer.accumulate_grad_batches", "0"], "trainer.accumulate_grad_batches must be"),
        (["--trainer.gradient_clip_val", "-1"], "trainer.gradient_clip_val must be"),
        (["--trainer.log_every_n_steps", "0"], "trainer.log_every_n_steps must be"),
        (["--trainer.strategy", "dpp"], "invalid strategy name"),
        (["--trainer.precision", "13"], "trainer.precision"),
        (["--ckpt_path", str(tmp / "missing.ckpt")], "missing.ckpt: no such file"),
        (["--ckpt_path", str(tmp / "text.ckpt")], "text.ckpt: not a checkpoint"),
        (["--ckpt_path", str(tmp / "random.ckpt")], "random.ckpt: not a checkpoint"),
        (["--ckpt_path", "last"], "--ckpt_path last: no last.ckpt in"),
        (
            [
                "--trainer.callbacks+=lit_optim.callbacks.GradientClipper",
                "--trainer.callbacks.percentile",
                "150",
            ],
            "percentile must be in (0, 100]",
        ),
        (
            [
                "--trainer.callbacks+=lit_optim.callbacks.NonFiniteGuard",
                "--trainer.callbacks.action",
                "explode",
            ],
            "action",
        ),
        (["--model.optimizer", "adamm"], "did you mean 'adam'"),
        (["--model.scheduler", "cosin"], "did you mean 'cosine'"),
        (["--model.network", "mlpp"], "did you mean 'mlp'"),
        (["--data.dataset", "digitz"], "did you mean 'digits'"),
        (["--data.batch_size", "0"], "batch_size must be an integer >= 1"),
        (["--data.val_fraction", "1.5"], "val_fraction must be in [0, 1)"),
        (["--model.lrr", "0.1"], "did you mean 'lr'"),
        (
            [
                "--model.scheduler",
                "plateau",
                "--model.scheduler_kwargs",
                '{"monitor": "val_accuracy"}',
            ],
            "never logged",
        ),
        (["--model", "no_such_pkg.Module"], "No module named 'no_such_pkg'"),
        (["--model.lr_scaling", "linear"], "needs base_batch_size"),
        (["--model.scheduler_kwargs", '{"warmup_steps": -3}'], "warmup_steps must be"),
    ]
    out = [([*fit, *args], message) for args, message in cases]
    out += [
        (["test", "--config", DIGITS], "lit-optim test needs --ckpt_path"),
        (["validate", "--config", DIGITS], "lit-optim validate needs --ckpt_path"),
        (["test", "--config", DIGITS, "--ckpt_path", "best"], "--ckpt_path best: no last.ckpt"),
        (["fit", "--config", str(tmp / "none.yaml")], "none.yaml"),
        (["list", "optimisers"], "did you mean 'optimizers'"),
    ]
    if not torch.cuda.is_available():
        out.append(([*fit, "--trainer.accelerator", "gpu"], "gpu"))
    return out


def test_at_least_30_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys):
    cases = _bad_inputs(tmp_path)
    assert len(cases) >= 30
    for args, message in cases:
        code = _exit_code(*args)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if "error:" in line]
        assert code == 2, (args, err[-2000:])
        assert "Traceback" not in err, (args, err[-2000:])
        assert len(errors) == 1 and errors[0].startswith("lit-optim: error: "), (args, err[-2000:])
        assert message in errors[0], (args, errors[0])
    assert not list(tmp_path.rglob("*.ckpt*")) or {p.name for p in tmp_path.rglob("*.ckpt")} == {
        "text.ckpt",
        "random.ckpt",
    }  # nothing trained, nothing saved


# -- checkpoints -----------------------------------------------------------------------------------
def test_a_killed_fit_resumes_from_last_ckpt_where_it_stopped(tmp_path):
    tmpdir = tmp_path / "tmpdir"  # where fsspec's transaction would leave its temp file
    tmpdir.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lit_optim.cli.main",
            "fit",
            "--config",
            DIGITS,
            "--trainer.max_epochs",
            "1000",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and not last.exists():
        time.sleep(0.2)
    time.sleep(2)  # a few more epochs, killed wherever it is, maybe inside a save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists()
    assert [p.name for p in tmpdir.iterdir()] == []
    done = torch.load(last, map_location="cpu", weights_only=True)["epoch"] + 1  # 0-based index
    run = _cli(
        "fit",
        "--config",
        DIGITS,
        "--ckpt_path",
        "last",
        "--trainer.max_epochs",
        str(done + 1),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # Resumed: one more epoch, not a retraining from epoch 0.
    assert [line.split()[1] for line in run.stdout.splitlines() if line.startswith("epoch ")] == [
        f"{done + 1}/{done + 1}"
    ], run.stdout
    assert f"fit finished: {done + 1} epochs" in run.stdout


def test_checkpoint_temp_files_sit_beside_the_target_and_are_cleaned(tmp_path, monkeypatch):
    import tempfile

    from lit_optim.training.checkpoints import SameFolderCheckpointIO

    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    target = tmp_path / "ckpts" / "last.ckpt"
    io = SameFolderCheckpointIO()
    io.save_checkpoint({"w": torch.arange(3)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.arange(3))
    assert list(tmpdir.iterdir()) == [] and [p.name for p in target.parent.iterdir()] == [
        "last.ckpt"
    ]
    # A writer killed mid-save leaves <target>.tmp-<pid>; the next save removes it when that
    # process is gone (a pid that no process has), and keeps one of a live process.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = target.with_name(f"last.ckpt.tmp-{dead.pid}")
    live = target.with_name(f"last.ckpt.tmp-{os.getpid() + 0}x")  # not a pid: left alone
    orphan.write_bytes(b"partial")
    live.write_bytes(b"not ours")
    io.save_checkpoint({"w": torch.ones(2)}, target)
    assert not orphan.exists() and live.exists()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"w": torch.zeros(2)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(2))  # intact
    assert not list(target.parent.glob(f"last.ckpt.tmp-{os.getpid()}"))


def test_resuming_names_the_settings_the_checkpoint_replaces(tmp_path, capsys):
    assert _exit_code("fit", "--config", DIGITS, *FAST) == 0
    capsys.readouterr()
    assert (
        _exit_code(
            "fit",
            "--config",
            DIGITS,
            *FAST[2:],
            "--trainer.max_epochs",
            "3",
            "--ckpt_path",
            "last",
            "--model.optimizer",
            "sgd",
            "--model.lr",
            "0.5",
        )
        == 0
    )
    err = capsys.readouterr().err
    warning = next(line for line in err.splitlines() if line.startswith("lit-optim: warning:"))
    assert "optimizer: 'sgd' → 'adam'" in warning and "lr: 0.5 → 0.003" in warning


def test_test_and_validate_take_last_or_best_of_the_recipes_runs(tmp_path, capsys):
    assert _exit_code("fit", "--config", DIGITS, *FAST) == 0
    for which in ("best", "last"):
        capsys.readouterr()
        assert _exit_code("test", "--config", DIGITS, "--ckpt_path", which) == 0
        assert "test_acc" in capsys.readouterr().out


def test_hparams_yaml_is_plain_yaml(tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from lit_optim import ClassificationData, ClassificationTask

    task = ClassificationTask(
        input_shape=(1, 8, 8),
        num_classes=10,
        optimizer_kwargs={"betas": (0.9, 0.99)},
        scheduler="multistep",
        scheduler_kwargs={"milestones": (1,)},
    )
    data = ClassificationData("digits", dataset_kwargs={})
    trainer = L.Trainer(
        max_epochs=1,
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=1,
        limit_val_batches=1,
    )
    trainer.fit(task, datamodule=data)
    hparams = yaml.safe_load(next(tmp_path.rglob("hparams.yaml")).read_text())
    assert hparams["input_shape"] == [1, 8, 8]
    assert hparams["optimizer_kwargs"] == {"betas": [0.9, 0.99]}


# -- no silent wrong result ------------------------------------------------------------------------
@pytest.mark.parametrize("guard", [False, True])
def test_a_run_that_ends_on_nan_says_so_exits_1_and_keeps_no_nan_checkpoint(tmp_path, guard):
    # Without a guard the weights are NaN from the first step; with the recipe's rollback
    # guard the weights stay finite but the epoch's loss includes the NaN steps.
    (tmp_path / "bare.yaml").write_text("{}\n" if guard else "trainer:\n  callbacks: []\n")
    run = _cli(
        "fit",
        "--config",
        DIGITS,
        "--config",
        "bare.yaml",
        "--model.lr",
        "1e30",
        *FAST,
        cwd=tmp_path,
    )
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert run.returncode == 1, run.stderr[-2000:]
    assert len(errors) == 1 and "training ended on non-finite values" in errors[0]
    assert "Traceback" not in run.stderr
    bound = torch.finfo(torch.float32).max ** 0.5  # beyond it, the next squares overflow
    for ckpt in tmp_path.rglob("*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values()), ckpt
        # Nor finite but diverged weights (the guard's run once kept weights of ~7e30).
        assert all(
            v.abs().max() <= bound for v in state.values() if v.is_floating_point() and v.numel()
        ), (ckpt, max(float(v.abs().max()) for v in state.values()))


def test_a_run_that_diverges_with_finite_weights_keeps_no_checkpoint_of_its_diverged_epochs(
    tmp_path,
):
    """Adam at lr 1e8 without the guard: the loss climbs to ~1e16-1e28 with weights near 1e9
    (finite, under √max), and the run ends "diverged"; its best and last checkpoints held
    exactly those weights."""
    (tmp_path / "bare.yaml").write_text("trainer:\n  callbacks: []\n")
    run = _cli(
        "fit", "--config", DIGITS, "--config", "bare.yaml", "--model.lr", "1e8", *FAST, cwd=tmp_path
    )
    assert run.returncode == 1, run.stderr[-2000:]
    assert "training ended diverged" in run.stderr
    assert not list(tmp_path.rglob("*.ckpt")), list(tmp_path.rglob("*.ckpt"))
    assert "no checkpoint is saved while the run is diverged" in run.stderr


def test_a_float64_run_that_diverges_without_nan_exits_1_and_offers_nothing_to_test(tmp_path):
    # The recipe's own rollback guard catches the first NaN and goes on at lr × 0.1, still far
    # too high: in float64 the loss stays finite (~1e38) and the run "finished" with exit 0.
    (tmp_path / "f64.yaml").write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "precision": "64-true",
                    "callbacks": [
                        {
                            "class_path": "lit_optim.callbacks.NonFiniteGuard",
                            "init_args": {"action": "rollback", "lr_factor": 0.1},
                        }
                    ],
                }
            }
        )
    )
    run = _cli(
        "fit",
        "--config",
        DIGITS,
        "--config",
        "f64.yaml",
        "--model.lr",
        "1e30",
        "--trainer.max_epochs",
        "3",
        "--trainer.enable_progress_bar",
        "false",
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "training ended diverged: the training loss ended at" in errors[0]
    assert "Traceback" not in run.stderr and "test it:" not in run.stdout


def test_divergence_is_read_from_the_loss_and_the_weights_dtype():
    from lit_optim.callbacks import DIVERGENCE_FACTOR, LossHistory, unbounded_weights

    history = LossHistory()
    for epoch_losses in ([2.0, 1.0], [0.5, 0.5], [400.0, 600.0]):
        for value in epoch_losses:
            history.add({"loss": torch.tensor(value)})
        history.end_epoch()
    assert history.first == 2.0 and history.epochs == [1.5, 0.5, 500.0]
    assert history.diverged() is None  # 500 / 0.5 = 1000: not above the factor
    history.add(torch.tensor(1000.0))  # a bare tensor, as training_step may return
    history.end_epoch()
    assert "ended at 1e+03, 2e+03 × the lowest it reached (0.5" in history.diverged()
    assert DIVERGENCE_FACTOR == 1e3
    negative = LossHistory()  # a log-likelihood: no ratio to read
    for value in (-1.0, 5000.0):
        negative.add(torch.tensor(value))
        negative.end_epoch()
    assert negative.diverged() is None
    net = torch.nn.Linear(2, 2)
    assert unbounded_weights(net) is None
    with torch.no_grad():
        net.weight[0, 0] = 2e19  # float32: √max ≈ 1.84e19
    assert unbounded_weights(net).startswith("weights of weight (2e+19) beyond √max of float32")
    assert unbounded_weights(net.double()) is None  # float64's bound is ≈ 1.3e154


def test_a_batch_larger_than_the_training_set_is_warned_with_the_numbers(tmp_path):
    run = _cli("fit", "--config", DIGITS, "--data.batch_size", "100000", *FAST, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "batch_size 100000 is larger than the 1150 training samples" in run.stderr


def test_test_names_the_checkpoint_it_scores(tmp_path):
    """The best epoch by the objective where there is one, else the last (it said "best
    checkpoint" for both)."""
    run = _cli(
        "fit",
        "--config",
        DIGITS,
        "--test",
        "true",
        "--objective.metric",
        "val_acc",
        *FAST,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "(best checkpoint by val_acc, --test)" in run.stdout, run.stdout
    run = _cli("fit", "--config", DIGITS, "--test", "true", *FAST, cwd=tmp_path)
    assert "(last epoch, --test)" in run.stdout, run.stdout


def test_val_fraction_0_trains_on_the_whole_split_and_test_reports_right_after(tmp_path):
    run = _cli(
        "fit",
        "--config",
        DIGITS,
        "--data.val_fraction",
        "0",
        "--model.scheduler",
        "cosine",
        "--test",
        "true",
        *FAST,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "train_acc" in run.stdout and "val_acc" not in run.stdout
    # No objective, no validation: the last epoch is what --test scores, and says so.
    assert "test_acc" in run.stdout and "(last epoch, --test)" in run.stdout
    # A schedule that monitors validation cannot run without it: one line.
    run = _cli(
        "fit",
        "--config",
        DIGITS,
        "--data.val_fraction",
        "0",
        "--model.scheduler",
        "plateau",
        *FAST,
        cwd=tmp_path,
    )
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert run.returncode == 2 and len(errors) == 1 and "val_loss" in errors[0], run.stderr[-2000:]


# -- output a person can read ----------------------------------------------------------------------
def test_closing_summary_and_one_line_per_epoch_when_stdout_is_a_pipe(tmp_path):
    run = _cli("fit", "--config", DIGITS, "--trainer.max_epochs", "3", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "\r" not in run.stdout and len(run.stdout) < 5000
    assert [line.split()[1] for line in run.stdout.splitlines() if line.startswith("epoch ")] == [
        "1/3",
        "2/3",
        "3/3",
    ]
    assert "fit finished: 3 epochs, 27 steps" in run.stdout
    assert any(
        line.split()[0] == "val_acc" and "final" in line and "best" in line
        for line in run.stdout.splitlines()
    )
    for noise in ("Tip:", "tensorboardX", "LeafSpec"):
        assert noise not in run.stderr
    command = next(line for line in run.stdout.splitlines() if line.startswith("test it: "))
    test = _cli(*command[len("test it: lit-optim ") :].split(), cwd=tmp_path)
    assert test.returncode == 0 and "test_acc" in test.stdout, test.stderr[-2000:]


def test_help_mentions_list_and_list_has_help(capsys):
    assert _exit_code("--help") == 0
    assert "lit-optim list" in capsys.readouterr().out
    assert _exit_code("list", "--help") == 0
    assert "usage: lit-optim list" in capsys.readouterr().out

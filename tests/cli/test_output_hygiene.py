"""What the commands print into a log (stdout and stderr not terminals): no carriage-return
redraws, and no Lightning warning about arguments the user never wrote. Run as the user runs
them, in a subprocess with pipes, since a bar decides what to draw when it is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT

DIGITS = str(ROOT / "recipes" / "digits" / "mlp.yaml")


def _run(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lit_optim.cli.main", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["lr-find", "--config", DIGITS, "--num_training", "20"],
        ["batch-find", "--config", DIGITS, "--max_trials", "3"],
    ],
)
def test_the_finders_write_no_bar_and_no_warning_about_arguments_into_a_log(tmp_path, command):
    out = _run(tmp_path, *command)
    assert "\r" not in out, out[-800:]
    assert "Finding best initial lr" not in out  # Lightning's own bar, drawn at 100 %
    assert "args parameter" not in out, out[-800:]


def _lit_tune(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tuning.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def test_lit_tune_run_compare_and_report_write_no_carriage_return_into_a_log(tmp_path):
    import yaml

    (tmp_path / "space.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "val_acc",
                "direction": "maximize",
                "params": {"model.lr": "log[1e-3, 1e-1]"},
            }
        )
    )
    outputs = {
        "run": _lit_tune(
            tmp_path,
            "run",
            "--recipe",
            DIGITS,
            "--space",
            "space.yaml",
            "--n-trials",
            "2",
            "--study",
            "log",
            "--accelerator",
            "cpu",
            "--trainer.max_epochs",
            "2",
        ),
        "report": _lit_tune(tmp_path, "report", "--study", "log"),
        "compare": _lit_tune(
            tmp_path,
            "compare",
            "--recipe",
            DIGITS,
            "--optimizers",
            "sgd,adam",
            "--budget",
            "2",
            "--seeds",
            "1",
            "--trainer.max_epochs",
            "2",
        ),
    }
    for command, out in outputs.items():
        assert "\r" not in out, (command, out[-800:])
        assert "args parameter" not in out, (command, out[-800:])
    assert "best" in outputs["compare"] and "report" in outputs["report"]

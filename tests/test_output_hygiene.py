"""What the commands print into a log (stdout and stderr not terminals): no carriage-return
redraws, and no Lightning warning about arguments the user never wrote. Run as the user runs
them, in a subprocess with pipes, since a bar decides what to draw when it is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "recipes" / "digits" / "mlp.yaml")


def _run(tmp_path: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lit_optim.cli.main", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize("command", [
    ["lr-find", "--config", DIGITS, "--num_training", "20"],
    ["batch-find", "--config", DIGITS, "--max_trials", "3"],
])
def test_the_finders_write_no_bar_and_no_warning_about_arguments_into_a_log(tmp_path, command):
    out = _run(tmp_path, *command)
    assert "\r" not in out, out[-800:]
    assert "Finding best initial lr" not in out  # Lightning's own bar, drawn at 100 %
    assert "args parameter" not in out, out[-800:]

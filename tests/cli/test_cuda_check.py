"""Lightning's NVML-based CUDA check is undone where NVML cannot be loaded, and only there."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lit_optim.cli.cuda_check import FLAG, cuda_check_value, launch_value, nvml_loads


@pytest.mark.parametrize(
    ("given", "nvml", "expected"),
    [
        (
            None,
            False,
            "0",
        ),  # no driver: the NVML ask always fails, torch's default is the same check
        (None, True, None),  # NVML works: Lightning's fork-safe check stays
        ("1", False, "1"),  # the user's (or the parent process's) choice is kept
        ("0", True, "0"),
    ],
)
def test_the_flag_is_restored_only_where_it_buys_nothing(given, nvml, expected):
    assert cuda_check_value(given, nvml) == expected


def test_the_cli_imports_leave_the_flag_as_decided():
    env = {k: v for k, v in os.environ.items() if k != FLAG}
    runs = {  # started together: each is a fresh interpreter importing torch and Lightning
        "unset": (env, ""),
        "user's": ({**env, FLAG: "1"}, ""),  # set before Lightning: kept
        # Lightning imported first (a user's script): the launch environment tells.
        "lightning first": (env, "import lightning; "),
    }
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"{first}import os, lit_optim.cli.lightning_cli; print(os.environ.get({FLAG!r}))",
            ],
            env=run_env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, (run_env, first) in runs.items()
    }
    flags = {name: proc.communicate(timeout=120)[0].strip() for name, proc in procs.items()}
    restored = "1" if nvml_loads() else "0"
    assert flags == {"unset": restored, "user's": "1", "lightning first": restored}


def test_the_launch_environment_is_not_what_python_assigned(monkeypatch):
    launched = launch_value()
    monkeypatch.setenv(FLAG, "assigned in python")  # as Lightning's import does
    assert launch_value() == launched != "assigned in python"

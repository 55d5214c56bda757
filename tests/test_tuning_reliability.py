"""Reliability with real processes and servers: a worker killed mid-trial, and a real
PostgreSQL server (Debian's package, loopback, a temporary data directory) shared by two
workers. `.ci/run` installs PostgreSQL, and sets LIT_OPTIM_REQUIRE_POSTGRES so CI fails
instead of skipping when the server binaries are missing."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = yaml.safe_load((ROOT / "recipes" / "digits" / "mlp.yaml").read_text())
    recipe["trainer"] = {"max_epochs": 6, "accelerator": "cpu", "log_every_n_steps": 5}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({"params": {
        "model.lr": "log[1.0e-3, 1.0e-2]", "data.batch_size": [64, 128]}}))
    return tmp_path


def _lit_tune(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuning.cli", "run", "--recipe", "recipe.yaml",
            "--space", "space.yaml", "--pruner", "none", *args]


def _trials(study: str, storage: str):
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def test_sigkill_mid_trial_then_rerun_completes_the_budget(workdir):
    storage = "sqlite:///runs/k/study.db"
    proc = subprocess.Popen(_lit_tune("--study", "k", "--n-trials", "8", "--heartbeat", "1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until 2 trials are done and a third is running
        time.sleep(0.2)
        if Path("runs/k/study.db").exists():
            try:
                trials = _trials("k", storage)
            except Exception:  # noqa: BLE001 - study not created yet
                continue
            done = [t for t in trials if t.state in FINISHED]
            if len(done) >= 2 and any(t.state == TrialState.RUNNING for t in trials):
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.value for t in _trials("k", storage) if t.state in FINISHED}
    interrupted = [t.number for t in _trials("k", storage) if t.state == TrialState.RUNNING]
    assert len(before) >= 2 and len(interrupted) == 1
    time.sleep(3.5)  # > 3 × the 1 s heartbeat: the trial is stale

    subprocess.run(_lit_tune("--study", "k", "--n-trials", "8", "--heartbeat", "1"), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    trials = _trials("k", storage)
    assert {t.number: t.value for t in trials if t.number in before} == before
    assert [t.state for t in trials if t.number == interrupted[0]] == [TrialState.FAIL]
    assert len([t for t in trials if t.state in FINISHED]) == 8


# --- PostgreSQL -------------------------------------------------------------------------------
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    return found


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("LIT_OPTIM_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    # The server refuses to run as root: run it as the 'postgres' user Debian's package makes.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="litoptim-pg-"))
    if as_user:
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, initdb, "-D", str(data / "db"), "-U", "lit", "--auth=trust"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*as_user, pg_ctl, "-D", str(data / "db"), "-l", str(data / "log"), "-w",
                    "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://lit@127.0.0.1:{port}/postgres"  # the driver of the postgres extra
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(workdir, postgres_url):
    subprocess.run(_lit_tune("--study", "pg", "--n-trials", "6", "--n-workers", "2",
                             "--storage", postgres_url), check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trials = _trials("pg", postgres_url)
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == 6 and len({t.number for t in finished}) == 6
    assert not [t for t in trials if t.state == TrialState.RUNNING]

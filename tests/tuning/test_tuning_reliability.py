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
import psutil
import pytest
import yaml
from optuna.trial import TrialState

from support import ROOT

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = yaml.safe_load((ROOT / "recipes" / "digits" / "mlp.yaml").read_text())
    recipe["trainer"] = {"max_epochs": 6, "accelerator": "cpu", "log_every_n_steps": 5}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "space.yaml").write_text(
        yaml.safe_dump(
            {"params": {"model.lr": "log[1.0e-3, 1.0e-2]", "data.batch_size": [64, 128]}}
        )
    )
    return tmp_path


def _lit_tune(*args: str) -> list[str]:
    # One by one unless a case asks for --population (a later flag wins): these cases pin the
    # sequential loop's crash rules with a kill timed inside one trial.
    return [
        sys.executable,
        "-m",
        "tuning.cli",
        "run",
        "--recipe",
        "recipe.yaml",
        "--space",
        "space.yaml",
        "--pruner",
        "none",
        "--population",
        "1",
        *args,
    ]


def _trials(study: str, storage: str):
    if storage.startswith("sqlite:///"):
        # Read-only: a plain sqlite URL would create the file and Optuna's schema while lit-tune
        # makes them, and lit-tune rightly refuses a half-made study.db (a CI run lost that race).
        storage = f"sqlite:///file:{storage[len('sqlite:///') :]}?mode=ro&uri=true"
    if "://" not in storage:  # a journal file
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(storage)
        )
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def _start_and_wait_for_a_running_trial(
    study: str, storage: str, *args: str, done: int = 2, **popen
) -> subprocess.Popen:
    proc = subprocess.Popen(
        _lit_tune("--study", study, *args),
        **{"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen},
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until `done` trials are done and another is running
        time.sleep(0.2)
        if proc.poll() is not None:  # it ended before: say why rather than wait out the clock
            err = proc.stderr.read() if proc.stderr else "(stderr not kept)"
            raise AssertionError(f"lit-tune exited {proc.returncode} before a trial ran: {err}")
        try:
            trials = _trials(study, storage)
        except Exception:  # noqa: BLE001 - study not created yet
            continue
        if len([t for t in trials if t.state in FINISHED]) >= done and any(
            t.state == TrialState.RUNNING for t in trials
        ):
            return proc
    proc.kill()
    raise AssertionError("no trial started in 120 s")


# -m slow (~20 s): the interrupted-after-an-interval PBT test (tests/tuning/test_pbt.py)
# takes the same resume by default, with exact values.
@pytest.mark.slow
def test_sigkill_of_a_pbt_study_then_rerun_resumes_its_population_from_the_last_interval(
    workdir,
):
    # Killed (SIGKILL) once its population saved its first interval: the rerun fails the
    # killed members for rerun, asks a trial for each with its values, goes on from the saved
    # epoch, and ends the budget exact.
    storage = "sqlite:///runs/kb/study.db"
    args = (
        *("--algorithm", "pbt", "--n-trials", "10", "--population", "4"),
        *("--pbt-interval", "2", "--trainer.max_epochs", "40", "--heartbeat", "1"),
    )
    proc = subprocess.Popen(
        _lit_tune("--study", "kb", *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not glob.glob("runs/kb/pbt/population_*.pt") and time.time() < deadline:
        assert proc.poll() is None, "lit-tune ended before its first PBT interval"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = [t.number for t in _trials("kb", storage) if t.state == TrialState.RUNNING]
    assert len(killed) == 4
    rerun = subprocess.run(
        _lit_tune("--study", "kb", *args), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    (line,) = [x for x in rerun.stderr.splitlines() if " resume trials " in x]
    named = line.split(" resume trials ")[1].split(" from ")[0]
    assert sorted(int(n) for n in named.split(", ")) == killed, line
    trials = _trials("kb", storage)
    assert [t.state for t in trials if t.number in killed] == [TrialState.FAIL] * 4
    resumed = [t for t in trials if t.user_attrs.get("pbt", {}).get("resumed")]
    assert sorted(t.user_attrs["pbt"]["parent"] for t in resumed) == killed
    assert all(t.user_attrs["pbt"]["epoch"] >= 2 for t in resumed)
    assert len([t for t in trials if t.state in FINISHED]) == 10
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert not glob.glob("runs/kb/pbt/*")


# after-grace is slow (`pytest -m slow`): the heartbeat path it takes is also the PostgreSQL
# survivor test's, which runs by default.
@pytest.mark.parametrize(
    "wait", [pytest.param(3.5, marks=pytest.mark.slow), 0.0], ids=["after-grace", "immediate"]
)
def test_sigkill_mid_trial_then_rerun_completes_the_budget(workdir, wait):
    storage = "sqlite:///runs/k/study.db"
    proc = _start_and_wait_for_a_running_trial("k", storage, "--n-trials", "8", "--heartbeat", "1")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.value for t in _trials("k", storage) if t.state in FINISHED}
    interrupted = [t.number for t in _trials("k", storage) if t.state == TrialState.RUNNING]
    assert len(before) >= 2 and len(interrupted) == 1
    # Its process is gone: the rerun fails it at the start, with or without the wait for
    # its heartbeat to go stale, and replaces it rather than end one trial short.
    time.sleep(wait)

    subprocess.run(
        _lit_tune("--study", "k", "--n-trials", "8", "--heartbeat", "1"),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    trials = _trials("k", storage)
    assert {t.number: t.value for t in trials if t.number in before} == before
    assert [t.state for t in trials if t.number == interrupted[0]] == [TrialState.FAIL]
    (lost,) = [t for t in trials if t.number == interrupted[0]]
    assert lost.user_attrs["fail_reason"].startswith(f"lost: its process {proc.pid} on ")
    assert len([t for t in trials if t.state in FINISHED]) == 8


# -m slow (26 s): the kill-after-members-joined test below covers a killed population by default.
@pytest.mark.slow
def test_sigkill_mid_population_then_rerun_replaces_its_members(workdir):
    storage = "sqlite:///runs/kp/study.db"
    # 40 epochs: a population of 4 digits trials shares one batch size and trains 6 epochs in
    # well under the second this test waits before the kill.
    args = (
        "--n-trials",
        "8",
        "--population",
        "4",
        "--heartbeat",
        "1",
        "--trainer.max_epochs",
        "40",
    )
    proc = _start_and_wait_for_a_running_trial("kp", storage, *args, done=0)
    time.sleep(1)  # into the population's training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = [t.number for t in _trials("kp", storage) if t.state == TrialState.RUNNING]
    assert killed  # a population in flight, and maybe trials waiting for their group's turn
    # At once: the rerun must wait for the members' heartbeats to stop, then replace them.
    subprocess.run(
        _lit_tune("--study", "kp", *args),
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trials = _trials("kp", storage)
    assert [t.state for t in trials if t.number in killed] == [TrialState.FAIL] * len(killed)
    assert len([t for t in trials if t.state in FINISHED]) == 8
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_sigkill_after_members_left_and_joined_then_rerun_keeps_them_and_ends_the_budget(workdir):
    # A population of 3 over a budget of 12, median pruning: killed once two trials are told
    # and a newcomer runs. The told trials stay as told (value, state, epochs); the killed
    # members are failed for rerun and replaced; the budget ends exact.
    storage = "sqlite:///runs/kj/study.db"
    args = ("--n-trials", "12", "--population", "3", "--heartbeat", "1", "--pruner", "median")
    for _ in range(3):
        proc = _start_and_wait_for_a_running_trial("kj", storage, *args, done=2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = [t.number for t in _trials("kj", storage) if t.state == TrialState.RUNNING]
        # The kill may land in the instant after the last member was told and before the next
        # trials were asked (seen once under load): nothing was running; run it again.
        if killed:
            break
    before = {
        t.number: (t.state, t.value, dict(t.intermediate_values))
        for t in _trials("kj", storage)
        if t.state in FINISHED
    }
    assert len(before) >= 2 and killed
    subprocess.run(
        _lit_tune("--study", "kj", *args),
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trials = _trials("kj", storage)
    assert {
        t.number: (t.state, t.value, dict(t.intermediate_values))
        for t in trials
        if t.number in before
    } == before
    assert [t.state for t in trials if t.number in killed] == [TrialState.FAIL] * len(killed)
    assert len([t for t in trials if t.state in FINISHED]) == 12
    assert not [t for t in trials if t.state == TrialState.RUNNING]


# --- PostgreSQL -------------------------------------------------------------------------------
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
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
    subprocess.run(
        [*as_user, initdb, "-D", str(data / "db"), "-U", "lit", "--auth=trust"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data / "db"),
            "-l",
            str(data / "log"),
            "-w",
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"postgresql://lit@127.0.0.1:{port}/postgres"  # the driver of the postgres extra
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data / "db"), "-m", "fast", "-w", "stop"],
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow  # 32 s; PostgreSQL runs by default in the survivor and first-start tests
@pytest.mark.parametrize("population", ["1", "3"])
def test_two_workers_share_a_postgresql_study(workdir, postgres_url, population):
    # population 3: each worker's population refills its slots from the shared budget
    study = f"pg{population}"
    subprocess.run(
        _lit_tune(
            "--study",
            study,
            "--n-trials",
            "8",
            "--n-workers",
            "2",
            "--storage",
            postgres_url,
            "--population",
            population,
        ),
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trials = _trials(study, postgres_url)
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == 8 and len({t.number for t in finished}) == 8
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    if population == "3":
        assert any(t.user_attrs["population"]["epoch_joined"] > 0 for t in finished)


def test_a_member_that_left_a_population_is_pruned_in_storage_and_stays_so_after_sigterm(workdir):
    # Two members, one diverges at once (lr 1e7) and leaves; the other trains on for 400
    # epochs. A second connection sees the leaver PRUNED while the other still runs; a SIGTERM
    # then fails only the running one (for rerun) and leaves the leaver as it was told.
    recipe = yaml.safe_load((workdir / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 400
    recipe["model"]["optimizer"] = "sgd"
    (workdir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (workdir / "space.yaml").write_text(yaml.safe_dump({"params": {"model.lr": [1.0e-2, 1.0e7]}}))
    storage = "sqlite:///runs/m/study.db"
    proc = _start_and_wait_for_a_running_trial(
        "m",
        storage,
        "--n-trials",
        "2",
        "--population",
        "2",
        "--sampler",
        "grid",
        done=1,
        stderr=subprocess.PIPE,
        text=True,
    )
    trials = {t.params["model.lr"]: t for t in _trials("m", storage)}
    assert trials[1.0e7].state == TrialState.PRUNED, trials
    assert trials[1.0e-2].state == TrialState.RUNNING
    assert len(trials[1.0e-2].intermediate_values) < 400
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    after = {t.params["model.lr"]: t for t in _trials("m", storage)}
    assert after[1.0e7].state == TrialState.PRUNED
    assert after[1.0e7].user_attrs["pruned_reason"].startswith("diverged")
    assert after[1.0e-2].state == TrialState.FAIL
    assert after[1.0e-2].user_attrs["fail_reason"] == "interrupted by SIGTERM"


def test_sigterm_fails_the_running_trial_prints_the_summary_and_exits_non_zero(workdir):
    storage = "sqlite:///runs/t/study.db"
    # 60 epochs: a trial lasts seconds, so the signal surely lands inside one.
    long = ("--n-trials", "2", "--trainer.max_epochs", "60")
    proc = _start_and_wait_for_a_running_trial(
        "t", storage, *long, done=0, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "study t:" in out and "interrupted by SIGTERM" in err and "Traceback" not in err
    trials = _trials("t", storage)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    (stopped,) = [t for t in trials if t.state == TrialState.FAIL]
    # Failed with its reason, and not counted: run again.
    assert stopped.user_attrs["fail_reason"] == "interrupted by SIGTERM"
    assert stopped.user_attrs["rerun"] is True
    subprocess.run(
        _lit_tune("--study", "t", *long),
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert len([t for t in _trials("t", storage) if t.state in FINISHED]) == 2


class _WrapsTheSignal:
    """An objective whose trial gets SIGTERM inside code that re-raises any exception as
    another one, as inspect.getfullargspec (called by Lightning every step) does."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def __call__(self, trial) -> float:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises Interrupted here
        except Exception as err:
            raise TypeError("unsupported callable") from err
        raise AssertionError("the signal did not arrive")


def test_a_signal_wrapped_as_another_error_interrupts_and_does_not_fail_the_trial(tmp_path):
    from tuning.runner.errors import Interrupted
    from tuning.runner.interrupt import on_signals
    from tuning.runner.worker import _run_one

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    trial = study.ask()
    with pytest.raises(Interrupted), on_signals():
        _run_one(study, _WrapsTheSignal(tmp_path), trial)
    (stopped,) = study.get_trials()
    assert stopped.state == TrialState.FAIL
    assert stopped.user_attrs["fail_reason"] == "interrupted by SIGTERM"
    assert stopped.user_attrs["rerun"] is True  # not counted: it is run again


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie has exited


def test_workers_die_with_their_parent(workdir):
    journal = str((workdir / "runs" / "w" / "journal.log").absolute())
    # A budget far beyond the test: the workers would go on for minutes if left alone.
    proc = _start_and_wait_for_a_running_trial(
        "w", journal, "--n-trials", "500", "--n-workers", "2", done=2
    )
    workers = [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-f", "-P", str(proc.pid), "multiprocessing.spawn"],
            text=True,
            capture_output=True,
        ).stdout.split()
    ]
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        # A worker may still be importing torch when its parent dies (one worker can finish two
        # trials while the other starts on a loaded machine); it ends once it gets to run.
        deadline = time.time() + 60
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers)
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


# The child (a stand-in for a --n-workers process) arms the parent-death signal only after its
# parent has died, as a worker still importing torch does when `lit-tune run` is killed.
_LATE_CHILD = """
import os, sys, time
from tuning.runner.interrupt import die_with_parent
spawned_by = os.getppid()
print(os.getpid(), flush=True)
while os.getppid() == spawned_by:
    time.sleep(0.05)
die_with_parent(spawned_by)
time.sleep(60)
"""
_PARENT = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {_LATE_CHILD!r}])
time.sleep(60)
"""


def test_a_worker_whose_parent_died_before_it_armed_the_signal_ends():
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    try:
        deadline = time.time() + 30
        while time.time() < deadline and _alive(child):
            time.sleep(0.1)
        assert not _alive(child), "the late child outlived its parent"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.slow  # 35 s: three restarts and a second study
def test_a_restart_draws_new_points_and_a_fresh_seeded_study_repeats(workdir):
    def params(study):
        return [
            tuple(sorted(t.params.items()))
            for t in _trials(study, f"sqlite:///runs/{study}/study.db")
        ]

    for name in ("a", "b"):
        subprocess.run(
            _lit_tune("--study", name, "--n-trials", "2", "--sampler", "random", "--seed", "7"),
            check=True,
            timeout=300,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    assert params("a") == params("b")  # a fresh study with --seed is reproducible
    subprocess.run(
        _lit_tune("--study", "a", "--n-trials", "4", "--sampler", "random", "--seed", "7"),
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first, then = params("a")[:2], params("a")[2:]
    assert len(then) == 2 and not set(then) & set(first)  # the restart did not repeat them


# -m slow (40 s): two runs sharing one study's budget is covered by default
# (test_two_runs_on_one_study_share_its_budget_and_both_exit_0).
@pytest.mark.slow
def test_simultaneous_first_starts_on_an_empty_database_all_join_one_study(workdir, postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE fresh")
    url = postgres_url.rsplit("/", 1)[0] + "/fresh"
    procs = [
        subprocess.Popen(
            _lit_tune("--study", "race", "--n-trials", "2", "--storage", url, "--heartbeat", "1"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0] * 4, [err[-400:] for _, err in results]
    assert optuna.study.get_all_study_names(url) == ["race"]
    assert len([t for t in _trials("race", url) if t.state in FINISHED]) == 2


@pytest.mark.slow  # 30 s; the rule it pins has a unit test below that runs by default
def test_four_processes_on_one_postgresql_study_finish_exactly_its_budget(workdir, postgres_url):
    """Each in its own run folder (as on four machines), so no file lock orders their asks:
    they once finished 5 trials of a budget of 4. A trial asked past the budget is failed as
    not run (rerun) and uses none of it."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE budget")
    url = postgres_url.rsplit("/", 1)[0] + "/budget"
    first = subprocess.run(
        _lit_tune("--study", "b", "--n-trials", "1", "--storage", url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-1000:]
    procs = [
        subprocess.Popen(
            _lit_tune(
                "--study", "b", "--n-trials", "4", "--storage", url, "--run-dir", f"machine{i}"
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0] * 4, [err[-400:] for _, err in results]
    trials = _trials("b", url)
    assert len([t for t in trials if t.state in FINISHED]) == 4, [
        (t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials
    ]
    assert all(t.user_attrs.get("rerun") for t in trials if t.state == TrialState.FAIL)


@pytest.mark.slow  # 22 s; the PostgreSQL survivor test covers the same rule by default
def test_a_killed_worker_s_trial_is_run_again_by_the_survivors(workdir):
    journal = str((workdir / "runs" / "s" / "journal.log").absolute())
    proc = _start_and_wait_for_a_running_trial(
        "s", journal, "--n-trials", "6", "--n-workers", "2", done=1
    )
    (running, *_) = [t for t in _trials("s", journal) if t.state == TrialState.RUNNING]
    os.kill(running.user_attrs["pid"], signal.SIGKILL)  # the worker in the middle of a trial
    assert proc.wait(timeout=300) == 0
    trials = _trials("s", journal)
    assert len([t for t in trials if t.state in FINISHED]) == 6  # the full budget, not 5
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_a_postgresql_survivor_reruns_the_killed_process_s_trial(workdir, postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE survivor")
    url = postgres_url.rsplit("/", 1)[0] + "/survivor"
    args = _lit_tune("--study", "pgs", "--n-trials", "8", "--storage", url, "--heartbeat", "1")
    first, second = (
        subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # both at work, the first in the middle of a trial
        time.sleep(0.1)
        try:
            trials = _trials("pgs", url)
        except Exception:  # noqa: BLE001 - not created yet
            continue
        pids = {t.user_attrs.get("pid") for t in trials}
        if second.pid in pids and any(
            t.state == TrialState.RUNNING and t.user_attrs.get("pid") == first.pid for t in trials
        ):
            break
    first.send_signal(signal.SIGKILL)  # its trial stays RUNNING until its heartbeat goes stale
    first.wait()
    assert second.wait(timeout=300) == 0
    trials = _trials("pgs", url)
    assert len([t for t in trials if t.state in FINISHED]) == 8  # not 7: the dead one is re-run
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # The joining process draws with a seed of its own: no point is asked twice (both seeded 0,
    # the two processes asked the same first points).
    drawn = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(drawn)) == len(drawn)


# --- trials left RUNNING, and two runs on one study -------------------------------------------
def _left_running(storage: str, *, owner_pid: int | None) -> int:
    """A trial of study "s" left RUNNING, made through Optuna's API as a dead process would
    leave it: with no heartbeat record, and claimed by ``owner_pid`` on this machine or by no
    process at all. Trial 0 of the space's first values, so the run must replace it."""
    from tuning.runner.owners import HOST

    path = Path(storage.split("sqlite:///")[-1]).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = (
        storage
        if "://" in storage
        else optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    )
    study = optuna.create_study(study_name="s", storage=handle, direction="maximize")
    trial = study.ask()
    if owner_pid is not None:
        trial.set_user_attr("pid", owner_pid)
        trial.set_user_attr("host", HOST)
    return trial.number


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    ("storage", "owner"),
    [
        ("sqlite:///runs/s/study.db", None),  # died between ask and its first heartbeat
        # a journal: no heartbeat at all (slow: the dead-owner case below takes the same path)
        pytest.param("runs/s/journal.log", None, marks=pytest.mark.slow),
        ("runs/s/journal.log", "dead"),  # its process is gone
    ],
    ids=["sqlite-unclaimed", "journal-unclaimed", "journal-dead-owner"],
)
def test_a_trial_left_running_without_a_heartbeat_is_failed_and_replaced(workdir, storage, owner):
    number = _left_running(storage, owner_pid=_dead_pid() if owner else None)
    time.sleep(1.5)  # older than the 1 s heartbeat interval: judged by its start time
    start = time.time()
    done = subprocess.run(
        _lit_tune("--study", "s", "--storage", storage, "--n-trials", "3", "--heartbeat", "1"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    took = time.time() - start
    trials = _trials("s", storage if "://" in storage else str(Path(storage).absolute()))
    (lost,) = [t for t in trials if t.number == number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["rerun"] is True
    reason = lost.user_attrs["fail_reason"]
    assert (
        reason.startswith("lost: ") and ("is gone" if owner else "no process took it up") in reason
    )
    assert f"trial {number} was left RUNNING" in done.stderr
    assert len([t for t in trials if t.state in FINISHED]) == 3
    assert took < 120  # never the endless wait it was


# The journal case is slow (25 s): the budget rule is the storage-independent worker loop's.
@pytest.mark.parametrize(
    "storage",
    ["sqlite:///runs/two/study.db", pytest.param("runs/two/journal.log", marks=pytest.mark.slow)],
    ids=["sqlite", "journal"],
)
def test_two_runs_on_one_study_share_its_budget_and_both_exit_0(workdir, storage):
    # 100 epochs: trials last long enough that the second run starts while the first trains
    # (20 sufficed while trials ran on two threads; on one, under load, the first run
    # finished all six before the second had started).
    args = _lit_tune(
        "--study", "two", "--storage", storage, "--n-trials", "6", "--trainer.max_epochs", "100"
    )
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    path = storage if "://" in storage else str(Path(storage).absolute())
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            if any(t.state == TrialState.RUNNING for t in _trials("two", path)):
                break
        except Exception:  # noqa: BLE001 - not created yet
            continue
    second = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    errs = [p.communicate(timeout=300)[1] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], [e[-2000:] for e in errs]
    trials = _trials("two", path)
    assert len([t for t in trials if t.state in FINISHED]) == 6
    assert not [t for t in trials if t.state != TrialState.COMPLETE]  # none failed by the other
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both ran trials


# SIGTERM is slow (13 s): the parent forwards either signal by the same path.
@pytest.mark.parametrize("signame", [pytest.param("SIGTERM", marks=pytest.mark.slow), "SIGINT"])
def test_a_signal_to_a_run_with_workers_is_one_line_and_no_worker_traceback(workdir, signame):
    signum = getattr(signal, signame)
    journal = str((workdir / "runs" / "sw" / "journal.log").absolute())
    proc = _start_and_wait_for_a_running_trial(
        "sw",
        journal,
        "--n-trials",
        "40",
        "--n-workers",
        "2",
        "--trainer.max_epochs",
        "60",
        done=0,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith("lit-tune:")] == [
        f"lit-tune: interrupted by {signame}; the running trial was marked failed and is run "
        "again by the next `lit-tune run` of this study"
    ]
    stopped = [t for t in _trials("sw", journal) if t.state == TrialState.FAIL]
    assert stopped and all(
        t.user_attrs["fail_reason"] == f"interrupted by {signame}" and t.user_attrs["rerun"]
        for t in stopped
    )
    assert not [t for t in _trials("sw", journal) if t.state == TrialState.RUNNING]


@pytest.mark.parametrize("signame", ["SIGINT", pytest.param("SIGTERM", marks=pytest.mark.slow)])
def test_a_signal_while_workers_are_still_starting_is_one_line(workdir, tmp_path, signame):
    """A Ctrl-C reaches the whole process group, workers still importing included: it once
    ended them with "Process SpawnProcess-2: Traceback … KeyboardInterrupt" beside the right
    line. Here each worker's start is held back 4 s (a sitecustomize that sleeps in spawned
    children only), and the signal goes to the group 1 s after the parent started them."""
    slow = tmp_path / "slow_start"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(
        "import sys, time\nif '--multiprocessing-fork' in sys.argv:\n    time.sleep(4)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(slow), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        _lit_tune("--study", "early", "--n-trials", "4", "--n-workers", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )  # its own group: the test's Ctrl-C
    deadline = time.time() + 120
    journal = workdir / "runs" / "early" / "journal.log"
    while not journal.exists() and time.time() < deadline:  # the parent is past its checks
        time.sleep(0.1)
    time.sleep(1.0)  # the workers are spawned and sleeping in their start-up
    children = psutil.Process(proc.pid).children()
    assert children, "no worker process started"
    assert not any(t.state == TrialState.RUNNING for t in _trials("early", str(journal)))
    os.killpg(proc.pid, getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + getattr(signal, signame), err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert [line for line in err.splitlines() if line.startswith("lit-tune:")] == [
        f"lit-tune: interrupted by {signame}; the running trial was marked failed and is run "
        "again by the next `lit-tune run` of this study"
    ], err[-2000:]
    assert not [t for t in _trials("early", str(journal)) if t.state == TrialState.RUNNING]


def test_a_lost_postgresql_connection_is_one_line_and_keeps_the_finished_trials(
    workdir, postgres_url
):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE lost")
    url = postgres_url.rsplit("/", 1)[0] + "/lost"
    proc = _start_and_wait_for_a_running_trial(
        "lost",
        url,
        "--n-trials",
        "50",
        "--storage",
        url,
        "--heartbeat",
        "1",
        "--trainer.max_epochs",
        "30",
        done=2,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the server goes away for it
        conn.execute("ALTER DATABASE lost ALLOW_CONNECTIONS false")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = 'lost' AND pid <> pg_backend_pid()"
        )
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("ALTER DATABASE lost ALLOW_CONNECTIONS true")
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"lit-tune: error: storage {url}"), err[-3000:]
    finished = [t for t in _trials("lost", url) if t.state in FINISHED]
    assert len(finished) >= 2  # readable again, nothing finished lost


def test_a_sqlite_storage_in_a_read_only_folder_says_so(tmp_path, monkeypatch):
    """SQLite's own words are "unable to open database file". The folder is made read-only
    by access(2)'s answer (this process may be root, whom file modes do not stop)."""
    from lit_optim import ConfigError
    from tuning.storage.backends import open_storage

    folder = tmp_path / "ro"
    folder.mkdir()
    real = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode, **kw: False if Path(path) == folder else real(path, mode, **kw),
    )
    with pytest.raises(
        ConfigError,
        match=r"its folder .*ro is not writable by this user \(SQLite "
        r"writes its journal beside the file\)",
    ):
        open_storage(f"sqlite:///{folder}/study.db", create=True, writer=True)
    assert not any(folder.iterdir())


def test_a_rerun_settles_a_file_a_killed_run_left_in_wal_mode(workdir):
    """A killed run cannot put SQLite's default journal back; its rerun did not either (an
    idle reader connection held the file), and read-only commands then made -wal/-shm files
    beside it. The kill's leftover is made here directly: WAL mode, as a SIGKILL leaves it."""
    import sqlite3

    from tuning.cli import main as lit_tune

    def run(*args):
        with pytest.raises(SystemExit) as stop:
            lit_tune(
                [
                    "run",
                    "--recipe",
                    "recipe.yaml",
                    "--space",
                    "space.yaml",
                    "--study",
                    "wal",
                    "--pruner",
                    "none",
                    "--population",
                    "1",
                    "--trainer.max_epochs",
                    "1",
                    *args,
                ]
            )
            raise SystemExit(0)
        assert stop.value.code in (0, None)

    run("--n-trials", "1")
    db = workdir / "runs" / "wal" / "study.db"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    connection.close()
    run("--n-trials", "2")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    connection.close()
    beside = lambda: sorted(p.name for p in db.parent.glob("study.db*"))  # noqa: E731
    assert beside() == ["study.db"]
    with pytest.raises(SystemExit) as stop:
        lit_tune(["best", "--study", "wal"])
        raise SystemExit(0)
    assert stop.value.code in (0, None) and beside() == ["study.db"]


def test_of_trials_asked_together_past_the_budget_only_the_first_keep_theirs():
    """Two processes that each found one trial left both asked: the storage numbers them in
    the order asked, the first keeps its trial, the second's is failed as not run."""
    from tuning.runner.worker import counted, over_budget

    study = optuna.create_study()
    done = study.ask()
    study.tell(done, 0.5)
    first, second = study.ask(), study.ask()  # both saw 1 counted trial of a budget of 2
    assert not over_budget(study, first, 2)
    assert over_budget(study, second, 2)
    frozen = study.trials[second.number]
    assert frozen.state == TrialState.FAIL and frozen.user_attrs["rerun"]
    assert "over the budget of 2" in frozen.user_attrs["fail_reason"]
    assert len(counted(study.trials)) == 2  # the failed one uses none of the budget

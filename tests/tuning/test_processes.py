"""``--n-workers auto`` (tuning.runner.processes): one process per core where the study is long
enough and its storage takes several; one otherwise; a given number as given."""

from __future__ import annotations

import pytest

from tuning.runner.processes import MIN_TRIALS_PER_WORKER, choose_workers


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)


def _choose(tmp_path, n_workers="auto", **kwargs):
    options = {
        "storage": None,
        "run_dir": tmp_path,
        "study": "s",
        "n_trials": 50,
        "accelerator": "cpu",
        "timeout": None,
        **kwargs,
    }
    return choose_workers(n_workers, **options)


def test_a_long_study_gets_one_process_per_core_and_says_so(tmp_path, four_cores):
    workers, note = _choose(tmp_path, n_trials=4 * MIN_TRIALS_PER_WORKER)
    assert workers == 4
    assert note.startswith("workers auto: 4 processes, one per core") and "--n-workers 1" in note
    workers, note = _choose(tmp_path, n_trials=10, timeout=120)  # a long --timeout alike
    assert workers == 4 and note


def test_a_short_study_keeps_one_process(tmp_path, four_cores):
    assert _choose(tmp_path, n_trials=4 * MIN_TRIALS_PER_WORKER - 1) == (1, None)
    assert _choose(tmp_path, n_trials=10, timeout=59) == (1, None)


def test_a_sqlite_study_keeps_one_process(tmp_path, four_cores):
    long = {"n_trials": 10_000}
    assert _choose(tmp_path, storage="sqlite:///x.db", **long) == (1, None)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.db").write_bytes(b"")  # a study made by an earlier run
    assert _choose(tmp_path, **long) == (1, None)
    workers, _ = _choose(tmp_path, storage="postgresql://u@h/db", **long)
    assert workers == 4


def test_one_core_or_a_number_given(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert _choose(tmp_path, n_trials=10_000) == (1, None)
    assert _choose(tmp_path, n_workers=3) == (3, None)

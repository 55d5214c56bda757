"""tuning.reports.study_report: the summary a run prints, the list of studies under a run
folder, and the report's files, on real studies (SQLite files and a journal file) whose trials
are told by hand, so the expected text is known independently of any training."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from lit_optim import ConfigError
from tuning.reports.study_report import list_studies, summary_table, write_report


def _told(study: optuna.Study) -> optuna.Study:
    """Two complete trials, one pruned after 2 epochs, one pruned after 5, one failed."""
    for value in (0.9, 0.95):
        trial = study.ask({"model.lr": optuna.distributions.FloatDistribution(1e-3, 1e-1)})
        trial.report(value - 0.1, 0)
        study.tell(trial, value)
    for epochs in (2, 5):
        trial = study.ask()
        for epoch in range(epochs):
            trial.report(0.5, epoch)
        study.tell(trial, state=TrialState.PRUNED)
    study.tell(study.ask(), state=TrialState.FAIL)
    return study


def test_the_summary_counts_states_says_when_the_pruner_cut_and_names_the_best(tmp_path):
    study = _told(optuna.create_study(study_name="s", direction="maximize"))
    study.set_user_attr("metric", "val_acc")
    lines = summary_table(study).splitlines()
    assert lines[0] == "study s: 2 complete, 2 pruned, 1 fail"
    assert lines[1] == "pruned 2 trials, after epochs 2, 5"
    best = max((t for t in study.trials if t.value is not None), key=lambda t: t.value)
    assert lines[2] == f"best trial {best.number}: val_acc = 0.950000"
    assert lines[3].split() == ["model.lr", repr(best.params["model.lr"])]


def test_a_study_with_no_complete_trial_says_so():
    study = optuna.create_study(study_name="e")
    study.tell(study.ask(), state=TrialState.FAIL)
    assert summary_table(study) == "study e: 1 fail\nno completed trial yet"


def test_every_study_under_a_run_folder_is_listed_whatever_its_storage(tmp_path):
    run = tmp_path / "runs"
    (run / "a").mkdir(parents=True)
    (run / "b").mkdir()
    _told(
        optuna.create_study(
            study_name="a", storage=f"sqlite:///{run / 'a' / 'study.db'}", direction="maximize"
        )
    )
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run / "b" / "journal.log"))
    )
    empty = optuna.create_study(study_name="b", storage=journal, direction="minimize")
    empty.tell(empty.ask(), state=TrialState.FAIL)
    lines = list_studies(None, run).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("study a: 2 complete, 2 pruned, 1 fail; best trial ")
    assert lines[0].endswith(f"(maximize)  [sqlite:///{(run / 'a' / 'study.db').absolute()}]")
    assert lines[1].startswith("study b: 1 fail; no completed trial (minimize)  [")
    assert list_studies(None, tmp_path).startswith("no studies in ")


def test_listing_a_run_folder_that_does_not_exist_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"--run-dir .*nope does not exist"):
        list_studies(None, tmp_path / "nope")


def test_the_report_writes_each_plot_as_html_and_png(tmp_path):
    study = _told(optuna.create_study(study_name="r", direction="maximize"))
    written = write_report(study, tmp_path / "report")
    names = sorted(p.name for p in written)
    # history and learning curves (the trials reported epochs); one parameter: no importances
    assert names == [
        "history.html",
        "history.png",
        "learning_curves.html",
        "learning_curves.png",
        "summary.txt",
    ]
    assert all(p.stat().st_size > 1000 for p in written if p.suffix != ".txt")
    assert (tmp_path / "report" / "summary.txt").read_text() == summary_table(study) + "\n"

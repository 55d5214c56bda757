"""lit-tune with real Optuna storages (SQLite file, journal file) and real worker processes."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lit_optim import ConfigError
from lit_optim.cli.main import main as fit_main
from support import ROOT
from tuning.cli import main
from tuning.search.space import load_space, parse_space


@pytest.fixture
def workdir(tune_dir):
    # No callbacks: these trials get the objective's own divergence guard.
    recipe = yaml.safe_load((tune_dir / "recipe.yaml").read_text())
    recipe["trainer"] = {"max_epochs": 2, "accelerator": "cpu", "log_every_n_steps": 5}
    (tune_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    tmp_path = tune_dir
    (tmp_path / "space.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "val_acc",
                "direction": "maximize",
                "params": {
                    "model.optimizer": ["adam", "momentum"],
                    "model.lr": "log[1.0e-3, 1.0e-1]",
                    "model.optimizer_kwargs.momentum": {
                        "distribution": "uniform[0.5, 0.95]",
                        "when": {"model.optimizer": ["momentum"]},
                    },
                    "data.batch_size": [64, 128],
                },
            }
        )
    )
    return tmp_path


def _run(*args):
    main(["run", "--recipe", "recipe.yaml", "--space", "space.yaml", *args])


def _study(name, path=None):
    path = path or f"sqlite:///runs/{name}/study.db"
    return optuna.load_study(study_name=name, storage=path)


def _finished(study):
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


# --- search spaces --------------------------------------------------------------------------
def test_the_shipped_search_space_parses():
    space = load_space(ROOT / "recipes" / "digits" / "search.yaml")
    assert space.metric == "val_acc" and space.direction == "maximize"
    assert {p.path for p in space.params} >= {"model.lr", "model.weight_decay", "data.batch_size"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model.lr": "log[1, 0.1]"}, r"low must be below high, got \[1, 0.1\]"),
        ({"model.lr": "uniform[0.5, 0.5]"}, "low must be below high"),
        ({"model.lr": "log[0, 1]"}, "a log range needs low > 0, got 0"),
        ({"model.lr": "lognormal[1, 2]"}, "expected a list of choices or log"),
        ({"model.optimizer": ["sgd", "adamm"]}, "unknown optimizer 'adamm'; did you mean 'adam'"),
        ({"model.scheduler": ["cosine", "cosin"]}, "unknown scheduler 'cosin'"),
        ({"lr": "log[1e-3, 1]"}, "dotted paths under model., data. or trainer."),
        (
            {
                "model.optimizer_kwargs.momentum": {
                    "distribution": "uniform[0, 1]",
                    "when": {"model.optimizer": ["sgd"]},
                }
            },
            "which must be a searched parameter listed above it",
        ),
        ({"data.batch_size": "int[1.5, 4]"}, "int ranges need whole numbers"),
    ],
)
def test_bad_search_spaces(params, message):
    with pytest.raises(ConfigError, match=message):
        parse_space({"params": params})


def test_conditional_parameter_only_when_its_parent_matches(workdir):
    _run("--study", "cond", "--n-trials", "6", "--sampler", "random")
    for trial in _study("cond").trials:
        assert ("model.optimizer_kwargs.momentum" in trial.params) == (
            trial.params["model.optimizer"] == "momentum"
        )


# --- running, resuming, exporting -----------------------------------------------------------
def test_study_runs_resumes_by_name_and_exports_a_recipe_that_reproduces(workdir, capsys):
    _run("--study", "s", "--n-trials", "3")
    first = _study("s")
    assert len(_finished(first)) == 3 and Path("runs/s/study.db").is_file()
    done = {t.number: t.value for t in first.trials}
    _run("--study", "s", "--n-trials", "5")  # resume: two more, the first three untouched
    study = _study("s")
    assert len(_finished(study)) == 5
    assert {t.number: t.value for t in study.trials if t.number in done} == done
    capsys.readouterr()

    main(["best", "--study", "s", "--export", "best.yaml"])
    assert "best trial" in capsys.readouterr().out
    exported = yaml.safe_load(Path("best.yaml").read_text())
    assert Path("best.yaml").read_text().startswith("# lit-optim fit --config best.yaml")
    fit_main(
        [
            "fit",
            "--config",
            "best.yaml",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger=CSVLogger",
            "--trainer.logger.save_dir=refit",
        ]
    )
    rows = list(csv.DictReader(open(next(Path("refit").rglob("metrics.csv")))))
    val_acc = [float(r["val_acc"]) for r in rows if r.get("val_acc")][-1]
    assert val_acc == pytest.approx(study.best_value, abs=1e-6)
    assert exported["model"]["lr"] == study.best_params["model.lr"]


def test_a_recipe_with_logger_only_callbacks_tunes(workdir):
    # A recipe `lit-optim fit` runs with its LearningRateMonitor (a callback that refuses a
    # Trainer without a logger): the trials run without a logger, so they drop it, here also
    # one added on the command line with jsonargparse's list append.
    recipe = yaml.safe_load(Path("recipe.yaml").read_text())
    recipe["trainer"]["callbacks"] = [
        {"class_path": "LearningRateMonitor", "init_args": {"logging_interval": "step"}}
    ]
    Path("recipe.yaml").write_text(yaml.safe_dump(recipe))
    _run("--study", "lrm", "--n-trials", "2", "--trainer.callbacks+=DeviceStatsMonitor")
    study = _study("lrm")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2, [
        t.user_attrs.get("fail_reason") for t in study.trials
    ]
    trial_recipe = Path("runs/lrm/trial_1/recipe.yaml").read_text()
    assert "LearningRateMonitor" in trial_recipe and "DeviceStatsMonitor" in trial_recipe


def test_diverging_trials_are_pruned_with_a_reason_and_the_study_goes_on(workdir):
    Path("space.yaml").write_text(
        yaml.safe_dump({"params": {"model.optimizer": ["sgd"], "model.lr": "log[1.0e-2, 1.0e+4]"}})
    )
    _run("--study", "div", "--n-trials", "8", "--sampler", "random", "--pruner", "none")
    study = _study("div")
    assert len(_finished(study)) == 8
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "some lr in [1e-2, 1e4] must diverge"
    assert all("diverged" in t.user_attrs["pruned_reason"] for t in pruned)
    assert all(t.params["model.lr"] > 1.0 for t in pruned)
    assert any(t.state == TrialState.COMPLETE for t in study.trials)


@pytest.mark.slow  # 17 s; journal studies with 2 workers run by default elsewhere
def test_journal_storage_with_four_workers_finishes_exactly_n_trials(workdir):
    _run("--study", "j", "--n-trials", "8", "--n-workers", "4")
    study = _study("j", JournalStorageFor("runs/j/journal.log"))
    finished = _finished(study)
    assert len(finished) == 8
    assert len({t.number for t in finished}) == 8  # none duplicated
    assert len({tuple(sorted(t.params.items())) for t in finished}) > 1  # workers differ
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


def JournalStorageFor(path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(path))


def test_report_writes_plots(workdir, capsys):
    _run("--study", "r", "--n-trials", "4")
    main(["report", "--study", "r"])
    out = Path("runs/r/report")
    for name in ("history", "learning_curves"):
        assert (out / f"{name}.html").stat().st_size > 1000
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "best trial" in (out / "summary.txt").read_text()


# --- bad input: one clear message, nothing created or modified ------------------------------
def _fails(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    return err


def test_missing_study_for_best_and_report(workdir, capsys):
    _run("--study", "exists", "--n-trials", "1")
    for command in ("best", "report"):
        err = _fails(capsys, command, "--study", "exits")
        assert "no study 'exits'" in err and "exists" in err
    assert not Path("runs/exits").exists()


def test_sqlite_with_several_workers_is_refused_with_the_alternative(workdir, capsys):
    err = _fails(
        capsys,
        "run",
        "--recipe",
        "recipe.yaml",
        "--space",
        "space.yaml",
        "--study",
        "x",
        "--n-workers",
        "2",
        "--storage",
        "sqlite:///x.db",
    )
    assert "SQLite cannot take 2 worker processes" in err and "journal" in err
    assert not Path("x.db").exists() or optuna.get_all_study_summaries("sqlite:///x.db") == []


def test_bad_space_never_touches_an_existing_study(workdir, capsys):
    _run("--study", "keep", "--n-trials", "2")
    before = Path("runs/keep/study.db").read_bytes()
    Path("bad.yaml").write_text(yaml.safe_dump({"params": {"model.lr": "log[0, 1]"}}))
    err = _fails(capsys, "run", "--recipe", "recipe.yaml", "--space", "bad.yaml", "--study", "keep")
    assert "a log range needs low > 0" in err
    assert Path("runs/keep/study.db").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampler", "tpee"], "unknown sampler 'tpee'; did you mean 'tpe'"),
        (["--pruner", "medain"], "unknown pruner 'medain'; did you mean 'median'"),
        (["--storage", "postgresql://nobody@127.0.0.1:9/none"], "cannot open storage"),
        (["--n-trials", "0"], "n_trials and n_workers must be >= 1"),
    ],
)
def test_bad_run_arguments(workdir, capsys, args, message):
    err = _fails(
        capsys, "run", "--recipe", "recipe.yaml", "--space", "space.yaml", "--study", "bad", *args
    )
    assert message in err


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "cmaes", "gp"])
def test_every_sampler_runs(workdir, sampler):
    _run("--study", sampler, "--n-trials", "3", "--sampler", sampler, "--pruner", "none")
    study = _study(sampler)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3


@pytest.mark.parametrize("pruner", ["hyperband", "successive_halving"])
def test_other_pruners_run(workdir, pruner):
    _run("--study", pruner, "--n-trials", "3", "--pruner", pruner)
    assert len(_finished(_study(pruner))) == 3


def test_grid_sampler_walks_a_list_space(workdir):
    Path("grid.yaml").write_text(
        yaml.safe_dump(
            {"params": {"model.optimizer": ["adam", "sgd"], "data.batch_size": [64, 128]}}
        )
    )
    main(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "grid.yaml",
            "--study",
            "grid",
            "--n-trials",
            "4",
            "--sampler",
            "grid",
            "--pruner",
            "none",
        ]
    )
    combos = {
        (t.params["model.optimizer"], t.params["data.batch_size"]) for t in _study("grid").trials
    }
    assert combos == {("adam", 64), ("adam", 128), ("sgd", 64), ("sgd", 128)}


def test_grid_sampler_needs_lists(workdir, capsys):
    err = _fails(
        capsys,
        "run",
        "--recipe",
        "recipe.yaml",
        "--space",
        "space.yaml",
        "--study",
        "g",
        "--sampler",
        "grid",
    )
    assert "grid sampler needs a list of values" in err and "model.lr" in err


def test_a_trial_that_diverges_without_nan_is_pruned_with_its_reason(tmp_path, monkeypatch):
    # The recipe's own rollback guard keeps the weights finite; float64 keeps the loss finite
    # (~1e90): the trial must not be stored COMPLETE.
    import optuna

    from tuning.cli import main as lit_tune

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-tune"])
    recipe = yaml.safe_load((ROOT / "recipes" / "digits" / "mlp.yaml").read_text())
    recipe["trainer"].update(
        precision="64-true",
        max_epochs=3,
        callbacks=[
            {
                "class_path": "lit_optim.callbacks.NonFiniteGuard",
                "init_args": {"action": "rollback", "lr_factor": 0.1},
            }
        ],
    )
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "space.yaml").write_text(
        yaml.safe_dump({"metric": "val_acc", "params": {"model.lr": [1.0e30, 1.0e29]}})
    )
    with pytest.raises(SystemExit) as exit_:
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
            ]
        )
    assert exit_.value.code == 1  # no completed trial
    study = optuna.load_study(study_name="d", storage="sqlite:///runs/d/study.db")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(
        t.user_attrs["pruned_reason"].startswith("diverged: the training loss ended at")
        for t in study.trials
    )

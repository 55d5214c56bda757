"""lit-tune never loops and checks what it can before trial 0 (issue: study integrity). Each
case runs the real `lit-tune` entry point, as a user would."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from support import ROOT, exit_status
from tuning.cli import main as lit_tune

BROKEN_MODULE = '''
import lightning as L, torch
from torch.utils.data import DataLoader, TensorDataset

class Data(L.LightningDataModule):
    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(16, 2), torch.randn(16, 1)), batch_size=8)
    def val_dataloader(self):
        return self.train_dataloader()

class Broken(L.LightningModule):
    """Valid to build, fails in every training step (a bug in the user's code)."""
    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
    def training_step(self, batch, batch_idx):
        raise RuntimeError("boom in training_step")
    def validation_step(self, batch, batch_idx):
        self.log("val/loss", torch.tensor(1.0))
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.get("lr", 0.1))
'''


@pytest.fixture
def broken_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-tune"])
    (tmp_path / "broken_module.py").write_text(BROKEN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "recipe.yaml").write_text(
        yaml.safe_dump(
            {
                "trainer": {"max_epochs": 1, "accelerator": "cpu"},
                "model": {"class_path": "broken_module.Broken"},
                "data": {"class_path": "broken_module.Data"},
            }
        )
    )
    (tmp_path / "space.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "val/loss",
                "direction": "minimize",
                "params": {"model.lr": "log[1e-3, 1e-1]"},
            }
        )
    )
    return tmp_path


def _run(*args):
    with pytest.raises(SystemExit) as info:
        lit_tune(
            [
                "run",
                "--recipe",
                "recipe.yaml",
                "--space",
                "space.yaml",
                "--accelerator",
                "cpu",
                *args,
            ]
        )
    return info.value.code


@pytest.mark.timeout(120)  # the bug this pins was an endless loop
def test_failing_trials_count_toward_the_budget_and_print_one_line(broken_project, capsys):
    assert _run("--n-trials", "2", "--study", "b") == 1  # no trial completed
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("failed: RuntimeError: boom in training_step") == 2
    assert "study b has no completed trial" in err
    study = optuna.load_study(study_name="b", storage="sqlite:///runs/b/study.db")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert all("boom" in t.user_attrs["fail_reason"] for t in study.trials)
    assert "RuntimeError: boom" in (broken_project / "runs/b/trial_0/error.txt").read_text()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("population", ["1", "auto"])
def test_consecutive_failures_stop_the_study_with_one_error_line(
    broken_project, capsys, population
):
    assert (
        _run("--n-trials", "10", "--study", "c", "--max-failures", "2", "--population", population)
        == 2
    )
    err = capsys.readouterr().err
    assert "lit-tune: error: 2 trials failed in a row, the last (trial 1) with RuntimeError" in err
    study = optuna.load_study(study_name="c", storage="sqlite:///runs/c/study.db")
    failed = [
        t for t in study.trials if "fail_reason" in t.user_attrs and "rerun" not in t.user_attrs
    ]
    assert [t.number for t in failed] == [0, 1]
    # One by one, nothing else was asked; auto asked a batch of 3 (a quarter of 10), whose
    # untried trial is marked to run again (rerun, with the reason), not counted as a failure.
    assert all(t.user_attrs["rerun"] for t in study.trials if t.number > 1)
    assert len(study.trials) == (2 if population == "1" else 3)


@pytest.fixture
def digits(tune_dir):
    return tune_dir


def _space(path: Path, params: dict) -> None:
    path.write_text(
        yaml.safe_dump({"metric": "val_acc", "direction": "maximize", "params": params})
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {
                "model.optimizer": ["sgd", "adam"],
                "model.optimizer_kwargs.momentum": "uniform[0.5, 0.9]",
            },
            "search space: model.optimizer: 'adam' is invalid: optimizer 'adam' does not take "
            "'momentum'",
        ),
        (
            {"data.batch_size": [32, 0]},
            "search space: data.batch_size: 0 is invalid: batch_size must be an integer >= 1, "
            "got 0",
        ),
        (
            {"model.scheduler": ["constant", "multistep"]},
            "search space: model.scheduler: 'multistep' is invalid: scheduler 'multistep' needs "
            "'milestones'",
        ),
    ],
)
def test_each_categorical_value_is_checked_before_trial_0(digits, capsys, params, message):
    _space(digits / "space.yaml", params)
    assert _run("--n-trials", "3", "--study", "v") == 2
    err = capsys.readouterr().err
    assert err.strip() == f"lit-tune: error: {message}" or message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (digits / "runs" / "v").exists()


def test_unknown_recipe_key_is_one_line_before_trial_0(digits, capsys):
    recipe = yaml.safe_load((digits / "recipe.yaml").read_text())
    recipe["model"]["optimzer"] = "adam"
    (digits / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    assert _run("--n-trials", "1", "--study", "k") == 2
    err = capsys.readouterr().err
    assert "Option 'optimzer' is not accepted; did you mean 'optimizer'" in err
    assert not (digits / "runs" / "k").exists()


def test_a_diverged_trial_is_pruned_even_with_the_recipes_own_guard(digits):
    # The digits recipe brings NonFiniteGuard(rollback): at lr 1e21 it rolls back, cuts the lr
    # and still ends on non-finite values; that trial must not be COMPLETE.
    recipe = yaml.safe_load((ROOT / "recipes" / "digits" / "mlp.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 2
    (digits / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _space(digits / "space.yaml", {"model.optimizer": ["sgd"], "model.lr": [1.0e21]})
    assert _run("--n-trials", "1", "--study", "d") == 1
    (trial,) = optuna.load_study(study_name="d", storage="sqlite:///runs/d/study.db").trials
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["pruned_reason"].startswith("diverged")


# -- a study is one record with one meaning ----------------------------------------------------
def _digest(path: Path) -> bytes:
    import hashlib

    return hashlib.sha256(path.read_bytes()).digest()


@pytest.fixture
def one_trial_study(digits):
    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    recipe = yaml.safe_load((digits / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 1
    (digits / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--n-trials",
            "1",
            "--study",
            "r",
            "--accelerator",
            "cpu",
        ]
    )
    return digits


def test_a_finished_run_leaves_one_plain_sqlite_file(one_trial_study):
    # Written through SQLite's write-ahead log while it runs, settled back afterwards: a study
    # in WAL mode cannot be opened where its -shm file cannot be made (read-only media).
    import sqlite3

    folder = one_trial_study / "runs" / "r"
    assert sorted(p.name for p in folder.glob("study.db*")) == ["study.db"]
    with sqlite3.connect(folder / "study.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    connection.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("recipe", "was made with another recipe"),
        ("space", "was made with another search space"),
        (
            "metric",
            "was made with another search space, metric ('val_acc' → 'val_loss'), "
            "direction ('maximize' → 'minimize')",
        ),
    ],
)
def test_resuming_with_another_recipe_space_or_metric_is_refused(
    one_trial_study, capsys, change, message
):
    db = one_trial_study / "runs" / "r" / "study.db"
    before = _digest(db)
    if change == "recipe":
        recipe = yaml.safe_load((one_trial_study / "recipe.yaml").read_text())
        recipe["model"]["network_kwargs"] = {"hidden_dims": [8]}
        (one_trial_study / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    elif change == "space":
        _space(one_trial_study / "space.yaml", {"model.lr": "log[1e-4, 1e-1]"})
    else:
        (one_trial_study / "space.yaml").write_text(
            yaml.safe_dump(
                {
                    "metric": "val_loss",
                    "direction": "minimize",
                    "params": {"model.lr": "log[1e-3, 1e-1]"},
                }
            )
        )
    assert _run("--n-trials", "2", "--study", "r") == 2
    err = capsys.readouterr().err
    assert message in err and "--accept-changes" in err and len(err.strip().splitlines()) == 1
    assert _digest(db) == before
    if change == "recipe":  # and the explicit option continues it
        lit_tune(
            [
                "run",
                "--recipe",
                "recipe.yaml",
                "--space",
                "space.yaml",
                "--n-trials",
                "2",
                "--study",
                "r",
                "--accelerator",
                "cpu",
                "--accept-changes",
            ]
        )
        assert len(optuna.load_study(study_name="r", storage=f"sqlite:///{db}").trials) == 2


def test_a_comment_in_the_recipe_is_not_a_change(one_trial_study):
    path = one_trial_study / "recipe.yaml"
    path.write_text("# tuned on Tuesday\n" + path.read_text())
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--n-trials",
            "2",
            "--study",
            "r",
            "--accelerator",
            "cpu",
        ]
    )


def test_a_run_directory_keeps_its_one_storage(one_trial_study, capsys):
    db = one_trial_study / "runs" / "r" / "study.db"
    before = _digest(db)
    assert _run("--n-trials", "3", "--study", "r", "--n-workers", "2") == 2
    err = capsys.readouterr().err
    assert "lives in" in err and "SQLite" in err and "--n-workers 1" in err
    assert _digest(db) == before
    assert not (one_trial_study / "runs" / "r" / "journal.log").exists()


def test_a_journal_study_resumes_with_one_worker_and_opens_in_optunas_cli(digits, capfd):
    import subprocess
    import sys

    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    recipe = yaml.safe_load((digits / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 1
    (digits / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    base = [
        "run",
        "--recipe",
        "recipe.yaml",
        "--space",
        "space.yaml",
        "--study",
        "j",
        "--accelerator",
        "cpu",
    ]
    lit_tune([*base, "--n-trials", "2", "--n-workers", "2"])
    out = capfd.readouterr().out  # capfd: the spawned workers write to the inherited stdout
    journal = (digits / "runs" / "j" / "journal.log").absolute()
    assert f"storage: {journal}" in out
    # Progress while the workers run: a line per finished trial, with the best so far.
    progress = [line for line in out.splitlines() if line.startswith("study j: ") and "/" in line]
    # Two workers finishing together may both count 2 done: one line per trial, ending at 2/2.
    counts = sorted(line.split()[2].rstrip(",") for line in progress)
    assert len(counts) == 2 and counts[-1] == "2/2", out
    assert all("best val_acc 0." in line for line in progress), progress
    lit_tune([*base, "--n-trials", "3"])  # one worker: the same journal, not a new study.db
    assert not (digits / "runs" / "j" / "study.db").exists()
    study = optuna.load_study(
        study_name="j",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        ),
    )
    assert len(study.trials) == 3
    optuna_cli = Path(sys.executable).with_name("optuna")
    listed = subprocess.run(
        [str(optuna_cli), "studies", "--storage", str(journal)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert " j " in listed and " 3 " in listed


def test_export_creates_only_the_file_asked_for(one_trial_study, capsys):
    with pytest.raises(SystemExit) as info:
        lit_tune(
            ["best", "--study", "r", "--export", str(one_trial_study / "no" / "dir" / "b.yaml")]
        )
    assert info.value.code == 2
    assert "folder" in capsys.readouterr().err and not (one_trial_study / "no").exists()
    lit_tune(["best", "--study", "r", "--export", "b.yaml"])
    assert f"wrote {(one_trial_study / 'b.yaml').resolve()}" in capsys.readouterr().out


@pytest.mark.parametrize("broken", ["recipe", "space"])
def test_a_yaml_error_is_one_line_and_creates_nothing(digits, capsys, broken):
    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    (digits / f"{broken}.yaml").write_text("model: {lr: [1, 2\n  !!python/object:os.system x")
    assert _run("--n-trials", "1", "--study", "y") == 2
    err = capsys.readouterr().err
    assert f"{broken}" in err and "is not valid YAML" in err and "Traceback" not in err
    assert not (digits / "runs").exists()


def test_a_missing_database_driver_names_the_extra(digits, capsys):
    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    assert (
        _run(
            "--n-trials",
            "1",
            "--study",
            "p",
            "--storage",
            "postgresql+pg8000://lit@127.0.0.1:9/none",
        )
        == 2
    )
    assert "pip install 'lit-optim[postgres]'" in capsys.readouterr().err


# -- what a user of the Optuna and Lightning CLIs expects --------------------------------------
def test_recipe_overrides_on_the_command_line_apply_to_every_trial(one_trial_study):
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--n-trials",
            "2",
            "--study",
            "o",
            "--accelerator",
            "cpu",
            "--trainer.max_epochs",
            "2",
            "--model.network_kwargs={hidden_dims: [8]}",
        ]
    )
    merged = yaml.safe_load((one_trial_study / "runs/o/trial_1/recipe.yaml").read_text())
    assert merged["trainer"]["max_epochs"] == 2
    assert merged["model"]["network_kwargs"] == {"hidden_dims": [8]}
    study = optuna.load_study(study_name="o", storage="sqlite:///runs/o/study.db")
    assert all(len(t.intermediate_values) == 2 for t in study.trials)  # 2 epochs each
    assert yaml.safe_load(study.user_attrs["recipe_text"])["trainer"]["max_epochs"] == 2


def test_an_unknown_option_is_still_an_argument_error(one_trial_study, capsys):
    with pytest.raises(SystemExit) as info:
        lit_tune(
            [
                "run",
                "--recipe",
                "recipe.yaml",
                "--space",
                "space.yaml",
                "--study",
                "o",
                "--n-trails",
                "2",
            ]
        )
    assert info.value.code == 2 and "unrecognized argument: --n-trails" in capsys.readouterr().err


def test_timeout_starts_no_trial_after_it(one_trial_study):
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--n-trials",
            "50",
            "--study",
            "r",
            "--accelerator",
            "cpu",
            "--timeout",
            "0.001",
        ]
    )
    study = optuna.load_study(study_name="r", storage="sqlite:///runs/r/study.db")
    assert len(study.trials) == 1  # the earlier run's one; none started after the timeout


def test_studies_lists_and_delete_removes(one_trial_study, capsys):
    lit_tune(["studies"])
    out = capsys.readouterr().out
    assert "study r: 1 complete; best trial 0: val_acc = " in out and "(maximize)" in out
    lit_tune(["delete", "--study", "r"])
    assert "deleted study r" in capsys.readouterr().out
    assert optuna.study.get_all_study_names("sqlite:///runs/r/study.db") == []


def test_both_tools_say_their_version(capsys):
    from lit_optim.cli.main import main as lit_optim

    with pytest.raises(SystemExit):
        lit_tune(["--version"])
    lit_optim(["--version"])
    out = capsys.readouterr().out
    assert "lit-tune 0.1.0" in out and "lit-optim 0.1.0" in out


def test_the_median_pruners_warmup_scales_with_the_recipes_epochs():
    from tuning.runner.algorithms import median_warmup
    from tuning.runner.study import run_epochs

    assert median_warmup(run_epochs({"trainer": {"max_epochs": 30}})) == 7
    assert median_warmup(run_epochs({"trainer": {"max_epochs": 4}})) == 2
    assert median_warmup(run_epochs({})) == 5  # lit-optim fit's default of 20 epochs


# -- a table of bad inputs, each through the real entry point, each against an existing study --
def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


BAD_INPUTS = [
    # (what the test writes first, the arguments after `lit-tune`, part of the one error line)
    (
        {},
        ["run", "--space", "space.yaml", "--study", "r", "--recipe", "missing.yaml"],
        "does not exist",
    ),
    (
        {},
        ["run", "--recipe", "recipe.yaml", "--study", "r", "--space", "missing.yaml"],
        "does not exist",
    ),
    (
        {"bad.yaml": "model: [1, 2"},
        ["run", "--recipe", "bad.yaml", "--space", "space.yaml", "--study", "r"],
        "is not valid YAML",
    ),
    (
        {"bad.yaml": "!!python/object/apply:os.system [ls]"},
        ["run", "--recipe", "bad.yaml", "--space", "space.yaml", "--study", "r"],
        "is not valid YAML",
    ),
    (
        {"s.yaml": 'params: {model.lr: "log[1, 0.1]"}'},
        ["run", "--recipe", "recipe.yaml", "--space", "s.yaml", "--study", "r"],
        "low must be below high",
    ),
    (
        {"s.yaml": 'params: {model.lrr: "log[0.001, 0.1]"}'},
        ["run", "--recipe", "recipe.yaml", "--space", "s.yaml", "--study", "r"],
        "model.lrr does not exist",
    ),
    (
        {"s.yaml": "params: {model.optimizer: [adam, adamm]}"},
        ["run", "--recipe", "recipe.yaml", "--space", "s.yaml", "--study", "r"],
        "did you mean 'adam'",
    ),
    (
        {"s.yaml": "params: {data.batch_size: [64, -1]}"},
        ["run", "--recipe", "recipe.yaml", "--space", "s.yaml", "--study", "r"],
        "batch_size must be",
    ),
    (
        {"s.yaml": "params: {model.weight_decay: [0.0, -1]}"},
        ["run", "--recipe", "recipe.yaml", "--space", "s.yaml", "--study", "r"],
        "weight_decay must be",
    ),
    (
        {"s.yaml": "params: {model.lr: [.nan]}"},
        ["run", "--recipe", "recipe.yaml", "--space", "s.yaml", "--study", "r"],
        "lr must be",
    ),
    (
        {"s.yaml": 'metric: val_acc\ndirection: up\nparams: {model.lr: "log[0.001, 0.1]"}'},
        ["run", "--recipe", "recipe.yaml", "--space", "s.yaml", "--study", "r"],
        "direction must be",
    ),
    (
        {"s.yaml": 'params: {model.lr: "log[0.0001, 0.1]"}'},
        ["run", "--recipe", "recipe.yaml", "--space", "s.yaml", "--study", "r"],
        "another search space",
    ),
    (
        {},
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--n-trials",
            "0",
        ],
        "n_trials and n_workers must be >= 1",
    ),
    (
        {},
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--sampler",
            "tpee",
        ],
        "did you mean 'tpe'",
    ),
    (
        {},
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--pruner",
            "medain",
        ],
        "did you mean 'median'",
    ),
    (
        {},
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--n-workers",
            "2",
        ],
        "cannot take 2 worker processes",
    ),
    (
        {},
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--max-failures",
            "0",
        ],
        "max_failures must be an integer >= 1",
    ),
    (
        {},
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--timeout",
            "-1",
        ],
        "timeout must be",
    ),
    (
        {},
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--trainer.max_epochs",
            "-5",
        ],
        "max_epochs",
    ),
    (
        {},
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--model.optimizer",
            "adamm",
        ],
        "unknown optimizer 'adamm'",
    ),
    (
        {},
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--storage",
            "runs/r/study.db",
        ],
        "looks like a SQLite file",
    ),
    ({}, ["best", "--study", "rr"], "no study 'rr'"),
    ({}, ["best", "--study", "r", "--export", "/nonexistent/dir/b.yaml"], "does not exist"),
    ({}, ["report", "--study", "x"], "no study 'x'"),
    ({}, ["delete", "--study", "rx"], "no study 'rx'"),
]


def test_twenty_bad_inputs_are_one_line_each_and_leave_the_study_byte_identical(
    one_trial_study, capsys
):
    db = one_trial_study / "runs" / "r" / "study.db"
    files = sorted(p for p in one_trial_study.rglob("*") if p.is_file() and "report" not in p.parts)
    before = {p: _digest(p) for p in files}
    assert len(BAD_INPUTS) >= 20
    for writes, args, message in BAD_INPUTS:
        for name, text in writes.items():
            _write(one_trial_study / name, text)
        with pytest.raises(SystemExit) as info:
            lit_tune([*args, "--accelerator", "cpu"] if args[0] == "run" else args)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("lit-tune: error:")]
        assert info.value.code == 2, (args, err)
        assert "Traceback" not in err and len(lines) == 1 and message in lines[0], (args, err)
        assert err.strip() == lines[0], (args, err)  # nothing else on stderr
        assert _digest(db) == before[db], args
    for path, digest in before.items():
        assert _digest(path) == digest, path
    assert not Path("/nonexistent").exists()


def test_an_empty_or_foreign_study_db_is_refused_by_name(digits, capsys):
    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    (digits / "runs" / "e").mkdir(parents=True)
    for content, message in (
        (b"", "is empty (0 bytes)"),
        (b"garbage" * 10, "is not a SQLite database"),
    ):
        (digits / "runs" / "e" / "study.db").write_bytes(content)
        assert _run("--n-trials", "1", "--study", "e") == 2
        assert message in capsys.readouterr().err
        assert (digits / "runs" / "e" / "study.db").read_bytes() == content


def test_a_stale_dangling_journal_lock_is_broken_with_a_warning(digits, recwarn):
    from tuning.storage.backends import open_storage

    journal = digits / "runs" / "jl" / "journal.log"
    journal.parent.mkdir(parents=True)
    # What a killed writer under a relative run dir left: a lock symlink that dangles.
    (journal.parent / "journal.log.lock").symlink_to("runs/jl/journal.log")
    storage = open_storage(str(journal))
    optuna.create_study(study_name="jl", storage=storage)  # would spin forever on the lock
    assert any("stale journal lock" in str(w.message) for w in recwarn)


def test_a_cut_last_journal_record_is_dropped_with_a_backup(digits, recwarn):
    from tuning.storage.backends import open_storage

    journal = digits / "j.log"
    study = optuna.create_study(study_name="c", storage=open_storage(str(journal)))
    for _ in range(3):
        study.tell(study.ask(), 1.0)
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "tri')  # a full disk
    study = optuna.load_study(study_name="c", storage=open_storage(str(journal)))
    assert len(study.trials) == 3
    assert any("dropped a cut last record" in str(w.message) for w in recwarn)
    assert (digits / "j.log.bak").read_bytes().startswith(whole)


def test_a_metric_the_task_never_logs_is_refused_before_trial_0(digits, capsys):
    (digits / "space.yaml").write_text(
        yaml.safe_dump({"metric": "val_accuracy", "params": {"model.lr": "log[1e-3, 1e-1]"}})
    )
    assert _run("--n-trials", "2", "--study", "m") == 2
    err = capsys.readouterr().err
    assert "metric 'val_accuracy' is never logged by ClassificationTask" in err
    assert "did you mean 'val_acc'" in err and not (digits / "runs").exists()


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_ends_lit_optim_fit_with_128_plus_it_and_one_line(tmp_path, signame):
    import signal
    import subprocess
    import sys
    import time

    signum = getattr(signal, signame)
    # As from a shell in the foreground: a pytest started as a background job (`&`) has SIGINT
    # ignored, its children inherit that, and lit-optim rightly leaves an ignored SIGINT alone
    # (three full-suite runs started with `&` failed here for that reason alone).
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lit_optim.cli.main",
            "fit",
            "--config",
            str(ROOT / "recipes" / "digits" / "mlp.yaml"),
            "--trainer.max_epochs",
            "100000",
            "--trainer.enable_progress_bar",
            "false",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.rglob("last.ckpt")):  # an epoch ended
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signum)  # SIGINT: what Ctrl-C sends
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err[-500:]  # 143, 130: the shell's convention
    assert err.splitlines()[-1] == f"lit-optim: interrupted by {signame}; the run did not finish"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    (last,) = tmp_path.rglob("last.ckpt")  # what a resume starts from: a whole checkpoint
    assert torch.load(last, weights_only=False)["epoch"] >= 0


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_a_full_disk_is_one_line_and_leaves_nothing(digits, capsys, tmp_path_factory):
    import subprocess

    tiny = tmp_path_factory.mktemp("tiny")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)], check=True)
    try:
        _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
        assert _run("--n-trials", "1", "--study", "full", "--run-dir", str(tiny)) == 2
        err = capsys.readouterr().err
        assert "database or disk is full" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and "[SQL:" not in err
        assert list(tiny.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=True)  # lazy: SQLite may hold a handle


def _tiny_disk(tmp_path_factory, size: str):
    import contextlib
    import subprocess

    @contextlib.contextmanager
    def mounted():
        tiny = tmp_path_factory.mktemp("tiny")
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(tiny)], check=True
        )
        try:
            yield tiny
        finally:
            subprocess.run(["umount", "-l", str(tiny)], check=True)

    return mounted()


def _fill(folder: Path) -> Path:
    """Write until the disk is full: what a neighbour's job does to a shared disk. The study's
    own writes (SQLite's write-ahead log) may have filled it first: then there is nothing to
    add, and the filler file stays empty or absent."""
    filler = folder / "filler"
    try:
        with open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError:
        pass
    return filler


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="mounting a tiny tmpfs needs root")
# The journal-workers case (35 s) runs with -m slow: the default run keeps the suite near ten
# minutes on 2 cores, and the SQLite case takes the same path to the one line.
@pytest.mark.parametrize(
    "workers",
    [pytest.param(["--n-workers", "2"], marks=pytest.mark.slow), []],
    ids=["journal-workers", "sqlite"],
)
def test_a_disk_that_fills_mid_study_is_one_line_and_the_rerun_finishes_the_budget(
    digits, tmp_path_factory, workers
):
    """Populations (2 per batch), the disk filled after two trials were told: one line, exit 2,
    no worker traceback; the trials the fault stopped are not counted, so the same command,
    run again with space, ends with the whole budget told (was: failed trials counted, 71
    lines of worker tracebacks, and the rerun ended "no completed trial")."""
    import subprocess
    import sys
    import time

    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    recipe = yaml.safe_load((digits / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 12
    (digits / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with _tiny_disk(tmp_path_factory, "2m") as tiny:
        command = [
            sys.executable,
            "-m",
            "tuning.cli",
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--n-trials",
            "10",
            "--population",
            "2",
            "--pruner",
            "none",
            "--accelerator",
            "cpu",
            "--study",
            "full",
            "--run-dir",
            str(tiny),
            *workers,
        ]
        proc = subprocess.Popen(
            command, cwd=digits, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.time() + 120
        told = 0
        while told < 2 and time.time() < deadline:  # two trials told, then the disk fills
            line = proc.stdout.readline()
            told += "/10 trials" in line
        filler = _fill(tiny)
        out, err = proc.communicate(timeout=120)
        lines = [
            line
            for line in err.splitlines()
            if not line.startswith(("trials ", "NonFiniteGuard action", "threads: "))
        ]
        assert proc.returncode == 2, err[-2000:]
        assert lines == [lines[-1]] and lines[-1].startswith("lit-tune: error: "), err[-2000:]
        assert "a write failed (" in lines[-1], err[-2000:]
        assert lines[-1].endswith(
            "free the space (or fix the storage) and run the same command again"
        )
        assert "Traceback" not in err
        filler.unlink(missing_ok=True)
        again = subprocess.run(command, cwd=digits, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        storage = (
            optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(str(tiny / "full" / "journal.log"))
            )
            if workers
            else f"sqlite:///{tiny}/full/study.db"
        )
        study = optuna.load_study(study_name="full", storage=storage)
        finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == 10
        assert all(t.user_attrs.get("rerun") for t in study.trials if t.state == TrialState.FAIL)


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_lit_optim_fit_on_a_full_disk_is_one_line(tmp_path_factory):
    import subprocess
    import sys

    with _tiny_disk(tmp_path_factory, "1m") as tiny:
        _fill(tiny).unlink()
        _fill(tiny)
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "lit_optim.cli.main",
                "fit",
                "--config",
                str(ROOT / "recipes" / "digits" / "mlp.yaml"),
                "--trainer.max_epochs",
                "1",
                "--trainer.default_root_dir",
                str(tiny),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines()[-1] == (
        "lit-optim: error: a file of the run could not be written (No space left on device): "
        "free space on the disk of the run's folder (or give --trainer.default_root_dir on "
        "another disk) and run again; a run that saved last.ckpt resumes with --ckpt_path last"
    )


def test_a_signal_that_lands_in_a_destructor_is_not_lost(capsys):
    # Python only prints what a __del__ raises: the SIGTERM handler's exception would vanish
    # there (seen with Lightning's Profiler.__del__) and the study would run on.
    import gc
    import os
    import signal

    from tuning.runner.errors import Interrupted
    from tuning.runner.interrupt import on_signals, raise_if_interrupted

    class Dies:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(1000))  # the handler runs here, inside __del__

    with pytest.raises(Interrupted, match="SIGTERM"):
        with on_signals():
            obj = Dies()
            del obj
            gc.collect()
            raise_if_interrupted()  # the next safe point (each batch, each trial)
    assert "Exception ignored" not in capsys.readouterr().err


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="a read-only mount needs root")
def test_a_read_only_run_dir_is_one_line_and_leaves_the_study_untouched(
    digits, capsys, tmp_path_factory
):
    # Root ignores file modes, so chmod cannot make a directory read-only for this test: a
    # read-only bind mount of the run dir can, for root as for anyone.
    import subprocess

    src, mnt = tmp_path_factory.mktemp("rw"), tmp_path_factory.mktemp("ro")
    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--accelerator",
            "cpu",
            "--n-trials",
            "1",
            "--study",
            "ro",
            "--run-dir",
            str(src),
        ]
    )
    before = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    capsys.readouterr()
    subprocess.run(["mount", "--bind", str(src), str(mnt)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], check=True)
        for study in ("ro", "new"):  # resuming the existing study, and starting another
            assert _run("--n-trials", "2", "--study", study, "--run-dir", str(mnt)) == 2
            err = capsys.readouterr().err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert err.startswith("lit-tune: error:") and "read-only" in err.lower(), err
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)
    assert {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()} == before


# -- storages: a user's own database is never written; reading commands never write -----------
def _tune(*args: str) -> int:
    return exit_status(lit_tune, *args)


def test_a_sqlite_file_that_is_not_a_study_is_refused_and_left_as_it_was(digits, capsys):
    import sqlite3

    own = digits / "mine.db"
    with sqlite3.connect(own) as db:
        db.execute("CREATE TABLE measurements (x REAL)")
    db.close()
    before = own.read_bytes()
    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    for args in (
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "s",
            "--storage",
            f"sqlite:///{own}",
            "--n-trials",
            "1",
        ],
        ["best", "--study", "s", "--storage", f"sqlite:///{own}"],
        ["studies", "--storage", f"sqlite:///{own}"],
    ):
        assert _tune(*args) == 2
        err = capsys.readouterr().err
        assert (
            f"{own} is a SQLite database but not an Optuna study (its tables: measurements)" in err
        )
        assert "Traceback" not in err
    assert own.read_bytes() == before


@pytest.mark.parametrize("storage", ["sqlite:///{d}/missing.db", "{d}/missing.log"])
def test_reading_a_missing_storage_creates_nothing(digits, capsys, storage):
    storage = storage.format(d=digits)
    for command in (["best", "--study", "s"], ["report", "--study", "s"], ["studies"]):
        assert _tune(*command, "--storage", storage) == 2
        err = capsys.readouterr().err
        assert "no study database" in err or "no journal file" in err, err
    assert not list(digits.glob("missing*"))


@pytest.mark.parametrize("workers", ["1", "2"], ids=["sqlite", "journal"])
def test_best_report_and_studies_leave_the_study_byte_for_byte(digits, workers):
    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    assert (
        _tune(
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "r",
            "--n-trials",
            "2",
            "--n-workers",
            workers,
            "--trainer.max_epochs",
            "1",
        )
        == 0
    )
    (file,) = [
        p for p in (digits / "runs" / "r").iterdir() if p.name in ("study.db", "journal.log")
    ]
    before = {p.name: p.read_bytes() for p in file.parent.iterdir() if p.is_file()}
    for command in (["best", "--study", "r"], ["report", "--study", "r"], ["studies"]):
        assert _tune(*command) == 0
    after = {p.name: p.read_bytes() for p in file.parent.iterdir() if p.is_file()}
    assert after == before  # no -wal/-shm/.lock left, no record rewritten


def test_studies_of_a_missing_run_dir_is_an_error(digits, capsys):
    assert _tune("studies", "--run-dir", "nowhere") == 2
    assert "--run-dir nowhere does not exist" in capsys.readouterr().err


def test_a_storage_write_failing_mid_study_is_one_line_and_keeps_the_finished_trials(
    digits, capsys, monkeypatch
):
    # The disk fills during trial 2: Optuna's RDB storage raises StorageInternalError from
    # the commit (sqlite3's "database or disk is full" as its cause), here injected at the
    # storage layer on the first write of trial 2.
    import sqlite3

    import optuna

    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    real = optuna.storages.RDBStorage.set_trial_user_attr

    def full_disk(self, trial_id, key, value):
        if self.get_trial_number_from_id(trial_id) >= 2:
            try:
                raise sqlite3.OperationalError("database or disk is full")
            except sqlite3.OperationalError as disk:
                raise optuna.exceptions.StorageInternalError(
                    "An exception is raised during the commit."
                ) from disk
        return real(self, trial_id, key, value)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", full_disk)
    assert _run("--n-trials", "4", "--study", "disk", "--population", "1") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    database = Path("runs/disk/study.db").absolute()
    assert len(errors) == 1 and f"storage sqlite:///{database}: a write failed" in errors[0]
    assert "database or disk is full" in errors[0]
    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", real)
    study = optuna.load_study(study_name="disk", storage=f"sqlite:///{digits}/runs/disk/study.db")
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [t.number for t in finished] == [0, 1]  # readable, nothing finished lost


def test_a_run_in_a_log_prints_lines_not_bars_and_an_absolute_storage(
    digits, capfd, tmp_path, monkeypatch
):
    _space(digits / "space.yaml", {"model.lr": "log[1e-3, 1e-1]"})
    recipe = yaml.safe_load((digits / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 1
    (digits / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "logged",
            "--accelerator",
            "cpu",
            "--n-trials",
            "2",
            "--population",
            "1",
        ]
    )
    captured = capfd.readouterr()  # not a terminal, as in a log file or CI
    assert "\r" not in captured.out and "\r" not in captured.err
    progress = [line for line in captured.out.splitlines() if line.startswith("study logged: ")]
    assert [line.split()[2].rstrip(",") for line in progress][:2] == ["1/2", "2/2"], captured.out
    url = next(
        line.split()[1] for line in captured.out.splitlines() if line.startswith("storage: ")
    )
    assert url == f"sqlite:///{(digits / 'runs' / 'logged' / 'study.db').absolute()}"
    monkeypatch.chdir(tmp_path)  # the printed URL opens from any folder
    assert len(optuna.load_study(study_name="logged", storage=url).trials) == 2

"""The check before trial 0 builds the module's schedule for the real run's length: a warmup
shorter than the training passes (compare and run alike), one that is not is one line, exit 2,
before any study is created."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from support import ROOT, exit_status
from tuning.cli import main as lit_tune
from tuning.search.preflight import LoggedProbe


def _recipe(tune_dir: Path, *, epochs: int, **scheduler_kwargs) -> str:
    """The tune_dir recipe (digits, 9 steps an epoch) with this warmup and length."""
    recipe = yaml.safe_load((tune_dir / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = epochs
    recipe["model"]["scheduler_kwargs"] = scheduler_kwargs
    (tune_dir / "warm.yaml").write_text(yaml.safe_dump(recipe))
    (tune_dir / "space.yaml").write_text(
        yaml.safe_dump({"metric": "val_acc", "params": {"model.lr": "log[1e-3, 3e-2]"}})
    )
    return "warm.yaml"


@pytest.mark.parametrize("warmup", [{"warmup_epochs": 1}, {"warmup_steps": 5}])
def test_compare_with_a_warmup_shorter_than_training_runs(tune_dir, warmup):
    """The probe of the metrics once fitted one step with the recipe's schedule, which refused
    any warmup: "warmup of 5 steps is not shorter than training (1 steps)"."""
    recipe = _recipe(tune_dir, epochs=2, **warmup)
    assert (
        exit_status(
            lit_tune,
            "compare",
            "--recipe",
            recipe,
            "--optimizers",
            "adam",
            "--budget",
            "1",
            "--seeds",
            "1",
            "--population",
            "1",
        )
        == 0
    )
    assert (tune_dir / "runs" / "compare" / "report.md").is_file()


def test_the_projects_own_recipe_with_warmup_steps_compares(tune_dir):
    recipe = yaml.safe_load((ROOT / "recipes" / "digits" / "mlp.yaml").read_text())
    recipe["model"]["scheduler_kwargs"] = {"warmup_steps": 5}
    (tune_dir / "digits.yaml").write_text(yaml.safe_dump(recipe))
    assert (
        exit_status(
            lit_tune,
            "compare",
            "--recipe",
            "digits.yaml",
            "--optimizers",
            "adam",
            "--budget",
            "1",
            "--seeds",
            "1",
            "--population",
            "1",
            "--trainer.max_epochs",
            "2",
        )
        == 0
    )


def test_run_with_a_warmup_shorter_than_training_completes(tune_dir):
    recipe = _recipe(tune_dir, epochs=2, warmup_epochs=1)
    assert (
        exit_status(
            lit_tune,
            "run",
            "--recipe",
            recipe,
            "--space",
            "space.yaml",
            "--study",
            "w",
            "--n-trials",
            "2",
            "--accelerator",
            "cpu",
        )
        == 0
    )
    study = optuna.load_study(study_name="w", storage="sqlite:///runs/w/study.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_warmup_as_long_as_training_is_one_line_before_trial_0(tune_dir, capsys, command):
    """Every trial was pruned "invalid configuration" and the run ended with exit 1."""
    recipe = _recipe(tune_dir, epochs=2, warmup_epochs=2)
    args = (
        ["run", "--space", "space.yaml", "--study", "w", "--n-trials", "2"]
        if command == "run"
        else ["compare", "--optimizers", "adam", "--budget", "2"]
    )
    assert exit_status(lit_tune, *args, "--recipe", recipe, "--trainer.max_epochs", "1") == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert lines == [
        "lit-tune: error: warmup of 18 steps (warmup_epochs 2) is not shorter than "
        "training (9 steps: 1 epoch of 9); shorten the warmup or train longer"
    ], err
    assert not (tune_dir / "runs").exists() or not any((tune_dir / "runs").rglob("*.db"))


def test_the_probe_builds_the_schedule_for_the_real_length(tune_dir):
    """One batch is trained and validated, but the schedule knows the run is 2 × 9 steps."""
    recipe = yaml.safe_load((tune_dir / "recipe.yaml").read_text())
    recipe["model"]["scheduler_kwargs"] = {"warmup_steps": 17}  # 18 steps: just shorter
    probe = LoggedProbe(recipe, ["--trainer.accelerator=cpu"])
    assert {"train_loss", "val_acc", "val_loss"} <= set(probe.fitted)
    assert "test_acc" in probe.tested

"""A user's own project (examples/own_module: a sine regressor and its data module, not a
classifier of ours) through the public CLIs: lit-optim fit, lit-tune run/best, the callbacks."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lit_optim.cli.main import main as lit_optim
from support import ROOT
from tuning.cli import main as lit_tune

EXAMPLE = ROOT / "examples" / "own_module"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture
def user_project(tmp_path, monkeypatch):
    """cd into tmp_path with the example importable, as PYTHONPATH=examples/own_module does."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setattr("sys.argv", ["lit-optim"])
    return tmp_path


def _metrics(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(next(folder.rglob("metrics.csv")))))


def test_fit_the_user_recipe_reaches_near_the_noise_floor(user_project):
    lit_optim(
        [
            "fit",
            "--config",
            str(EXAMPLE / "recipe.yaml"),
            *QUIET,
            "--trainer.logger",
            "CSVLogger",
            "--trainer.logger.save_dir",
            "log",
        ]
    )
    val = [float(r["val/loss"]) for r in _metrics(user_project / "log") if r.get("val/loss")]
    assert len(val) == 40
    # Predicting the mean scores Var(sin 3x) ≈ 0.5; the noise floor is 0.1² = 0.01.
    assert val[-1] < 0.05 and val[-1] < val[0] / 5


def test_plateau_reads_the_users_metric_name(user_project):
    lit_optim(
        [
            "fit",
            "--config",
            str(EXAMPLE / "recipe.yaml"),
            *QUIET,
            "--trainer.max_epochs",
            "3",
            "--model.scheduler",
            "plateau",
            "--model.optimizer",
            "sgd",
            "--model.lr",
            "0.1",
            "--model.scheduler_kwargs",
            '{"patience": 0, "factor": 0.5, "threshold": 1.0}',
            "--trainer.logger",
            "CSVLogger",
            "--trainer.logger.save_dir",
            "log",
            "--trainer.callbacks+=LearningRateMonitor",
        ]
    )
    # The module's create_scheduler names the lr: the LearningRateMonitor logs it as lr/pg1 …
    lrs = [float(r["lr/pg1"]) for r in _metrics(user_project / "log") if r.get("lr/pg1")]
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.1 * 0.5**2)


def test_the_three_callbacks_on_the_users_module(user_project):
    recipe = yaml.safe_load((EXAMPLE / "recipe.yaml").read_text())
    recipe["trainer"].update(
        max_epochs=3,
        log_every_n_steps=1,
        callbacks=[
            {
                "class_path": "lit_optim.callbacks.NonFiniteGuard",
                "init_args": {"action": "rollback", "lr_factor": 0.1, "snapshot_every_n_steps": 5},
            },
            {
                "class_path": "lit_optim.callbacks.GradientClipper",
                "init_args": {"mode": "adaptive", "percentile": 10},
            },
            {
                "class_path": "lit_optim.callbacks.LayerDiagnostics",
                "init_args": {"every_n_steps": 5},
            },
        ],
    )
    # sgd at lr 50 blows the tanh MLP up within a few steps: the guard must roll it back.
    recipe["model"]["init_args"].update(optimizer="sgd", lr=50.0, scheduler="constant")
    path = user_project / "callbacks.yaml"
    path.write_text(yaml.safe_dump(recipe))
    # The guard keeps every value finite, but the run ends far above the loss it reached: a
    # diverged run, said in one line with exit 1, not a finished one.
    with pytest.raises(SystemExit) as exit_:
        lit_optim(
            [
                "fit",
                "--config",
                str(path),
                *QUIET,
                "--trainer.logger",
                "CSVLogger",
                "--trainer.logger.save_dir",
                "log",
            ]
        )
    assert exit_.value.code == 1
    rows = _metrics(user_project / "log")
    columns = set().union(*rows)
    assert {"grad_norm", "grad_clipped_frac"} <= columns
    assert any(c.startswith("diag/net.0.weight/") for c in columns)
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert val and all(math.isfinite(v) for v in val)


def test_a_study_over_the_users_module_finishes_and_exports_a_runnable_recipe(user_project, capsys):
    recipe = yaml.safe_load((EXAMPLE / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 4
    (user_project / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            str(EXAMPLE / "search.yaml"),
            "--n-trials",
            "4",
            "--study",
            "sine",
            "--pruner",
            "successive_halving",
            "--accelerator",
            "cpu",
        ]
    )
    study = optuna.load_study(study_name="sine", storage="sqlite:///runs/sine/study.db")
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == len(study.trials) == 4
    # The pruner saw every validation epoch of every trial, under the module's own metric name.
    assert all(t.intermediate_values for t in finished)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.best_value == min(t.value for t in study.trials if t.state == TrialState.COMPLETE)
    lit_tune(["best", "--study", "sine", "--export", "best.yaml"])
    exported = yaml.safe_load((user_project / "best.yaml").read_text())
    assert exported["model"]["class_path"] == "own_module.SineRegressor"
    assert exported["model"]["init_args"]["lr"] == study.best_params["model.lr"]
    lit_optim(["fit", "--config", "best.yaml", *QUIET, "--trainer.max_epochs", "1"])
    assert any(user_project.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"model.lrr": "log[1e-3, 1e-1]"},
            r"model.lrr does not exist: model \(own_module.SineRegressor\) "
            r"has no 'lrr'; did you mean 'lr'",
        ),
        ({"data.batchsize": [16, 32]}, "data.batchsize does not exist.*did you mean 'batch_size'"),
        ({"model.optimizer": ["adamw"], "model.init_args.lr": "log[1e-3, 1e-1]"}, None),
    ],
)
def test_space_paths_are_checked_in_the_users_classes_before_trial_0(
    user_project, capsys, space, message
):
    (user_project / "space.yaml").write_text(
        yaml.safe_dump({"metric": "val/loss", "direction": "minimize", "params": space})
    )
    args = [
        "run",
        "--recipe",
        str(EXAMPLE / "recipe.yaml"),
        "--space",
        "space.yaml",
        "--n-trials",
        "1",
        "--study",
        "s",
        "--accelerator",
        "cpu",
    ]
    if message is None:  # both spellings of a path work: model.lr and model.init_args.lr
        recipe = yaml.safe_load((EXAMPLE / "recipe.yaml").read_text())
        recipe["trainer"]["max_epochs"] = 1
        (user_project / "r.yaml").write_text(yaml.safe_dump(recipe))
        lit_tune([*args[:2], "r.yaml", *args[3:]])
        study = optuna.load_study(study_name="s", storage="sqlite:///runs/s/study.db")
        assert study.trials[0].state == TrialState.COMPLETE
        return
    with pytest.raises(SystemExit) as info:
        lit_tune(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("lit-tune: error: ")
    assert __import__("re").search(message, err), err
    assert not (user_project / "runs" / "s" / "study.db").exists()


@pytest.mark.parametrize("population", ["1", "auto"])
def test_a_metric_the_module_never_logs_stops_the_study_listing_what_it_logs(
    user_project, capsys, population
):
    (user_project / "space.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "val_loss",
                "direction": "minimize",
                "params": {"model.lr": "log[1e-3, 1e-1]"},
            }
        )
    )
    recipe = yaml.safe_load((EXAMPLE / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 2
    (user_project / "r.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(SystemExit) as info:
        lit_tune(
            [
                "run",
                "--recipe",
                "r.yaml",
                "--space",
                "space.yaml",
                "--n-trials",
                "5",
                "--study",
                "m",
                "--accelerator",
                "cpu",
                "--population",
                population,
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert (
        "metric 'val_loss' is never logged by SineRegressor; it logs: train/loss, val/loss" in err
    )
    study = optuna.load_study(study_name="m", storage="sqlite:///runs/m/study.db")
    if population == "1":
        assert len(study.trials) == 1  # stopped at the first trial, not 5 wasted ones
    else:  # auto: 2 at once (a quarter of 5, at least 2); that first population stopped
        assert "train as one population of 2" in err
        assert len(study.trials) == 2
        assert all("never logged" in t.user_attrs["fail_reason"] for t in study.trials)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "own_module.NoSuch"], "own_module.NoSuch"),
        (
            ["--model", "own_module.SineData"],
            "does not correspond to a subclass of LightningModule",
        ),
        (["--model.hiden", "3"], "Option 'hiden' is not accepted; did you mean 'hidden'"),
        (["--data.batch_sise", "3"], "did you mean 'batch_size'"),
    ],
)
def test_bad_class_paths_and_init_args_are_one_line(user_project, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        lit_optim(["fit", "--config", str(EXAMPLE / "recipe.yaml"), *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err and message in err
    assert len(err.strip().splitlines()) == 1
    assert not any(user_project.rglob("*.ckpt"))


def test_compare_says_which_init_args_a_user_module_needs(user_project, capsys):
    recipe = yaml.safe_load((EXAMPLE / "recipe.yaml").read_text())
    recipe["model"] = {"class_path": "own_module_fixed.FixedOptimizer", "init_args": {"lr": 0.01}}
    (user_project / "own_module_fixed.py").write_text(
        "from own_module import SineRegressor\n"
        "class FixedOptimizer(SineRegressor):\n"
        "    def __init__(self, lr: float = 0.01):\n"
        "        super().__init__(lr=lr)\n"
    )
    (user_project / "r.yaml").write_text(yaml.safe_dump(recipe))
    import sys

    sys.path.insert(0, str(user_project))
    try:
        with pytest.raises(SystemExit) as info:
            lit_tune(
                [
                    "compare",
                    "--recipe",
                    "r.yaml",
                    "--optimizers",
                    "sgd,adam",
                    "--budget",
                    "1",
                    "--seeds",
                    "1",
                ]
            )
    finally:
        sys.path.remove(str(user_project))
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert (
        "lit-tune compare sets model.optimizer, model.lr, but own_module_fixed.FixedOptimizer "
        "does not take optimizer (it takes: lr)" in err
    ), err

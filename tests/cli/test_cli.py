"""The lit-optim command, run in-process exactly as a user types it."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from lit_optim.cli.main import main
from support import ROOT

DIGITS = str(ROOT / "recipes" / "digits" / "mlp.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # lightning_logs/ and checkpoints land here
    monkeypatch.setattr("sys.argv", ["lit-optim"])  # pytest's own arguments are not ours


def run(*args: str) -> None:
    main(list(args))


def fail(capsys, *args: str) -> str:
    """Run a command that must fail with exit status 2 and a one-line error, no traceback."""
    with pytest.raises(SystemExit) as info:
        run(*args)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert "Traceback" not in err
    return err


def test_fit_default_recipe_reaches_its_stated_accuracy(tmp_path):
    run(
        "fit",
        "--config",
        DIGITS,
        *QUIET,
        "--trainer.logger",
        "CSVLogger",
        "--trainer.logger.save_dir",
        str(tmp_path / "run"),
    )
    rows = list(csv.DictReader(open(next((tmp_path / "run").rglob("metrics.csv")))))
    val_acc = [float(r["val_acc"]) for r in rows if r.get("val_acc")]
    assert len(val_acc) == 30  # one per epoch, as the recipe states
    assert val_acc[-1] >= 0.97


def test_fit_with_command_line_overrides(tmp_path):
    run(
        "fit",
        "--config",
        DIGITS,
        *QUIET,
        "--model.optimizer",
        "sgd",
        "--model.lr",
        "0.1",
        "--model.optimizer_kwargs",
        '{"momentum": 0.9}',
        "--model.scheduler",
        "cosine",
        "--data.batch_size",
        "64",
        "--trainer.max_epochs",
        "5",
    )
    config = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    assert config["model"]["class_path"] == "lit_optim.ClassificationTask"
    assert model["optimizer"] == "sgd" and model["lr"] == 0.1
    assert model["optimizer_kwargs"] == {"momentum": 0.9}
    assert data["batch_size"] == 64 and config["trainer"]["max_epochs"] == 5
    ckpt = next(tmp_path.rglob("*.ckpt"))
    assert "epoch=4" in ckpt.name and "step=90" in ckpt.name  # 18 batches of 64 per epoch


def test_csv_logger_writes_val_acc_per_epoch(tmp_path):
    run(
        "fit",
        "--config",
        DIGITS,
        *QUIET,
        "--trainer.max_epochs",
        "3",
        "--trainer.logger",
        "CSVLogger",
        "--trainer.logger.save_dir",
        str(tmp_path / "run"),
    )
    rows = list(csv.DictReader(open(next((tmp_path / "run").rglob("metrics.csv")))))
    epochs = [int(r["epoch"]) for r in rows if r.get("val_acc")]
    assert epochs == [0, 1, 2]
    assert {"train_loss", "train_acc", "val_loss", "train_loss_step"} <= set(rows[0])
    # The CLI's LearningRateMonitor: one lr column per param group (weight decay splits the
    # recipe's parameters in two: biases take none), on every logging step.
    lrs = [(float(r["lr/pg1"]), float(r["lr/pg2"])) for r in rows if r.get("lr/pg1")]
    assert len(lrs) == 27 // 5 and all(a == b for a, b in lrs) and lrs[0][0] < 3e-3


def test_print_config_output_runs_again(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run("fit", "--config", DIGITS, "--model.lr", "0.002", "--print_config")
    assert info.value.code == 0
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    assert config["model"]["init_args"]["lr"] == 0.002
    assert config["data"]["init_args"]["dataset"] == "digits"
    assert "trainer" in config and "seed_everything" in config
    path = tmp_path / "printed.yaml"
    path.write_text(printed)
    run("fit", "--config", str(path), *QUIET, "--trainer.max_epochs", "1")
    saved = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())
    assert saved["model"]["init_args"]["lr"] == 0.002


def test_validate_and_test_from_a_checkpoint(tmp_path, capsys):
    run("fit", "--config", DIGITS, *QUIET, "--trainer.max_epochs", "2")
    ckpt = str(next(tmp_path.rglob("*.ckpt")))
    capsys.readouterr()
    run("test", "--config", DIGITS, *QUIET, "--ckpt_path", ckpt)
    out = capsys.readouterr().out
    assert "test_acc" in out
    run("validate", "--config", DIGITS, *QUIET, "--ckpt_path", ckpt)
    assert "val_acc" in capsys.readouterr().out
    # Both logged beside the fit they score, not in a version_N of their own.
    run_dir = next(tmp_path.rglob("*.ckpt")).parent.parent
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [run_dir.name]
    tested = list(csv.DictReader(open(run_dir / "test" / "metrics.csv")))
    assert "test_acc" in tested[0]
    assert "val_acc" in next(csv.DictReader(open(run_dir / "validate" / "metrics.csv")))
    assert "val_acc" in next(csv.DictReader(open(run_dir / "metrics.csv")))  # the fit's own


@pytest.mark.parametrize("kind", ["optimizers", "schedulers", "models", "datasets"])
def test_list_one_kind(capsys, kind):
    from lit_optim.cli.listing import KINDS

    run("list", kind)
    out = capsys.readouterr().out
    assert out.startswith(f"{kind}:")
    for entry in KINDS[kind]:
        assert f"  {entry.name} " in out and entry.description in out


def test_list_everything_shows_kwargs(capsys):
    run("list")
    out = capsys.readouterr().out
    for kind in ("optimizers:", "schedulers:", "models:", "datasets:"):
        assert kind in out
    assert "momentum=0" in out and "hidden_dims=(200, 100, 50)" in out
    assert "monitor='val_loss'" in out


def test_list_unknown_kind(capsys):
    err = fail(capsys, "list", "optimisers")
    assert "unknown catalogue 'optimisers'" in err and "did you mean 'optimizers'" in err


# --- bad input: one clear message, exit status 2, no traceback ----------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model.optimizer", "adamm"],
            "unknown optimizer 'adamm'; did you mean 'adam', 'radam', 'nadam', 'adamw', 'adamax'?",
        ),
        (["--model.scheduler", "cosin"], "unknown scheduler 'cosin'; did you mean 'cosine'?"),
        (["--model.network", "mpl"], "unknown model 'mpl'; did you mean 'mlp'?"),
        (["--data.dataset", "fashion"], "unknown dataset 'fashion'; did you mean 'fashion_mnist'"),
        (["--model.lr", "0"], "lr must be a finite number > 0, got 0.0"),
        (["--model.lr", "-0.1"], "lr must be a finite number > 0, got -0.1"),
        (["--model.weight_decay=-1e-4"], "weight_decay must be a finite number ≥ 0"),
        (["--data.batch_size", "0"], "batch_size must be an integer >= 1, got 0"),
        (
            ["--model.scheduler", "plateau", "--model.scheduler_kwargs", '{"monitor": "val_f1"}'],
            "scheduler 'plateau' monitors 'val_f1', which is never logged",
        ),
        (
            ["--model.scheduler", "plateau", "--trainer.limit_val_batches", "0"],
            "scheduler 'plateau' monitors 'val_loss' but validation never runs",
        ),
        (
            ["--model.optimizer_kwargs", '{"momentum": 0.9}'],
            "optimizer 'adam' does not take 'momentum'",
        ),
        (
            ["--model.optimizer", "lookahead", "--model.optimizer_kwargs", '{"base": "adan"}'],
            "unknown optimizer 'adan'; did you mean 'adam'",
        ),
        (
            ["--model.scheduler_kwargs", '{"warmup_epochs": 40}'],
            "warmup of 360 steps (warmup_epochs 40) is not shorter than training "
            "(270 steps: 30 epochs of 9)",
        ),
        (
            [
                "--model.optimizer",
                "lbfgs",
                "--model.scheduler",
                "plateau",
                "--trainer.limit_val_batches",
                "0",
            ],
            "scheduler 'plateau' monitors 'val_loss' but validation never runs",
        ),
        (
            ["--model.param_groups", '[{"params": "net.9.*"}]'],
            "param_groups[0] pattern 'net.9.*' matches no parameter",
        ),
    ],
)
def test_bad_input_on_the_command_line(capsys, args, message):
    err = fail(capsys, "fit", "--config", DIGITS, *QUIET, *args)
    assert f"lit-optim: error: {message}" in err


def test_unknown_key_in_a_recipe(tmp_path, capsys):
    recipe = yaml.safe_load(Path(DIGITS).read_text())
    recipe["model"]["learning_rate"] = 0.1
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    err = fail(capsys, "fit", "--config", str(path))
    assert "learning_rate" in err


def test_dataset_missing_offline(tmp_path, capsys):
    err = fail(
        capsys,
        "fit",
        "--config",
        DIGITS,
        *QUIET,
        "--data.dataset",
        "mnist",
        "--data.data_dir",
        str(tmp_path / "empty"),
    )
    assert f"MNIST not found (or corrupted) in {tmp_path / 'empty' / 'MNIST' / 'raw'}" in err
    assert "--data.download true" in err


def test_nothing_is_written_when_input_is_bad(tmp_path, capsys):
    fail(capsys, "fit", "--config", DIGITS, "--model.lr", "-1")
    assert not any(tmp_path.rglob("*.ckpt")) and not any(tmp_path.rglob("metrics.csv"))


def test_json_kwargs_round_trip_through_the_saved_config(tmp_path):
    run(
        "fit",
        "--config",
        DIGITS,
        *QUIET,
        "--trainer.max_epochs",
        "1",
        "--model.scheduler",
        "step",
        "--model.scheduler_kwargs",
        json.dumps({"step_size": 1, "gamma": 0.5}),
    )
    saved = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())
    assert saved["model"]["init_args"]["scheduler_kwargs"] == {"step_size": 1, "gamma": 0.5}


# --- the catalog through the CLI: every optimizer trains the default recipe ------------------
from lit_optim import OPTIMIZERS  # noqa: E402


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_trains_the_digits_recipe(name, tmp_path):
    run(
        "fit",
        "--config",
        DIGITS,
        *QUIET,
        "--model.optimizer",
        name,
        "--trainer.max_epochs",
        "2",
        "--trainer.logger",
        "CSVLogger",
        "--trainer.logger.save_dir",
        str(tmp_path / "run"),
    )
    rows = list(csv.DictReader(open(next((tmp_path / "run").rglob("metrics.csv")))))
    losses = [float(r["train_loss"]) for r in rows if r.get("train_loss")]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_subcommand_help_says_first_how_to_see_the_modules_options(subcommand, capsys):
    with pytest.raises(SystemExit) as info:
        run(subcommand, "--help")
    assert info.value.code == 0
    head = "\n".join(capsys.readouterr().out.splitlines()[:10])
    assert f"usage: lit-optim {subcommand} " in head
    assert "--model.help ClassificationTask" in " ".join(head.split())
    assert "--data.help ClassificationData" in " ".join(head.split())
    with pytest.raises(SystemExit):
        run(subcommand, "--model.help", "ClassificationTask")
    assert "--model.lr LR" in capsys.readouterr().out


def test_the_sections_a_misspelt_key_is_matched_against_are_the_parsers():
    """RECIPE_SECTIONS is what `trainr:` is compared with: it must be every top-level key the
    fit parser takes (a new section must be added there too)."""
    from lit_optim.cli.lightning_cli import RECIPE_SECTIONS, cli_objects

    cli = cli_objects(DIGITS)
    parsed = {key.split(".")[0] for key in cli.config.keys()} - {"config"}
    assert parsed <= set(RECIPE_SECTIONS), parsed - set(RECIPE_SECTIONS)
    assert set(RECIPE_SECTIONS) - parsed == {"ckpt_path"}  # fit's, not a recipe-only run's


UNSAVED_WIDTH = '''
import lightning as L, torch
from torch import nn


class Unsaved(L.LightningModule):
    """Its width is an init arg it does not save_hyperparameters: a checkpoint cannot say it."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.net = nn.Linear(64, width)

    def training_step(self, batch, batch_idx):
        return self.net(batch[0].flatten(1)).pow(2).mean()

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self.net(batch[0].flatten(1)).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)
'''


def test_a_checkpoint_that_does_not_fit_the_model_is_one_line(tmp_path, monkeypatch, capsys):
    """It was torch's 42-line traceback (a line per tensor of "size mismatch")."""
    from support import exit_status

    (tmp_path / "unsaved.py").write_text(UNSAVED_WIDTH)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    common = [
        "--model",
        "unsaved.Unsaved",
        "--data",
        "lit_optim.ClassificationData",
        "--trainer.enable_progress_bar",
        "false",
    ]
    assert exit_status(main, "fit", *common, "--trainer.max_epochs", "1") == 0
    ckpt = next(tmp_path.rglob("last.ckpt"))
    capsys.readouterr()
    assert exit_status(main, "test", *common, "--model.width", "16", "--ckpt_path", str(ckpt)) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert lines == [
        "lit-optim: error: the checkpoint (--ckpt_path) does not fit the model the "
        "recipe builds: net.weight is [8, 64] there, [16, 64] here; net.bias is [8] "
        "there, [16] here. Give the options it was trained with (its run's "
        "config.yaml, beside checkpoints/), or a checkpoint of this model"
    ], err
    assert "Traceback" not in err

"""`lit-optim lr-find` / `batch-find` and `lit-tune run --lr-range auto`, run as a user would."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from lit_optim.cli.main import main
from support import ROOT, exit_status

DIGITS = str(ROOT / "recipes" / "digits" / "mlp.yaml")
EXAMPLE = ROOT / "examples" / "own_module"

NO_LR_MODULE = '''
import lightning as L, torch
from torch.utils.data import DataLoader, TensorDataset

class NoBatchSize(L.LightningDataModule):
    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(64, 2), torch.randn(64, 1)), batch_size=16)

class FixedLr(L.LightningModule):
    """Takes no lr: its optimizer's lr is fixed inside configure_optimizers."""
    def __init__(self, hidden: int = 8):
        super().__init__()
        self.net = torch.nn.Linear(2, 1)
    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)
'''


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-optim"])
    (tmp_path / "user_mods.py").write_text(NO_LR_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))


def _code(*args: str) -> int:
    return exit_status(main, *args)


def test_lr_find_prints_writes_the_marked_curve_and_exports_a_recipe(tmp_path, capsys):
    assert (
        _code("lr-find", "--config", DIGITS, "--model.optimizer", "sgd", "--export", "sgd.yaml")
        == 0
    )
    out = capsys.readouterr().out
    suggested = float(out.split("suggested lr: ")[1].split()[0])
    diverges = float(out.split("diverges at: ")[1].split()[0])
    assert math.isfinite(diverges) and diverges > suggested > 0
    folder = tmp_path / "runs" / "lr_find" / "mlp"
    numbers = json.loads((folder / "lr_find.json").read_text())
    assert numbers["suggestion"] == pytest.approx(suggested, rel=1e-3)
    # What the PNG's axes show, saved in the PNG itself (read back, not pixels).
    from PIL import Image

    plotted = json.loads(Image.open(folder / "lr_find.png").text["lit-optim"])
    assert plotted["xscale"] == "log"
    finite = [(x, y) for x, y in zip(numbers["lrs"], numbers["losses"]) if math.isfinite(y)]
    assert plotted["x"] == [x for x, _ in finite] and plotted["y"] == [y for _, y in finite]
    assert plotted["marks"]["suggestion"] == pytest.approx(suggested, rel=1e-3)
    assert plotted["marks"]["divergence"] == pytest.approx(diverges, rel=1e-3)
    assert min(plotted["x"]) < suggested < max(plotted["x"])
    assert "suggestion" in (folder / "lr_find.html").read_text()
    exported = yaml.safe_load((tmp_path / "sgd.yaml").read_text())
    assert exported["model"]["init_args"]["optimizer"] == "sgd"
    assert exported["model"]["init_args"]["lr"] == pytest.approx(suggested, rel=1e-3)
    assert exported["trainer"]["max_epochs"] == 30  # the recipe's, not the search's
    assert _code("fit", "--config", "sgd.yaml", "--trainer.max_epochs", "1") == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"runs", "sgd.yaml"}
    assert not list(tmp_path.glob(".lr_find*"))


def test_the_range_test_leaves_the_weights_as_they_were(tmp_path):
    from lit_optim.cli.find import scratch_objects
    from lit_optim.finders.lr_range import run_range_test

    cli = scratch_objects(
        [DIGITS], ["--trainer.max_epochs=-1", "--trainer.max_steps=40"], str(tmp_path)
    )
    before = {k: v.clone() for k, v in cli.model.state_dict().items()}
    result = run_range_test(cli.model, cli.datamodule, cli.trainer, num_training=40)
    assert len(result.lrs) > 11 and result.lrs == sorted(result.lrs)
    after = cli.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_lr_find_on_a_users_own_module(capsys):
    assert (
        _code(
            "lr-find",
            "--config",
            str(EXAMPLE / "recipe.yaml"),
            "--num_training",
            "30",
            "--out",
            "own",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "suggested lr: " in out and Path("own/lr_find.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["lr-find", "--config", DIGITS, "--min_lr", "1", "--max_lr", "0.1"],
            "the range must grow: min_lr 1 >= max_lr 0.1",
        ),
        (["lr-find", "--config", DIGITS, "--num_training", "5"], "num_training must be >= 10"),
        (["lr-find", "--config", DIGITS, "--export", "no/such/dir/r.yaml"], "does not exist"),
        (["lr-find", "--config", DIGITS, "--model.optimizer", "adamm"], "did you mean 'adam'"),
        (["lr-find", "--max_lr", "abc"], "argument --max_lr: invalid float value: 'abc'"),
        (
            ["lr-find", "--model", "user_mods.FixedLr", "--data", "user_mods.NoBatchSize"],
            "takes no lr (or learning_rate) argument",
        ),
        (
            ["batch-find", "--model", "user_mods.FixedLr", "--data", "user_mods.NoBatchSize"],
            "needs a data module with an integer batch_size",
        ),
        (["batch-find", "--config", DIGITS, "--mode", "linear"], "invalid choice: 'linear'"),
        # Lightning's finders skip under fast_dev_run and return nothing (a traceback here)
        (
            ["lr-find", "--config", DIGITS, "--trainer.fast_dev_run", "true"],
            "the lr range test trains real steps; fast_dev_run skips it",
        ),
        (
            ["batch-find", "--config", DIGITS, "--trainer.fast_dev_run", "true"],
            "the batch size search trains real steps; fast_dev_run skips it",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    before = sorted(p.name for p in tmp_path.iterdir())
    assert _code(*args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_batch_find_reports_the_largest_batch_and_the_throughput_of_each(tmp_path, capsys):
    assert (
        _code(
            "batch-find",
            "--config",
            DIGITS,
            "--max_trials",
            "4",
            "--model.lr_scaling",
            "linear",
            "--model.base_batch_size",
            "128",
            "--export",
            "big.yaml",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "largest batch that fits: 16 " in out  # 2 doubled 3 more times: 4 trials
    rows = [line.split() for line in out.splitlines() if line.strip() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == [2, 4, 8, 16] and all(float(r[1]) > 0 for r in rows)
    assert "lr_scaling linear: lr 0.003 × 0.125 = 0.000375 at batch 16" in out
    assert yaml.safe_load(Path("big.yaml").read_text())["data"]["init_args"]["batch_size"] == 16


def test_lit_tune_lr_range_auto_searches_the_range_test_s_range(tmp_path):
    from tuning.cli import main as lit_tune

    (tmp_path / "space.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "val_acc",
                "direction": "maximize",
                "params": {"model.lr": "log[1e-5, 1]", "model.weight_decay": "log[1e-6, 1e-3]"},
            }
        )
    )
    lit_tune(
        [
            "run",
            "--recipe",
            DIGITS,
            "--space",
            "space.yaml",
            "--study",
            "auto",
            "--n-trials",
            "3",
            "--lr-range",
            "auto",
            "--trainer.max_epochs",
            "1",
            "--accelerator",
            "cpu",
        ]
    )
    study = optuna.load_study(study_name="auto", storage="sqlite:///runs/auto/study.db")
    found = study.user_attrs["lr_range"]
    low, high = found["range"]
    assert low == pytest.approx(found["suggestion"] / 10) and high == found["divergence"]
    assert all(low * 0.999 <= t.params["model.lr"] <= high * 1.001 for t in study.trials)
    assert len(study.trials) == 3


@pytest.mark.slow  # 3 × (range test + a 30-epoch fit): the acceptance figures
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "lamb"])
def test_the_suggested_lr_trains_the_digits_recipe_to_0_96(tmp_path, capsys, optimizer):
    assert (
        _code(
            "lr-find", "--config", DIGITS, "--model.optimizer", optimizer, "--export", "found.yaml"
        )
        == 0
    )
    assert _code("fit", "--config", "found.yaml", "--trainer.enable_progress_bar", "false") == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.split()[:1] == ["val_acc"])
    assert float(line.split("best ")[1].split()[0]) >= 0.96, line  # the val_acc it reaches


def test_batch_find_never_proposes_more_than_the_training_set(tmp_path, capsys):
    # The digits split trains on 1,078 samples; memory alone would allow 2048 (and more).
    assert (
        _code("batch-find", "--config", DIGITS, "--max_trials", "11", "--export", "big.yaml") == 0
    )
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("largest batch that fits"))
    n = int(line.split("training set, ")[1].split()[0])
    assert 1000 < n < 1437 and f"largest batch that fits: {n} " in line, line
    sizes = [int(r.split()[0]) for r in out.splitlines() if r.strip() and r.split()[0].isdigit()]
    assert max(sizes) == n
    assert yaml.safe_load(Path("big.yaml").read_text())["data"]["init_args"]["batch_size"] == n


@pytest.mark.parametrize(
    "schedule",
    [
        ["--model.scheduler", "cosine", "--model.scheduler_kwargs.warmup_epochs", "1"],
        ["--model.scheduler", "plateau"],
        ["--model.scheduler", "onecycle"],
    ],
)
def test_batch_find_works_with_warmup_and_every_kind_of_schedule(tmp_path, capsys, schedule):
    # The timed steps build the recipe's schedule as the real fit does: a warmup sized by the
    # recipe's epochs, plateau reading validation, one-cycle's total steps.
    assert _code("batch-find", "--config", DIGITS, "--max_trials", "4", *schedule) == 0
    out = capsys.readouterr().out
    sizes = [int(r.split()[0]) for r in out.splitlines() if r.strip() and r.split()[0].isdigit()]
    assert sizes == [2, 4, 8, 16] and "largest batch that fits: 16 " in out, out


def test_batch_find_stops_at_the_largest_batch_the_recipe_can_train(tmp_path, capsys):
    # 30 epochs of the 1,150-sample split: batch 256 trains 5 × 30 = 150 steps, batch 512
    # only 3 × 30 = 90, fewer than the warmup's 100.
    recipe = yaml.safe_load(Path(DIGITS).read_text())
    epochs = recipe["trainer"]["max_epochs"]
    assert (
        _code(
            "batch-find",
            "--config",
            DIGITS,
            "--max_trials",
            "11",
            "--model.scheduler",
            "cosine",
            "--model.scheduler_kwargs.warmup_steps",
            "100",
            "--export",
            "b.yaml",
        )
        == 0
    )
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("largest batch that fits"))
    assert line.startswith(
        "largest batch that fits: 256 (the recipe cannot train at batch 512: "
        f"warmup of 100 steps is not shorter than training ({3 * epochs} "
        f"steps: {epochs} epochs of 3)"
    ), line
    sizes = [int(r.split()[0]) for r in out.splitlines() if r.strip() and r.split()[0].isdigit()]
    assert max(sizes) == 256
    assert yaml.safe_load(Path("b.yaml").read_text())["data"]["init_args"]["batch_size"] == 256

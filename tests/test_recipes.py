"""Every recipe parses, and fits a few steps on a synthetic stand-in of its dataset's shape.

New recipes are picked up with no test edit. The real datasets need a download, which CI
cannot do; the stand-in keeps the recipe's network, optimizer, schedule and batch size.
"""

from __future__ import annotations

import json

import pytest
import yaml

from lit_optim import DATASETS
from lit_optim.cli.main import main
from support import ROOT

RECIPES = sorted((ROOT / "recipes").glob("*/*.yaml"))
FIT_RECIPES = [p for p in RECIPES if p.name != "search.yaml"]


def test_the_expected_recipes_exist():
    names = {str(p.relative_to(ROOT / "recipes")) for p in FIT_RECIPES}
    assert {
        "digits/mlp.yaml",
        "mnist/mlp.yaml",
        "mnist/cnn.yaml",
        "fashion_mnist/cnn.yaml",
        "cifar10/cnn.yaml",
        "mnist1d/logreg.yaml",
        "mnist1d/mlp.yaml",
        "mnist1d/cnn.yaml",
        "mnist1d/gru.yaml",
    } <= names


@pytest.mark.parametrize("path", FIT_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_opens_with_its_command_and_expectations(path):
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# lit-optim fit --config recipes/")
    assert f"recipes/{path.parent.name}/{path.name}" in first
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "val_acc" in header and "CPU" in header and "GPU" in header
    recipe = yaml.safe_load(text)
    assert recipe["data"]["dataset"] == path.parent.name


@pytest.mark.parametrize("path", FIT_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_fits_on_a_synthetic_stand_in(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-optim"])
    recipe = yaml.safe_load(path.read_text())
    shape = DATASETS.get(recipe["data"]["dataset"]).input_shape
    stand_in = {"input_shape": list(shape), "num_samples": 96, "num_test_samples": 16}
    main(
        [
            "fit",
            "--config",
            str(path),
            "--data.dataset",
            "synthetic",
            "--data.dataset_kwargs",
            json.dumps(stand_in),
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "2",
            "--trainer.limit_val_batches",
            "1",
            "--trainer.accelerator",
            "cpu",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.logger",
            "CSVLogger",
            "--trainer.logger.save_dir",
            str(tmp_path),
        ]
    )
    rows = (tmp_path / "lightning_logs").rglob("metrics.csv")
    text = next(rows).read_text()
    assert "val_acc" in text and "nan" not in text.lower()

"""Shared fixtures: tiny, deterministic, CPU-only runs with a real Lightning Trainer."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import yaml

# Lightning's advice for DataLoaders (workers) and cloud add-ons does not apply here.
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*Tip:.*")


@pytest.fixture
def trainer_kwargs(tmp_path):
    """Keyword arguments for a quick CPU Trainer that writes only under tmp_path."""
    return dict(
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )


@pytest.fixture
def make_trainer(trainer_kwargs):
    def make(**overrides) -> L.Trainer:
        return L.Trainer(**{**trainer_kwargs, **overrides})

    return make


@pytest.fixture
def tune_dir(tmp_path, monkeypatch):
    """cd into tmp_path holding recipe.yaml: the digits recipe, 2 epochs, a 32-unit MLP."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-tune"])  # pytest's own arguments are not ours
    root = Path(__file__).resolve().parents[1]  # tests/ -> the repository
    recipe = yaml.safe_load((root / "recipes" / "digits" / "mlp.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 2
    recipe["model"]["network_kwargs"] = {"hidden_dims": [32]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return tmp_path

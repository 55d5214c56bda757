"""Shared fixtures: tiny, deterministic, CPU-only runs with a real Lightning Trainer."""

from __future__ import annotations

import warnings

import lightning as L
import pytest

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

"""Kill at an epoch end, resume from last.ckpt: the same weights as the run never stopped, for
every kind of schedule (float64, digits, through `lit-optim fit`). Lightning saves the
epoch-end checkpoint before it steps the epoch's schedulers and makes every owed step on
resume but plateau's; `PlateauResume` (a default callback of the CLI) makes that one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lit_optim.cli.main import main as lit_optim
from support import ROOT

CRASH = '''
from lightning.pytorch.callbacks import Callback


class Crash(Exception):
    pass


class CrashAt(Callback):
    """Dies when epoch ``epoch`` starts: after the last epoch's checkpoint, as a kill would."""

    def __init__(self, epoch: int = 3):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise Crash(f"killed at the start of epoch {self.epoch}")
'''

SCHEDULES = {
    "step": {"scheduler": "step", "scheduler_kwargs": {"step_size": 1, "gamma": 0.7}},
    "cosine": {"scheduler": "cosine"},
    "cyclic": {"scheduler": "cyclic"},
    "onecycle": {"scheduler": "onecycle"},
    # threshold 0.5: an epoch must improve val_loss by half, so the lr halves every epoch
    "plateau": {
        "scheduler": "plateau",
        "scheduler_kwargs": {"patience": 0, "factor": 0.5, "threshold": 0.5},
    },
    "warmup+plateau": {
        "scheduler": "plateau",
        "scheduler_kwargs": {"patience": 0, "factor": 0.5, "threshold": 0.5, "warmup_epochs": 2},
    },
    "warmup+cosine": {"scheduler": "cosine", "scheduler_kwargs": {"warmup_epochs": 2}},
}
# The health callbacks carry state across the resume too: the guard's snapshot and loss
# statistics, the adaptive clipper's history of gradient norms.
HEALTH = [
    {
        "class_path": "lit_optim.callbacks.NonFiniteGuard",
        "init_args": {"action": "rollback", "loss_spike_factor": 50},
    },
    {
        "class_path": "lit_optim.callbacks.GradientClipper",
        "init_args": {"mode": "adaptive", "percentile": 50},
    },
]


def _recipe(folder: Path, schedule: dict, crash: bool, health: bool = False) -> Path:
    recipe = yaml.safe_load((ROOT / "recipes" / "digits" / "mlp.yaml").read_text())
    recipe["trainer"].update(
        max_epochs=6,
        precision="64-true",
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(folder),
    )
    recipe["trainer"]["callbacks"] = (HEALTH if health else []) + (
        [{"class_path": "crash.CrashAt"}] if crash else []
    )
    recipe["model"].update(optimizer="sgd", lr=0.5, **schedule)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _final_weights(folder: Path) -> dict[str, torch.Tensor]:
    (last,) = folder.rglob("last.ckpt")
    return torch.load(last, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize(("name", "health"), [*((n, False) for n in SCHEDULES), ("plateau", True)])
def test_kill_at_an_epoch_end_and_resume_equals_the_uninterrupted_run(
    tmp_path, monkeypatch, name, health
):
    (tmp_path / "crash.py").write_text(CRASH)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-optim"])
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    lit_optim(["fit", "--config", str(_recipe(whole, SCHEDULES[name], crash=False, health=health))])
    import crash

    with pytest.raises(crash.Crash):
        lit_optim(
            ["fit", "--config", str(_recipe(killed, SCHEDULES[name], crash=True, health=health))]
        )
    (last,) = killed.rglob("last.ckpt")
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 2  # epochs 0-2
    lit_optim(
        [
            "fit",
            "--config",
            str(_recipe(killed, SCHEDULES[name], crash=False, health=health)),
            "--ckpt_path",
            str(last),
        ]
    )
    expected = _final_weights(whole)
    resumed = {
        k: v
        for k, v in torch.load(
            max(killed.rglob("last*.ckpt"), key=lambda p: p.stat().st_mtime),
            map_location="cpu",
            weights_only=True,
        )["state_dict"].items()
    }
    assert expected.keys() == resumed.keys()
    for key in expected:
        assert expected[key].dtype == torch.float64
        assert torch.equal(expected[key], resumed[key]), (
            name,
            key,
            (expected[key] - resumed[key]).abs().max(),
        )

"""`lit-optim fit` under real DDP: two gloo processes on CPU, launched by Lightning from the
command line as a user would (`--trainer.strategy ddp --trainer.devices 2`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT

RECIPE = ROOT / "recipes" / "digits" / "mlp.yaml"

# What each rank saw, written by the rank itself: per epoch val_loss (what it logged, so what
# its plateau and checkpoint read) and the lr its optimizer had at the next epoch's start.
RECORDER = '''
import json, os
import lightning as L
import torch
from lit_optim import ClassificationTask


class Record(L.Callback):
    def __init__(self, out: str = "record"):
        self.out, self.val, self.lr = out, [], []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.val.append(float(trainer.callback_metrics["val_loss"]))

    def on_train_epoch_start(self, trainer, pl_module):
        self.lr.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_fit_end(self, trainer, pl_module):
        guard = next(
            (cb for cb in trainer.callbacks if type(cb).__name__ == "NonFiniteGuard"), None
        )
        weights = torch.cat([p.detach().flatten().double() for p in pl_module.parameters()])
        with open(f"{self.out}.{trainer.global_rank}.json", "w") as f:
            json.dump({"val": self.val, "lr": self.lr, "steps": trainer.global_step,
                       "train": [float(trainer.callback_metrics[k])
                                 for k in ("train_loss", "train_acc")],
                       "skipped": guard.skipped if guard else None,
                       "weights": weights.tolist()}, f)


class NaNOnRankOne(ClassificationTask):
    """A NaN loss value on rank 1 only, at optimizer step 3, with finite gradients (a NaN
    constant added): the gradient all-reduce carries nothing bad to rank 0, so only rank 1's
    guard sees it unless the guards share their decision."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.trainer.global_rank == 1 and self.trainer.global_step == 3:
            loss = loss + torch.full((), float("nan"), device=loss.device)
        return loss
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "ddp_record.py").write_text(RECORDER)
    return tmp_path


def _fit(cwd: Path, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {
        "PYTHONPATH": str(cwd),
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "HOME": str(cwd),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lit_optim.cli.main",
            "fit",
            "--config",
            str(RECIPE),
            "--trainer.accelerator",
            "cpu",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.callbacks+=ddp_record.Record",
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _records(cwd: Path, ranks: int = 2) -> list[dict]:
    return [json.loads((cwd / f"record.{r}.json").read_text()) for r in range(ranks)]


def test_uneven_shards_finish_and_every_rank_logs_and_decides_alike(project):
    # val_fraction 0.2867: 1,025 training rows, 513 + 512 per rank; unpadded that is 5
    # batches of 128 on rank 0 and 4 on rank 1, and rank 0 waits forever in its 5th
    # all-reduce. Plateau with patience 0 acts on val_loss every epoch it does not improve.
    run = _fit(
        project,
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--data.val_fraction",
        "0.2867",
        "--trainer.max_epochs",
        "6",
        "--model=ddp_record.NaNOnRankOne",
        "--model.scheduler",
        "plateau",
        "--model.scheduler_kwargs",
        '{"patience": 0, "factor": 0.5}',
        "--model.lr",
        "0.02",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    zero, one = _records(project)
    assert zero["steps"] == one["steps"] == 6 * 5
    assert zero["val"] == one["val"] and len(zero["val"]) == 6  # the reduced value, on both
    assert zero["lr"] == one["lr"] and min(zero["lr"]) < zero["lr"][0]  # plateau acted alike
    # The recipe's NonFiniteGuard (rollback) acted on rank 1's NaN on both ranks alike.
    assert "rolled back to the weights of step" in run.stderr
    assert zero["weights"] == one["weights"]
    assert "fit finished: 6 epochs" in run.stdout


def test_ddp_logs_what_one_process_logs_at_the_same_global_batch(project):
    # 1,024 training rows (val_fraction 0.2874 of 1,437) and 413 validation rows: 2 ranks ×
    # 64 see exactly the batches one process sees with 128, and the gradient all-reduce
    # averages two equal halves. float64, so the only difference is summation order.
    common = (
        "--data.val_fraction",
        "0.2874",
        "--trainer.max_epochs",
        "1",
        "--trainer.precision",
        "64-true",
    )
    ddp = _fit(
        project,
        *common,
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--data.batch_size",
        "64",
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    zero, one = _records(project)
    (project / "record.0.json").rename(project / "ddp.json")
    single = _fit(project, *common, "--trainer.devices", "1", "--data.batch_size", "128")
    assert single.returncode == 0, single.stderr[-3000:]
    (alone,) = _records(project, ranks=1)
    assert zero["steps"] == alone["steps"] == 8
    assert zero["val"] == one["val"]
    assert zero["val"] == pytest.approx(alone["val"], rel=1e-10)
    # the training epoch's loss and accuracy: summed over both ranks' samples
    assert zero["train"] == one["train"]
    assert zero["train"] == pytest.approx(alone["train"], rel=1e-10)
    assert zero["weights"] == pytest.approx(alone["weights"], rel=1e-8, abs=1e-12)

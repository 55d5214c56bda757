"""The objective: a metric's direction is declared (by the user, by the torchmetrics Metric
logged under it, or by a standard name), never guessed from its name.

The module here is a user's, written in this file: it logs a torchmetrics accuracy as
``valid/top1`` (no "acc" in the name) and a loss as ``valid/nll`` (no "loss"), with scripted
per-epoch values, so that ranking either way gives a different answer."""

from __future__ import annotations

import re

import pytest
import torch

from lit_optim.catalog.objective import (
    STANDARD_DIRECTIONS,
    DirectionError,
    logged_directions,
    metric_direction,
    parse_direction,
    resolve_objective,
)
from lit_optim.cli.main import main as lit_optim
from tuning.cli import main as lit_tune

# valid/top1 peaks at epoch 2 of 4 (1-based); valid/nll bottoms out at epoch 3. Ranked the
# wrong way, top1's best would be epoch 1 and nll's epoch 2.
TOP1 = [0.50, 0.90, 0.70, 0.60]
NLL = [0.30, 0.40, 0.10, 0.20]

USER_MODULE = f'''
import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric

from lit_optim import create_optimizer, create_scheduler

TOP1 = {TOP1!r}
NLL = {NLL!r}


class ScriptedTop1(Metric):
    """Stands in for an accuracy: declares higher_is_better, returns the epoch's script."""
    higher_is_better = True
    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("epoch", default=torch.tensor(0), dist_reduce_fx="max")

    offset = 0.0

    def update(self, epoch):
        self.epoch = torch.tensor(epoch)

    def compute(self):
        return torch.tensor(TOP1[int(self.epoch)] + self.offset)


class Blobs(L.LightningDataModule):
    def __init__(self, batch_size: int = 16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long()

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size)


class Scripted(L.LightningModule):
    def __init__(
        self,
        lr: float = 0.1,
        scheduler: str = "constant",
        plateau_mode: str | None = None,
        monitor: str = "valid/top1",
        offset: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        self.top1 = ScriptedTop1()
        self.top1.offset = offset  # what a trial's hyperparameter changes in its score
        self.lrs = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/nll", loss, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_start(self):
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])

    def validation_step(self, batch, batch_idx):
        epoch = 0 if self.trainer.sanity_checking else self.current_epoch
        self.top1.update(epoch)
        self.log("valid/top1", self.top1, on_epoch=True)
        self.log("valid/nll", torch.tensor(NLL[epoch] + self.hparams.offset), on_epoch=True)

    def configure_optimizers(self):
        opt = create_optimizer(self, "sgd", lr=self.hparams.lr)
        kwargs = dict(patience=0, factor=0.5) if self.hparams.scheduler == "plateau" else {{}}
        if self.hparams.plateau_mode:
            kwargs["mode"] = self.hparams.plateau_mode
        sched = create_scheduler(self.hparams.scheduler, opt, self.trainer,
                                 monitor=self.hparams.monitor, **kwargs)
        return {{"optimizer": opt, "lr_scheduler": sched}}

    def on_fit_end(self):
        import json
        json.dump({{"lrs": self.lrs}}, open("lrs.json", "w"))
'''


@pytest.fixture
def user_project(tmp_path, monkeypatch):
    (tmp_path / "user_module.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("sys.argv", ["lit-optim"])
    return tmp_path


def _fit(*args: str, epochs: int = 4) -> None:
    lit_optim(
        [
            "fit",
            "--model",
            "user_module.Scripted",
            "--data",
            "user_module.Blobs",
            "--trainer.max_epochs",
            str(epochs),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
            "--trainer.logger",
            "false",
            "--trainer.accelerator",
            "cpu",
            "--seed_everything",
            "0",
            *args,
        ]
    )


def _summary_line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(name + " "))


# -- the resolution order, on its own ------------------------------------------------------


def test_given_beats_logged_beats_table_and_nothing_is_guessed():
    assert resolve_objective("valid/top1", "maximize").direction == "max"
    assert resolve_objective("valid/top1", logged="max").source == "the Metric it is logged with"
    assert resolve_objective("val_loss").direction == "min"
    assert resolve_objective("val_acc").direction == "max"
    assert resolve_objective("val_loss").study_direction == "minimize"
    # Names that a substring guess would have ranked (and got wrong for top1) stay unknown.
    for name in ("valid/top1", "my_accuracy", "val_acc_top5", "f1"):
        assert resolve_objective(name, required=False) is None
        with pytest.raises(DirectionError, match=re.escape(repr(name)) + ".*declare it"):
            resolve_objective(name)


def test_a_declared_direction_that_contradicts_the_metric_is_an_error():
    with pytest.raises(DirectionError, match="says min for 'valid/top1'.*higher is better"):
        resolve_objective("valid/top1", "min", logged="max", logged_by="ScriptedTop1")
    assert resolve_objective("valid/top1", "max", logged="max").direction == "max"


@pytest.mark.parametrize("bad", ["up", "", None, 1, "MAXIMISE"])
def test_a_direction_that_is_not_min_or_max_names_the_option(bad):
    with pytest.raises(DirectionError, match="objective.direction must be min or max"):
        parse_direction(bad, "objective.direction")


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("val/loss", "min"),
        ("val/acc", "max"),
        ("train/loss", "min"),
        ("train/acc", "max"),
        ("test/loss", "min"),
        ("test/acc", "max"),
        ("valid_loss", "min"),
        ("valid/acc", "max"),
        ("validation/accuracy", "max"),
        ("val_accuracy", "max"),
        ("train/loss_step", "min"),
        ("train_loss_epoch", "min"),
        ("val_acc_epoch", "max"),
        ("loss", "min"),
    ],
)
def test_conventional_names_rank_by_their_one_meaning(name, direction):
    """Lightning's templates log ``val/loss``; a user should not have to declare it."""
    assert resolve_objective(name, None, given_as="x").direction == direction


@pytest.mark.parametrize(
    "name",
    [
        "valid/top1",
        "val_error",
        "val/f1",
        "my_val_loss",
        "val/loss/2",
        "Val_Loss",
        "accuracy",
        "val-loss",
        "val_nll",
    ],
)
def test_the_standard_table_holds_exact_names_only(name):
    assert name not in STANDARD_DIRECTIONS
    with pytest.raises(DirectionError, match="is not known"):
        resolve_objective(name, None, given_as="x")


def test_metric_direction_reads_torchmetrics_declarations():
    from torchmetrics import MeanMetric, MeanSquaredError
    from torchmetrics.classification import MulticlassAccuracy

    assert metric_direction(MulticlassAccuracy(num_classes=3)) == "max"
    assert metric_direction(MeanSquaredError()) == "min"
    assert metric_direction(MeanMetric()) is None  # declares nothing
    assert metric_direction(torch.tensor(0.5)) is None


def test_logged_directions_are_per_instance_and_tell_whoever_waits():
    import lightning as L
    from torchmetrics.classification import MulticlassAccuracy

    class M(L.LightningModule):
        pass

    module, other = M(), M()
    directions = logged_directions(module)
    assert logged_directions(module) is directions
    heard = []
    directions.when_logged("valid/top1", lambda d, described: heard.append((d, described)))
    for name, value in {
        "valid/top1": MulticlassAccuracy(num_classes=2),
        "valid/nll": torch.tensor(1.0),
    }.items():
        directions.record(name, value)  # what module.log does first
    assert heard == [("max", "MulticlassAccuracy.higher_is_better")]
    assert directions.seen == {"valid/top1": "max", "valid/nll": None}
    assert "log" in module.__dict__ and "log" not in other.__dict__


# -- through lit-optim fit, with the user's module ------------------------------------------


def test_fit_summary_ranks_the_users_metrics_by_their_declared_direction(user_project, capsys):
    _fit()
    out = capsys.readouterr().out
    assert "best 0.9000 (epoch 2)" in _summary_line(out, "valid/top1")  # a Metric: max
    nll = _summary_line(out, "valid/nll")  # a plain tensor: no direction, so no best
    assert "best" not in nll and "lowest 0.1000 (epoch 3), highest 0.4000 (epoch 2)" in nll


def test_fit_objective_keeps_the_best_checkpoint_by_the_metric_direction(user_project, capsys):
    _fit("--objective.metric", "valid/top1")
    out = capsys.readouterr().out
    line = _summary_line(out, "valid/top1")
    assert "best 0.9000 (epoch 2)" in line and "objective, max" in line
    checkpoint = re.search(r"^checkpoint: (\S+)", out, re.MULTILINE).group(1)
    assert "epoch=1-" in checkpoint  # 0-based epoch 1: the peak
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1


def test_fit_objective_with_a_given_direction(user_project, capsys):
    _fit("--objective.metric", "valid/nll", "--objective.direction", "min")
    out = capsys.readouterr().out
    assert "best 0.1000 (epoch 3)" in _summary_line(out, "valid/nll")
    assert "epoch=2-" in re.search(r"^checkpoint: (\S+)", out, re.MULTILINE).group(1)


def _lrs(project) -> list[float]:
    import json

    return json.loads((project / "lrs.json").read_text())["lrs"]


def test_plateau_takes_its_mode_from_the_logged_metric(user_project):
    # max (the Metric's): improves at epoch 2, worsens at 3 -> the cut lands before epoch 4.
    _fit("--model.scheduler", "plateau")
    assert _lrs(user_project) == pytest.approx([0.1, 0.1, 0.1, 0.05])


def test_plateau_with_a_given_mode_on_a_plain_tensor(user_project):
    # min on nll [0.3, 0.4, 0.1, 0.2]: worse at 2 (cut), better at 3, worse at 4.
    _fit(
        "--model.scheduler",
        "plateau",
        "--model.monitor",
        "valid/nll",
        "--model.plateau_mode",
        "min",
    )
    assert _lrs(user_project) == pytest.approx([0.1, 0.1, 0.05, 0.05])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # no direction anywhere: plateau on a plain tensor
        (
            ["--model.scheduler", "plateau", "--model.monitor", "valid/nll"],
            r"scheduler 'plateau' monitors 'valid/nll' \(logged as a Tensor, which declares no "
            r"direction\): give it a mode, min or max: create_scheduler\(..., mode='min'\) where "
            r"your module builds its schedule",
        ),
        # no direction anywhere: the objective is a plain tensor
        (["--objective.metric", "valid/nll"], r"objective.direction"),
        # a direction that contradicts the Metric
        (
            ["--objective.metric", "valid/top1", "--objective.direction", "min"],
            r"says min for 'valid/top1', but ScriptedTop1.higher_is_better says higher is better",
        ),
        (
            ["--model.scheduler", "plateau", "--model.plateau_mode", "min"],
            r"scheduler 'plateau': mode says min for 'valid/top1'",
        ),
        # Lightning's default mode (min) on the user's accuracy
        (
            ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor", "valid/top1"],
            r"ModelCheckpoint\(monitor='valid/top1'\)'s mode says min",
        ),
        (
            ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "valid/top1"],
            r"EarlyStopping\(monitor='valid/top1'\)'s mode says min",
        ),
        (
            ["--objective.metric", "valid/top1", "--objective.direction", "up"],
            r"objective.direction",
        ),
    ],
)
def test_no_or_contradicting_direction_is_one_line_and_exit_2_before_training(
    user_project, capsys, args, message
):
    with pytest.raises(SystemExit) as exit_:
        _fit(*args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("lit-optim: error:")]
    assert len(lines) == 1 and re.search(message, lines[0]), err
    assert "Traceback" not in err
    assert not (user_project / "lrs.json").exists()  # no epoch finished


# -- through lit-tune: the study's direction ------------------------------------------------


def _tune(project, space: dict, *args: str) -> None:
    import yaml

    (project / "recipe.yaml").write_text(
        yaml.safe_dump(
            {
                "model": {"class_path": "user_module.Scripted"},
                "data": {"class_path": "user_module.Blobs"},
                "trainer": {"max_epochs": 3},
            }
        )
    )
    (project / "space.yaml").write_text(yaml.safe_dump(space))
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "s",
            "--sampler",
            "grid",
            "--pruner",
            "none",
            "--accelerator",
            "cpu",
            *args,
        ]
    )


def _study():
    import optuna

    return optuna.load_study(study_name="s", storage="sqlite:///runs/s/study.db")


OFFSETS = {"model.offset": [0.0, 0.05, 0.02]}


def test_lit_tune_takes_the_direction_from_the_logged_metric(user_project, capsys):
    import optuna

    _tune(user_project, {"metric": "valid/top1", "params": OFFSETS}, "--n-trials", "3")
    study = _study()
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.best_params == {"model.offset": 0.05}
    assert study.best_value == pytest.approx(TOP1[2] + 0.05)


def test_lit_tune_takes_a_written_direction_for_a_plain_tensor(user_project):
    import optuna

    _tune(
        user_project,
        {"metric": "valid/nll", "direction": "min", "params": OFFSETS},
        "--n-trials",
        "3",
    )
    study = _study()
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.best_params == {"model.offset": 0.0}


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"metric": "valid/nll"},
            r"metric 'valid/nll' \(logged as a Tensor, which declares no "
            r"direction\): add direction: maximize or minimize",
        ),
        (
            {"metric": "valid/top5"},
            r"metric 'valid/top5' is never logged by Scripted; it logs: "
            r"train/nll, valid/nll, valid/top1; did you mean 'valid/top1'",
        ),
        (
            {"metric": "valid/top1", "direction": "upward"},
            r"space.yaml: direction must be min or max",
        ),
    ],
)
def test_lit_tune_refuses_an_unknown_direction_before_any_study(
    user_project, capsys, space, message
):
    with pytest.raises(SystemExit) as exit_:
        _tune(user_project, {**space, "params": OFFSETS}, "--n-trials", "3")
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert re.search(message, err) and "Traceback" not in err, err
    assert not (user_project / "runs" / "s" / "study.db").exists()


def test_lit_tune_stops_when_the_metric_ranks_the_other_way(user_project, capsys):
    with pytest.raises(SystemExit) as exit_:
        _tune(
            user_project,
            {"metric": "valid/top1", "direction": "minimize", "params": OFFSETS},
            "--n-trials",
            "3",
            "--population",
            "1",
        )
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert (
        "says min for 'valid/top1', but ScriptedTop1.higher_is_better says higher is better" in err
    )
    assert len(_study().trials) == 1  # the first trial's first log stopped it

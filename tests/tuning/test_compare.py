"""lit-tune compare: the report's numbers come from the studies and seed runs, and an
interrupted comparison resumes."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna
import pytest
import yaml

from tuning.cli import main


@pytest.fixture
def workdir(tune_dir):
    return tune_dir


def _compare(*args):
    main(
        [
            "compare",
            "--recipe",
            "recipe.yaml",
            "--budget",
            "2",
            "--seeds",
            "2",
            "--target",
            "0.5",
            *args,
        ]
    )


def test_report_numbers_match_the_studies_and_seed_runs(workdir, capsys):
    _compare("--optimizers", "momentum,adam")
    out = Path("runs/compare")
    for name in (
        "report.md",
        "learning_curves.png",
        "learning_curves.html",
        "lr_sensitivity.png",
        "lr_sensitivity.html",
        "results.json",
    ):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    storage = f"sqlite:///{out / 'studies.db'}"
    report = (out / "report.md").read_text()
    for label in ("momentum", "adam"):
        entry = results["entries"][label]
        study = optuna.load_study(study_name=label, storage=storage)
        assert len(study.trials) == 2
        assert entry["best_params"] == study.best_params
        assert entry["best_trial_value"] == study.best_value
        seed_files = sorted((out / label).glob("tuned_seed*/result.json"))
        assert len(seed_files) == 2
        accs = [json.loads(f.read_text())["test_metrics"]["test_acc"] for f in seed_files]
        assert entry["tuned"]["test"]["mean"] == pytest.approx(statistics.fmean(accs))
        assert entry["tuned"]["test"]["std"] == pytest.approx(statistics.stdev(accs))
        mean, std = entry["tuned"]["test"]["mean"], entry["tuned"]["test"]["std"]
        assert f"| {label} | " in report and f"{mean:.4f} ± {std:.4f}" in report
        # The retrained best really used the best trial's lr.
        tuned = yaml.safe_load((out / label / "tuned_seed0" / "recipe.yaml").read_text())
        assert tuned["model"]["lr"] == study.best_params["model.lr"]
        assert tuned["model"]["optimizer"] == label
    means = {k: v["tuned"]["test"]["mean"] for k, v in results["entries"].items()}
    assert results["ranking"] == sorted(means, key=lambda k: -means[k])
    assert (results["metric"], results["direction"], results["rank_metric"]) == (
        "val_acc",
        "max",
        "test_acc",
    )
    assert "Ranking by mean test_acc (higher is better)" in report
    # lit-tune studies lists what compare made, beside what run makes
    capsys.readouterr()
    main(["studies"])
    listed = capsys.readouterr().out.splitlines()
    for label in ("momentum", "adam"):
        assert any(
            line.startswith(f"study {label}:") and "studies.db" in line for line in listed
        ), listed


def test_compare_resumes_without_redoing_finished_work(workdir):
    _compare("--optimizers", "sgd")
    out = Path("runs/compare")
    stamp = (out / "sgd" / "tuned_seed1" / "result.json").stat().st_mtime_ns
    first = json.loads((out / "results.json").read_text())
    _compare("--optimizers", "sgd")
    study = optuna.load_study(study_name="sgd", storage=f"sqlite:///{out / 'studies.db'}")
    assert len(study.trials) == 2  # no new trials
    assert (out / "sgd" / "tuned_seed1" / "result.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["entries"] == first["entries"]


def test_schedules_for_one_optimizer(workdir):
    _compare("--optimizers", "sgd", "--schedulers", "constant,cosine", "--seeds", "1")
    results = json.loads(Path("runs/compare/results.json").read_text())
    assert set(results["entries"]) == {"sgd+constant", "sgd+cosine"}
    cosine = yaml.safe_load(Path("runs/compare/sgd_cosine/tuned_seed0/recipe.yaml").read_text())
    assert cosine["model"]["scheduler"] == "cosine"


def test_each_optimizer_is_tuned_as_itself():
    """Plain SGD keeps momentum 0: tuning its momentum would make it the momentum entry again
    (a comparison once ranked sgd and momentum with the same best params and test_acc)."""
    from lit_optim import Objective
    from tuning.reports.compare import optimizer_space

    objective = Objective("val_acc", "max", "standard name")
    takes = {"optimizer", "lr", "weight_decay", "optimizer_kwargs"}
    momentum = "model.optimizer_kwargs.momentum"
    spaces = {
        name: optimizer_space(name, objective, takes)["params"]
        for name in ("sgd", "momentum", "nesterov", "rmsprop", "adam")
    }
    assert {name for name, params in spaces.items() if momentum in params} == {
        "momentum",
        "nesterov",
    }
    assert all("model.lr" in params for params in spaces.values())
    assert momentum not in optimizer_space("momentum", objective, {"optimizer", "lr"})["params"]


def test_recipe_overrides_reach_every_trial_and_seed_run(workdir):
    """``--trainer.max_epochs 1`` as ``lit-tune run`` takes it; the report says it was given."""
    _compare(
        "--optimizers",
        "adam",
        "--seeds",
        "1",
        "--trainer.max_epochs",
        "1",
        "--model.network_kwargs.hidden_dims",
        "[8]",
    )
    out = Path("runs/compare")
    for run in ("tuned_seed0", "defaults_seed0"):
        recipe = yaml.safe_load((out / "adam" / run / "recipe.yaml").read_text())
        assert recipe["trainer"]["max_epochs"] == 1
        assert recipe["model"]["network_kwargs"]["hidden_dims"] == [8]
        assert (
            len(json.loads((out / "adam" / run / "result.json").read_text())["metric_epochs"]) == 1
        )
    study = optuna.load_study(study_name="adam", storage=f"sqlite:///{out / 'studies.db'}")
    assert all(len(t.intermediate_values) == 1 for t in study.trials)
    assert (
        "with `--trainer.max_epochs 1 --model.network_kwargs.hidden_dims [8]`"
        in (out / "report.md").read_text()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizers", "sgd,adamm"], "unknown optimizer 'adamm'"),
        (["--optimizers", "sgd", "--trainer.max_epocs", "2"], "max_epocs"),
        (["--optimizers", "sgd", "--budget", "0"], "budget must be an integer >= 1"),
        (["--optimizers", "sgd", "--seeds", "0"], "seeds must be an integer >= 1"),
        (["--optimizers", "sgd", "--target", "nan"], r"--target must be a finite number"),
        (
            ["--optimizers", "sgd", "--direction", "up"],
            r"argument --direction: invalid choice: 'up'",
        ),
        (["--optimizers", "sgd", "--schedulers", "cosin"], "unknown scheduler 'cosin'"),
        (
            ["--optimizers", "sgd", "--population", "0"],
            "--population: must be auto or an integer >= 1",
        ),
    ],
)
def test_bad_compare_arguments_fail_before_any_training(workdir, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--recipe", "recipe.yaml", *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    import re

    assert re.search(message, err)
    assert not Path("runs/compare").exists()


def test_each_optimizer_s_trials_train_as_one_population(workdir):
    _compare("--optimizers", "momentum,adam", "--seeds", "1", "--population", "2")
    out = Path("runs/compare")
    results = json.loads((out / "results.json").read_text())
    for label in ("momentum", "adam"):
        study = optuna.load_study(study_name=label, storage=f"sqlite:///{out / 'studies.db'}")
        assert (
            len(study.trials) == 2 and results["entries"][label]["best_params"] == study.best_params
        )
        assert len({t.params["model.lr"] for t in study.trials}) == 2
        header = (out / label / "trials" / "trial_0" / "recipe.yaml").read_text().splitlines()[0]
        assert "population of 2" in header


def test_convex_plots_against_the_bounds(workdir):
    _compare("--optimizers", "adam", "--seeds", "1", "--convex", "quadratic,logreg")
    out = Path("runs/compare")
    for problem in ("quadratic", "logreg"):
        assert (out / f"convex_{problem}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"convex_{problem}.png" in (out / "report.md").read_text()


def test_a_rerun_with_another_recipe_never_returns_the_old_numbers(workdir, capsys):
    _compare("--optimizers", "sgd", "--budget", "1", "--seeds", "1")
    recipe = yaml.safe_load((workdir / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 1
    (workdir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(SystemExit) as info:
        _compare("--optimizers", "sgd", "--budget", "1", "--seeds", "1")
    err = capsys.readouterr().err
    assert info.value.code == 2 and "was made with another recipe" in err


def test_a_cached_seed_run_of_another_recipe_is_refused(tmp_path):
    from lit_optim import ConfigError, resolve_objective
    from tuning.reports.compare import Ranking, _seed_run

    (tmp_path / "result.json").write_text('{"final": 0.99, "recipe_sha256": "0" }')
    goal = Ranking(resolve_objective("val_acc"), "test_acc")
    with pytest.raises(ConfigError, match="holds a seed run of another recipe"):
        _seed_run({"model": {"lr": 0.1}}, tmp_path, 0, goal, 0.9)


# -- a user's module: its own metric names, a Metric that says its direction --------------

USER_MODULE = '''
import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from lit_optim import create_optimizer


class Blobs(L.LightningDataModule):
    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(192, 6, generator=g)
        self.y = (self.x[:, 0] + 0.5 * self.x[:, 1] > 0).long() + (self.x[:, 2] > 1).long()

    def loader(self, part):
        return DataLoader(TensorDataset(self.x[part], self.y[part]), batch_size=32)

    def train_dataloader(self):
        return self.loader(slice(0, 128))

    def val_dataloader(self):
        return self.loader(slice(128, 160))

    def test_dataloader(self):
        return self.loader(slice(160, 192))


class Mine(L.LightningModule):
    """Logs its accuracy as valid/top1 and test/top1 (no "acc"), its loss as train/nll."""

    def __init__(self, optimizer: str = "sgd", lr: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
        self.top1 = MulticlassAccuracy(num_classes=3, average="micro")
        self.test_top1 = MulticlassAccuracy(num_classes=3, average="micro")

    def training_step(self, batch, batch_idx):
        x, y = batch
        nll = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/nll", nll, on_step=False, on_epoch=True)
        return nll

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.top1(self.net(x), y)
        self.log("valid/top1", self.top1, on_epoch=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.test_top1(self.net(x), y)
        self.log("test/top1", self.test_top1, on_epoch=True)

    def configure_optimizers(self):
        return create_optimizer(self, self.hparams.optimizer, lr=self.hparams.lr)
'''


@pytest.fixture
def user_compare(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(USER_MODULE)
    (tmp_path / "recipe.yaml").write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,
                "trainer": {"max_epochs": 3, "accelerator": "cpu"},
                "model": {"class_path": "mine.Mine"},
                "data": {"class_path": "mine.Blobs"},
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("sys.argv", ["lit-tune"])
    return tmp_path


def _user_compare(*args):
    main(
        [
            "compare",
            "--recipe",
            "recipe.yaml",
            "--optimizers",
            "sgd,adam",
            "--budget",
            "3",
            "--seeds",
            "2",
            *args,
        ]
    )


def test_compare_ranks_a_user_module_by_the_direction_its_metric_declares(user_compare):
    _user_compare("--metric", "valid/top1")
    out = Path("runs/compare")
    results = json.loads((out / "results.json").read_text())
    assert (results["metric"], results["direction"], results["test_metric"]) == (
        "valid/top1",
        "max",
        "test/top1",
    )
    for label in ("sgd", "adam"):
        study = optuna.load_study(study_name=label, storage=f"sqlite:///{out / 'studies.db'}")
        assert study.direction == optuna.study.StudyDirection.MAXIMIZE
        values = [t.value for t in study.trials]
        assert len(values) == 3 and study.best_value == max(values)
        runs = [
            json.loads(f.read_text()) for f in sorted((out / label).glob("tuned_seed*/result.json"))
        ]
        # Each seed run's numbers are its own run's: the final epoch of the curve, the best of
        # it by the Metric's direction, and what its test step logged.
        for run in runs:
            curve = [v for _, v in run["metric_epochs"]]
            assert len(curve) == 3 and run["final"] == curve[-1] and run["best"] == max(curve)
            assert run["test"] == run["test_metrics"]["test/top1"]
            assert len(run["train_loss_steps"]) == 3 * 4  # 128 samples / 32 per batch, 3 epochs
        assert results["entries"][label]["tuned"]["test"]["mean"] == pytest.approx(
            statistics.fmean(r["test"] for r in runs)
        )
    means = {k: v["tuned"]["test"]["mean"] for k, v in results["entries"].items()}
    assert results["ranking"] == sorted(means, key=lambda k: -means[k])
    report = (out / "report.md").read_text()
    assert "Ranking by mean test/top1 (higher is better)" in report
    assert "| rank | optimizer | final valid/top1 | best valid/top1 | test/top1 |" in report


def test_compare_ranks_a_declared_lower_is_better_metric_lowest_first(user_compare):
    _user_compare("--metric", "train/nll", "--direction", "min", "--seeds", "1")
    out = Path("runs/compare")
    results = json.loads((out / "results.json").read_text())
    assert results["rank_metric"] == "train/nll" and results["test_metric"] is None
    for label in ("sgd", "adam"):
        study = optuna.load_study(study_name=label, storage=f"sqlite:///{out / 'studies.db'}")
        assert study.direction == optuna.study.StudyDirection.MINIMIZE
        assert study.best_value == min(t.value for t in study.trials)
        (run,) = [json.loads(f.read_text()) for f in (out / label).glob("tuned_seed*/result.json")]
        assert run["best"] == min(v for _, v in run["metric_epochs"])
    finals = {k: v["tuned"]["final"]["mean"] for k, v in results["entries"].items()}
    assert results["ranking"] == sorted(finals, key=lambda k: finals[k])
    assert "(lower is better)" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--metric", "train/nll"],
            r"--metric 'train/nll' \(logged as a Tensor, which declares no "
            r"direction\): give --direction max or --direction min",
        ),
        (
            ["--metric", "valid/top1", "--direction", "min"],
            r"--direction says min for 'valid/top1', but MulticlassAccuracy.higher_is_better says "
            r"higher is better",
        ),
        (
            ["--metric", "valid/top5"],
            r"--metric 'valid/top5' is never logged by Mine; it logs: "
            r"train/nll, valid/top1.*did you mean 'valid/top1'",
        ),
        (
            ["--metric", "valid/top1", "--test-metric", "test/top5"],
            r"--test-metric 'test/top5' is never logged by Mine's test step; it logs: test/top1",
        ),
        ([], r"--metric 'val_acc' is never logged by Mine"),
    ],
)
def test_compare_refuses_a_metric_it_cannot_rank_before_any_training(
    user_compare, capsys, args, message
):
    import re

    with pytest.raises(SystemExit) as info:
        _user_compare(*args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err, err
    assert re.search(message, err), err
    assert not Path("runs").exists()


def test_a_module_without_init_args_is_one_line_before_any_training(user_compare, capsys):
    """Such a module's recipe has no init_args at all: compare once ended on KeyError."""
    (user_compare / "fixed.py").write_text(
        "from mine import Mine\n\n\nclass Fixed(Mine):\n"
        "    def __init__(self):\n        super().__init__()\n"
    )
    (user_compare / "recipe.yaml").write_text(
        yaml.safe_dump(
            {
                "trainer": {"max_epochs": 1, "accelerator": "cpu"},
                "model": {"class_path": "fixed.Fixed"},
                "data": {"class_path": "mine.Blobs"},
            }
        )
    )
    with pytest.raises(SystemExit) as info:
        _user_compare()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err, err
    assert (
        "lit-tune compare sets model.optimizer, model.lr, but fixed.Fixed does not take "
        "optimizer, lr (it takes: nothing)" in err
    ), err
    assert not (user_compare / "runs").exists()

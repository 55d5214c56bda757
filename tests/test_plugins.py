"""Plugins from another installed package, through the entry-point groups: the example
package under tests/plugin_example passes the same contract tests as the built-ins."""

from __future__ import annotations

from pathlib import Path

import pytest

from lit_optim import DATASETS, MODELS, OPTIMIZERS, SCHEDULERS
from lit_optim.cli.main import main
from lit_optim.testing import (
    DatasetPluginContract,
    ModelPluginContract,
    OptimizerPluginContract,
    SchedulerPluginContract,
)
from support import ROOT

EXAMPLE = Path(__file__).parent / "plugin_example"


@pytest.fixture
def example_plugin(monkeypatch):
    """Install the example package (its folder holds a .dist-info) for one test."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for registry in (OPTIMIZERS, SCHEDULERS, MODELS, DATASETS):
        monkeypatch.setattr(registry, "_plugins_loaded", False)
    yield
    for registry, name in (
        (OPTIMIZERS, "signsgd"),
        (SCHEDULERS, "linear_decay"),
        (MODELS, "wide_linear"),
        (DATASETS, "xor"),
    ):
        registry.unregister(name, missing_ok=True)


@pytest.mark.usefixtures("example_plugin")
class TestExampleOptimizerPlugin(OptimizerPluginContract):
    name = "signsgd"


@pytest.mark.usefixtures("example_plugin")
class TestExampleSchedulerPlugin(SchedulerPluginContract):
    name = "linear_decay"


@pytest.mark.usefixtures("example_plugin")
class TestExampleModelPlugin(ModelPluginContract):
    name = "wide_linear"
    kwargs = {"width": 16}


@pytest.mark.usefixtures("example_plugin")
class TestExampleDatasetPlugin(DatasetPluginContract):
    name = "xor"


# The built-ins pass the same contract; new registry entries join with no test edit.
_BUILTIN_OPTIMIZERS = [n for n in OPTIMIZERS.names() if n != "signsgd"]


@pytest.mark.parametrize("name", _BUILTIN_OPTIMIZERS)
class TestBuiltinOptimizers(OptimizerPluginContract):
    @pytest.fixture(autouse=True)
    def _name(self, name):
        self.name = name


@pytest.mark.parametrize("name", [n for n in SCHEDULERS.names() if n != "linear_decay"])
class TestBuiltinSchedulers(SchedulerPluginContract):
    @pytest.fixture(autouse=True)
    def _name(self, name):
        self.name = name
        self.kwargs = {"milestones": [1]} if name == "multistep" else {}


def test_plugin_names_appear_in_the_catalogue(example_plugin, capsys):
    main(["list", "optimizers"])
    out = capsys.readouterr().out
    assert "signsgd" in out and "example plugin" in out


def test_plugin_optimizer_in_a_cli_fit(example_plugin, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-optim"])
    recipe = ROOT / "recipes" / "digits" / "mlp.yaml"
    main(
        [
            "fit",
            "--config",
            str(recipe),
            "--model.optimizer",
            "signsgd",
            "--model.lr",
            "0.001",
            "--model.scheduler",
            "linear_decay",
            "--trainer.max_epochs",
            "2",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    assert any(tmp_path.rglob("*.ckpt"))


def test_without_the_package_the_name_is_unknown():
    from lit_optim import UnknownNameError

    assert "signsgd" not in OPTIMIZERS
    with pytest.raises(UnknownNameError, match="unknown optimizer 'signsgd'"):
        OPTIMIZERS.get("signsgd")


# Shapes each built-in network is tested with (a new entry defaults to digits' 1×8×8).
_MODEL_SHAPES = {"cnn": (1, 8, 8), "mlp": (6,), "cnn1d": (1, 40), "gru": (2, 12)}


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n != "wide_linear"])
class TestBuiltinModels(ModelPluginContract):
    @pytest.fixture(autouse=True)
    def _name(self, name):
        self.name = name
        self.input_shape = _MODEL_SHAPES.get(name, (1, 8, 8))


# Datasets that need files get small ones written by the test (see test_data.py); the
# contract runs on those that load from memory, and on the torchvision ones where the test
# data writer can make their files.
@pytest.mark.parametrize(
    "name", [n for n in DATASETS.names() if n != "xor" and not DATASETS.get(n).downloads]
)
class TestBuiltinDatasets(DatasetPluginContract):
    @pytest.fixture(autouse=True)
    def _name(self, name):
        self.name = name
        self.kwargs = (
            {"num_samples": 96, "num_classes": 3, "num_features": 5} if name == "synthetic" else {}
        )


def test_example_model_and_dataset_in_a_cli_fit(example_plugin, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--model.network",
            "wide_linear",
            "--model.network_kwargs",
            '{"width": 8}',
            "--data.dataset",
            "xor",
            "--trainer.max_epochs",
            "2",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
        ]
    )
    assert any(tmp_path.rglob("*.ckpt"))

"""Contract tests a plugin package subclasses to test its own optimizer, scheduler, dataset or
model (network).

    # my_package/tests/test_lion.py
    from lit_optim.testing import OptimizerPluginContract

    class TestLion(OptimizerPluginContract):
        name = "lion"                      # as registered under lit_optim.optimizers
        kwargs = {"betas": (0.9, 0.99)}    # optional: kwargs to build it with

    class TestMyNet(ModelPluginContract):
        name = "resnet_tiny"
        kwargs = {"width": 8}
        input_shape = (3, 32, 32)          # what the net takes (default: digits' (1, 8, 8))

    class TestMyData(DatasetPluginContract):
        name = "my_dataset"
        kwargs = {"root": "..."}           # dataset_kwargs

pytest collects the subclass and runs every ``test_*`` method below against the entry that
lit-optim resolves for ``name``, the way a recipe would: the entry point must be installed.
Requires pytest (``pip install lit-optim[test]``).
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import lightning as L
import pytest
import torch

from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.optimizers import OPTIMIZERS, build_optimizer
from lit_optim.catalog.schedulers import SCHEDULERS
from lit_optim.data import DATASETS, ClassificationData
from lit_optim.training.models import MODELS, build_model
from lit_optim.training.task import ClassificationTask

__all__ = [
    "DatasetPluginContract",
    "ModelPluginContract",
    "OptimizerPluginContract",
    "SchedulerPluginContract",
    "quiet_trainer",
    "tiny_fit",
]

_TINY_SYNTHETIC = {"num_samples": 160, "num_features": 8, "num_classes": 3}


def quiet_trainer(root: Any, **settings: Any) -> L.Trainer:
    """A Trainer on one CPU that writes and prints nothing of its own (no logger, checkpoint,
    summary or progress bar) under ``root``; ``settings`` add to or override those."""
    quiet: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "enable_progress_bar": False,
    }
    return L.Trainer(default_root_dir=root, **{**quiet, **settings})


def tiny_fit(
    tmp_path,
    *,
    max_epochs: int = 2,
    dataset: str = "synthetic",
    dataset_kwargs: dict[str, Any] | None = None,
    network: str = "mlp",
    network_kwargs: dict[str, Any] | None = None,
    batch_size: int = 32,
    limit_train_batches: int | float | None = None,
    data_dir: str = "data",
    **task_kwargs: Any,
) -> tuple[ClassificationTask, L.Trainer]:
    """A few real Lightning steps on CPU: by default a small synthetic problem and a 16-unit
    MLP; any registered dataset and network with their kwargs."""
    if dataset_kwargs is None:
        dataset_kwargs = dict(_TINY_SYNTHETIC) if dataset == "synthetic" else {}
    if network_kwargs is None:
        network_kwargs = {"hidden_dims": [16]} if network == "mlp" else {}
    data = ClassificationData(
        dataset, batch_size=batch_size, dataset_kwargs=dataset_kwargs, data_dir=data_dir
    )
    task = ClassificationTask(
        data.input_shape,
        data.num_classes,
        network=network,
        network_kwargs=network_kwargs,
        **task_kwargs,
    )
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=max_epochs,
        limit_train_batches=limit_train_batches,
        limit_val_batches=2,
    )
    trainer.fit(task, datamodule=data)
    return task, trainer


class OptimizerPluginContract:
    """What every registered optimizer must do. Set ``name`` (and optionally ``kwargs``,
    ``lr``)."""

    name: ClassVar[str]
    kwargs: ClassVar[dict[str, Any]] = {}
    lr: ClassVar[float | None] = None  # default: the entry's typical_lr

    def _lr(self) -> float:
        return self.lr if self.lr is not None else OPTIMIZERS.get(self.name).typical_lr

    def test_resolves_by_name_with_a_description(self):
        info = OPTIMIZERS.get(self.name)
        assert info.name == self.name and info.description

    def test_decreases_a_convex_quadratic(self):
        torch.manual_seed(0)
        # Small enough for 300 steps of an Adam-like lr (1e-3 per step) to cover.
        w = torch.nn.Parameter(0.05 * torch.randn(4, 4))
        target = 0.05 * torch.randn(4, 4)
        opt = build_optimizer(self.name, [w], lr=self._lr(), **self.kwargs)

        def closure():
            opt.zero_grad()
            loss = 0.5 * ((w - target) ** 2).sum()
            loss.backward()
            return loss

        start = closure().item()
        for _ in range(300):
            opt.step(closure)
        assert closure().item() < 0.5 * start

    def test_rejects_an_unknown_kwarg_by_name(self):
        with pytest.raises(ConfigError, match=f"'{self.name}'.*'no_such_option'"):
            build_optimizer(
                self.name,
                [torch.nn.Parameter(torch.zeros(2))],
                lr=self._lr(),
                **self.kwargs,
                no_such_option=1,
            )

    def test_state_dict_round_trip(self):
        """A fresh optimizer that loads the state dict continues exactly like the original:
        weights after N more steps of each must agree (a lost momentum or step count shows)."""

        def steps(opt, w, n):
            for _ in range(n):

                def closure():
                    opt.zero_grad()
                    loss = ((w - 0.5) ** 2 * torch.arange(1.0, 4.0)).sum()
                    loss.backward()
                    return loss

                opt.step(closure)

        w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
        opt = build_optimizer(self.name, [w], lr=self._lr() * 0.1, **self.kwargs)
        steps(opt, w, 3)
        twin = torch.nn.Parameter(w.detach().clone())
        clone = build_optimizer(self.name, [twin], lr=self._lr() * 0.1, **self.kwargs)
        # A copy, as a checkpoint on disk is: load_state_dict keeps the tensors it is given.
        clone.load_state_dict(copy.deepcopy(opt.state_dict()))
        steps(opt, w, 4)
        steps(clone, twin, 4)
        assert torch.equal(w.detach(), twin.detach())
        assert not torch.equal(w.detach(), torch.tensor([1.0, -2.0, 3.0]))

    def test_trains_under_lightning(self, tmp_path):
        task, trainer = tiny_fit(
            tmp_path, optimizer=self.name, lr=self._lr(), optimizer_kwargs=dict(self.kwargs)
        )
        assert trainer.global_step > 0
        assert math.isfinite(trainer.callback_metrics["train_loss"].item())


class SchedulerPluginContract:
    """What every registered LR scheduler must do. Set ``name`` (and optionally ``kwargs``)."""

    name: ClassVar[str]
    kwargs: ClassVar[dict[str, Any]] = {}

    def test_resolves_by_name_with_a_description(self):
        info = SCHEDULERS.get(self.name)
        assert info.name == self.name and info.description
        assert info.interval in ("step", "epoch")

    def test_runs_under_lightning_with_a_finite_positive_lr(self, tmp_path):
        lrs = []

        class Record(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

        data = ClassificationData(
            "synthetic",
            batch_size=32,
            dataset_kwargs={"num_samples": 160, "num_features": 8, "num_classes": 3},
        )
        task = ClassificationTask(
            data.input_shape,
            data.num_classes,
            optimizer="sgd",
            lr=0.1,
            scheduler=self.name,
            scheduler_kwargs=dict(self.kwargs),
        )
        trainer = quiet_trainer(tmp_path, max_epochs=3, callbacks=[Record()])
        trainer.fit(task, datamodule=data)
        assert lrs and all(math.isfinite(lr) and lr > 0 for lr in lrs)
        (config, *_) = trainer.lr_scheduler_configs
        assert config.interval == SCHEDULERS.get(self.name).interval

    def test_rejects_an_unknown_kwarg_by_name(self):
        with pytest.raises(ConfigError, match=f"'{self.name}'.*'no_such_option'"):
            ClassificationTask(
                (4,), 2, scheduler=self.name, scheduler_kwargs={**self.kwargs, "no_such_option": 1}
            )


class ModelPluginContract:
    """What every registered network must do. Set ``name`` (and optionally ``kwargs``,
    ``input_shape``, ``num_classes``)."""

    name: ClassVar[str]
    kwargs: ClassVar[dict[str, Any]] = {}
    input_shape: ClassVar[tuple[int, ...]] = (1, 8, 8)
    num_classes: ClassVar[int] = 10

    def test_resolves_by_name_with_a_description(self):
        info = MODELS.get(self.name)
        assert info.name == self.name and info.description

    def test_maps_a_batch_to_one_logit_per_class(self):
        net = build_model(self.name, self.input_shape, self.num_classes, **self.kwargs)
        out = net(torch.randn(5, *self.input_shape))
        assert out.shape == (5, self.num_classes) and torch.isfinite(out).all()

    def test_every_parameter_gets_a_gradient(self):
        net = build_model(self.name, self.input_shape, self.num_classes, **self.kwargs)
        net(torch.randn(4, *self.input_shape)).logsumexp(1).sum().backward()
        missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, f"parameters without a gradient: {missing}"

    def test_same_seed_same_weights(self):
        nets = []
        for _ in range(2):
            torch.manual_seed(0)
            nets.append(build_model(self.name, self.input_shape, self.num_classes, **self.kwargs))
        for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
            assert torch.equal(a, b)

    def test_rejects_an_unknown_kwarg_by_name(self):
        with pytest.raises(ConfigError, match=f"'{self.name}'.*'no_such_option'"):
            build_model(
                self.name, self.input_shape, self.num_classes, **self.kwargs, no_such_option=1
            )

    def test_trains_under_lightning(self, tmp_path):
        _, trainer = tiny_fit(
            tmp_path,
            network=self.name,
            network_kwargs=dict(self.kwargs),
            dataset="synthetic",
            dataset_kwargs={
                "num_samples": 160,
                "input_shape": list(self.input_shape),
                "num_classes": self.num_classes,
            },
            lr=1e-3,
        )
        assert trainer.global_step > 0
        assert math.isfinite(trainer.callback_metrics["train_loss"].item())


class DatasetPluginContract:
    """What every registered dataset must do. Set ``name`` (and optionally ``kwargs``: its
    ``dataset_kwargs``). Datasets that need files must find them (``data_dir`` in kwargs)."""

    name: ClassVar[str]
    kwargs: ClassVar[dict[str, Any]] = {}
    data_dir: ClassVar[str] = "data"

    def _splits(self):
        info = DATASETS.get(self.name)
        return info, info.resolve()(self.data_dir, False, **self.kwargs)

    def test_resolves_by_name_with_a_description(self):
        info = DATASETS.get(self.name)
        assert info.name == self.name and info.description

    def test_declared_shape_and_classes_match_the_data(self):
        info, splits = self._splits()
        shape, classes = info.spec(self.kwargs)
        for x, y in ((splits.train_x, splits.train_y), (splits.test_x, splits.test_y)):
            assert tuple(x.shape[1:]) == tuple(shape) and len(x) == len(y) > 0
            assert x.is_floating_point() and y.dtype == torch.long
            assert 0 <= int(y.min()) and int(y.max()) < classes
        assert len(torch.unique(splits.train_y)) > 1

    def test_loads_the_same_data_twice(self):
        _, a = self._splits()
        _, b = self._splits()
        assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)

    def test_rejects_an_unknown_kwarg_by_name(self):
        with pytest.raises(ConfigError, match=f"'{self.name}'.*'no_such_option'"):
            ClassificationData(self.name, dataset_kwargs={**self.kwargs, "no_such_option": 1})

    def test_trains_under_lightning(self, tmp_path):
        _, trainer = tiny_fit(
            tmp_path,
            dataset=self.name,
            dataset_kwargs=dict(self.kwargs),
            data_dir=self.data_dir,
            limit_train_batches=4,
            lr=1e-3,
        )
        assert trainer.global_step > 0
        assert math.isfinite(trainer.callback_metrics["train_loss"].item())

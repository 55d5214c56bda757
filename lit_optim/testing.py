"""Contract tests a plugin package subclasses to test its own optimizer or scheduler.

    # my_package/tests/test_lion.py
    from lit_optim.testing import OptimizerPluginContract

    class TestLion(OptimizerPluginContract):
        name = "lion"                      # as registered under lit_optim.optimizers
        kwargs = {"betas": (0.9, 0.99)}    # optional: kwargs to build it with

pytest collects the subclass and runs every ``test_*`` method below against the entry that
lit-optim resolves for ``name``, the way a recipe would: the entry point must be installed.
Requires pytest (``pip install lit-optim[test]``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import lightning as L
import pytest
import torch

from lit_optim.data import ClassificationData
from lit_optim.errors import ConfigError
from lit_optim.optimizers import OPTIMIZERS, build_optimizer
from lit_optim.schedulers import SCHEDULERS
from lit_optim.task import ClassificationTask

__all__ = ["OptimizerPluginContract", "SchedulerPluginContract", "tiny_fit"]


def tiny_fit(tmp_path, *, max_epochs: int = 2, **task_kwargs: Any) -> tuple[ClassificationTask, L.Trainer]:
    """A few real Lightning steps on a small synthetic problem, on CPU."""
    data = ClassificationData("synthetic", batch_size=32, dataset_kwargs={
        "num_samples": 160, "num_features": 8, "num_classes": 3})
    task = ClassificationTask(data.input_shape, data.num_classes,
                              network_kwargs={"hidden_dims": [16]}, **task_kwargs)
    trainer = L.Trainer(default_root_dir=tmp_path, accelerator="cpu", devices=1,
                        max_epochs=max_epochs, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, enable_progress_bar=False)
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
            build_optimizer(self.name, [torch.nn.Parameter(torch.zeros(2))], lr=self._lr(),
                            **self.kwargs, no_such_option=1)

    def test_state_dict_round_trip(self):
        w = torch.nn.Parameter(torch.ones(3))
        opt = build_optimizer(self.name, [w], lr=self._lr(), **self.kwargs)
        for _ in range(2):
            opt.zero_grad()
            (w * w).sum().backward()
            opt.step(lambda: (w * w).sum())
        clone = build_optimizer(self.name, [torch.nn.Parameter(w.detach().clone())],
                                lr=self._lr(), **self.kwargs)
        clone.load_state_dict(opt.state_dict())
        assert clone.state_dict().keys() == opt.state_dict().keys()

    def test_trains_under_lightning(self, tmp_path):
        task, trainer = tiny_fit(tmp_path, optimizer=self.name, lr=self._lr(),
                                 optimizer_kwargs=dict(self.kwargs))
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

        data = ClassificationData("synthetic", batch_size=32, dataset_kwargs={
            "num_samples": 160, "num_features": 8, "num_classes": 3})
        task = ClassificationTask(data.input_shape, data.num_classes, optimizer="sgd", lr=0.1,
                                  scheduler=self.name, scheduler_kwargs=dict(self.kwargs))
        trainer = L.Trainer(default_root_dir=tmp_path, accelerator="cpu", max_epochs=3,
                            logger=False, enable_checkpointing=False, callbacks=[Record()],
                            enable_model_summary=False, enable_progress_bar=False)
        trainer.fit(task, datamodule=data)
        assert lrs and all(math.isfinite(lr) and lr > 0 for lr in lrs)
        (config, *_) = trainer.lr_scheduler_configs
        assert config.interval == SCHEDULERS.get(self.name).interval

    def test_rejects_an_unknown_kwarg_by_name(self):
        with pytest.raises(ConfigError, match=f"'{self.name}'.*'no_such_option'"):
            ClassificationTask((4,), 2, scheduler=self.name,
                               scheduler_kwargs={**self.kwargs, "no_such_option": 1})

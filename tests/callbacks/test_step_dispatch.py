"""Pins what lit_optim/callbacks/step_dispatch.py relies on: Lightning skips a callback hook
that is not callable, and still calls the hooks a callback overrides."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from lit_optim.callbacks.step_dispatch import BATCH_HOOKS, skip_unused_batch_hooks
from lit_optim.cli.trainer_setup import with_cli_defaults


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader():
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(24, 3, generator=generator), torch.randint(0, 2, (24,), generator=generator)
    )
    return DataLoader(data, batch_size=4)


class CountsBatchEnds(Callback):
    """Overrides one batch hook and counts every hook Lightning hands it."""

    def __init__(self) -> None:
        self.batch_ends = 0
        self.epoch_ends = 0
        skip_unused_batch_hooks(self)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batch_ends += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_ends += 1


class AlsoBeforeBackward(CountsBatchEnds):
    """A user's subclass overriding a hook its parent leaves out."""

    def __init__(self) -> None:
        self.before_backward = 0
        super().__init__()

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.before_backward += 1


def test_a_hidden_hook_is_skipped_and_overridden_ones_still_run(tmp_path):
    plain, sub = CountsBatchEnds(), AlsoBeforeBackward()
    assert plain.on_before_backward is None and plain.on_validation_batch_end is None
    assert callable(plain.on_train_batch_end) and callable(sub.on_before_backward)
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[plain, sub],
    )
    # Were a None hook called, the fit would raise TypeError at the first batch.
    trainer.fit(Tiny(), _loader(), _loader())
    assert plain.batch_ends == sub.batch_ends == trainer.global_step == 12
    assert sub.before_backward == 12
    assert plain.epoch_ends == sub.epoch_ends == 2


def test_the_fit_defaults_are_dispatched_only_where_they_act():
    args, _ = with_cli_defaults({}, objective="val_acc", direction="max")
    acting = {}
    for callback in args["callbacks"]:
        acting[type(callback).__name__] = {h for h in BATCH_HOOKS if callable(getattr(callback, h))}
    checkpoint = acting.pop("FiniteModelCheckpoint")
    assert "on_train_batch_end" in checkpoint  # Lightning's own checkpoint: left as it is
    assert acting == {
        "ObjectiveCheck": set(),
        "EpochLines": set(),
        "PlateauResume": set(),
        "RunSummary": {"on_train_batch_end"},
        "LearningRateMonitor": {"on_train_batch_start"},
    }


@pytest.mark.parametrize("hook", BATCH_HOOKS)
def test_every_named_hook_is_one_lightning_dispatches(hook):
    # A hook name that is not Lightning's would hide nothing (and mean the list went stale).
    assert callable(getattr(Callback, hook))

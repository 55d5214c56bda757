"""The one adapter over a Lightning detail with no public API (trainer_info.run_length): under
max_steps with max_epochs=-1, estimated_stepping_batches returns before loading the train
loader. These tests fail if a Lightning release changes either side of that."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from lit_optim.catalog.trainer_info import run_length


class _Probe(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.before = self.after = None

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def configure_optimizers(self):
        self.before = self.trainer.num_training_batches
        self.after = run_length(self.trainer)
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(make_trainer, **kwargs):
    probe = _Probe()
    loader = DataLoader(TensorDataset(torch.zeros(12, 2)), batch_size=4)  # 3 batches
    make_trainer(**kwargs).fit(probe, train_dataloaders=loader)
    return probe


def test_lightning_leaves_the_epoch_length_unknown_under_max_steps_alone(make_trainer):
    probe = _fit(make_trainer, max_epochs=-1, max_steps=5)
    assert probe.before == float("inf")  # what the adapter works around
    assert (probe.after.total_steps, probe.after.steps_per_epoch) == (5, 3)


def test_with_max_epochs_the_public_property_is_enough(make_trainer):
    probe = _fit(make_trainer, max_epochs=2)
    assert (probe.after.total_steps, probe.after.steps_per_epoch, probe.after.total_epochs) == (
        6,
        3,
        2,
    )

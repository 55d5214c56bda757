"""The training-health callbacks in a population: GradientClipper (norm, value, adaptive) and
LayerDiagnostics act per member, and a Trainer's gradient_clip_val too. The reference is each
member's own run, fitted one by one by a plain Lightning Trainer with the same callback
(automatic optimization, Lightning's own hooks); in float64 each member must end where that
run ends (≤ 1e-10) and log what it logs."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_optim import ClassificationData, ClassificationTask, create_optimizer
from lit_optim.callbacks import GradientClipper, LayerDiagnostics
from lit_optim.population import ModulePopulation, PopulationTask


class Blobs(L.LightningDataModule):
    def setup(self, stage=None):
        g = torch.Generator().manual_seed(3)
        self.x = torch.randn(80, 6, generator=g)
        self.y = (self.x[:, 0] + self.x[:, 1] > 0).long()

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=16, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[:32], self.y[:32]), batch_size=16)


class TwoLayer(L.LightningModule):
    """A user's module: its own metric names and a head param group with its own lr."""

    def __init__(self, lr: float = 0.1, head_lr: float = 0.3):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Linear(6, 12), nn.Tanh())
        self.head = nn.Linear(12, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.head(self.body(x)), y)
        self.log("fit/xent", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("check/xent", nn.functional.cross_entropy(self.head(self.body(x)), y))

    def configure_optimizers(self):
        return create_optimizer(
            self,
            "momentum",
            lr=self.hparams.lr,
            param_groups=[{"params": "head.*", "lr": self.hparams.head_lr}],
        )


# Members whose gradients differ by orders of magnitude: one member's norm must not clip another.
MEMBERS = [dict(lr=0.05, head_lr=0.1), dict(lr=0.5, head_lr=2.0), dict(lr=0.2, head_lr=0.05)]
TRAINER = dict(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    enable_progress_bar=False,
    precision="64-true",
    num_sanity_val_steps=0,
)
CLIPPERS = {
    "norm": dict(mode="norm", max_norm=0.3),
    "norm-inf": dict(mode="norm", max_norm=0.1, norm_type=float("inf")),
    "value": dict(mode="value", clip_value=0.2),
    "adaptive": dict(mode="adaptive", percentile=30, history=7),
}


def _one_by_one(hparams, callbacks, **trainer):
    L.seed_everything(0)
    module = TwoLayer(**hparams)
    L.seed_everything(0)  # the batches the population sees
    fit = L.Trainer(callbacks=callbacks, **{**TRAINER, **trainer})
    fit.fit(module, datamodule=Blobs())
    return module, {k: float(v) for k, v in fit.callback_metrics.items()}


def _population(callbacks, members=MEMBERS, **trainer):
    modules = []
    for hparams in members:
        L.seed_everything(0)
        modules.append(TwoLayer(**hparams))
    population = ModulePopulation(
        modules,
        gradient_clip_val=trainer.pop("gradient_clip_val", None),
        gradient_clip_algorithm=trainer.pop("gradient_clip_algorithm", "norm"),
    )
    L.seed_everything(0)
    L.Trainer(callbacks=callbacks, **{**TRAINER, **trainer}).fit(population, datamodule=Blobs())
    return population


def _assert_equal_states(population, i, module):
    theirs = population.member_state_dict(i)
    for name, value in module.state_dict().items():
        assert torch.allclose(theirs[name], value, rtol=0, atol=1e-10), (i, name)


@pytest.mark.parametrize("kwargs", CLIPPERS.values(), ids=CLIPPERS)
def test_gradient_clipper_clips_each_member_as_its_own_run(kwargs):
    population = _population([GradientClipper(**kwargs)])
    assert population.alive == [0, 1, 2]
    for i, hparams in enumerate(MEMBERS):
        module, logged = _one_by_one(hparams, [GradientClipper(**kwargs)])
        _assert_equal_states(population, i, module)
        assert float(population.member_metrics["grad_clipped_frac"][i]) == pytest.approx(
            logged["grad_clipped_frac"], abs=1e-7
        )  # Lightning logs it in float32
    # The clip bit, and not alike for every member: without it the members end elsewhere.
    shares = population.member_metrics["grad_clipped_frac"]
    assert float(shares.max()) > 0 and len(set(shares.tolist())) > 1
    unclipped = _population([])
    assert not torch.allclose(
        unclipped.member_state_dict(1)["head.weight"],
        population.member_state_dict(1)["head.weight"],
    )


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_a_trainers_gradient_clip_val_is_per_member_as_lightning_clips(algorithm):
    clip = 0.3 if algorithm == "norm" else 0.2
    population = _population([], gradient_clip_val=clip, gradient_clip_algorithm=algorithm)
    for i, hparams in enumerate(MEMBERS):
        module, _ = _one_by_one(
            hparams, [], gradient_clip_val=clip, gradient_clip_algorithm=algorithm
        )
        _assert_equal_states(population, i, module)


def test_layer_diagnostics_keep_each_members_own_table(tmp_path):
    diagnostics = LayerDiagnostics(every_n_steps=3, png="ratios.png")
    _population(
        [GradientClipper(mode="norm", max_norm=0.3), diagnostics], default_root_dir=tmp_path
    )
    assert list(diagnostics.member_history) == ["member_0", "member_1", "member_2"]
    assert not diagnostics.history  # nothing under the population's own name
    for i, hparams in enumerate(MEMBERS):
        alone = LayerDiagnostics(every_n_steps=3)
        _one_by_one(hparams, [GradientClipper(mode="norm", max_norm=0.3), alone])
        mine = diagnostics.member_history[f"member_{i}"]
        assert [step for step, _ in mine] == [step for step, _ in alone.history] == [0, 3, 6, 9]
        for (_, table), (_, reference) in zip(mine, alone.history):
            assert (
                table.keys()
                == reference.keys()
                == {"body.0.weight", "body.0.bias", "head.weight", "head.bias"}
            )
            for layer, row in reference.items():
                for quantity, value in row.items():
                    assert table[layer][quantity] == pytest.approx(value, rel=1e-9), (
                        i,
                        layer,
                        quantity,
                    )
    # One plot per member, its name in the file name.
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == [
        "ratios.member_0.png",
        "ratios.member_1.png",
        "ratios.member_2.png",
    ]


def test_a_dropped_member_takes_its_clip_state_with_it():
    """A member that diverges leaves; the others' AutoClip histories stay theirs."""
    members = [MEMBERS[0], dict(lr=1e6, head_lr=1e6), MEMBERS[2]]
    clipper = GradientClipper(mode="adaptive", percentile=30, history=7)
    population = _population([clipper], members=members, max_epochs=3)
    assert population.alive == [0, 2] and 1 in population.dropped
    assert clipper._norms.shape[1] == 2
    for position, index in enumerate(population.alive):
        module, _ = _one_by_one(
            members[index],
            [GradientClipper(mode="adaptive", percentile=30, history=7)],
            max_epochs=3,
        )
        _assert_equal_states(population, position, module)


def test_population_task_clips_each_member_as_its_classification_task():
    data = ClassificationData("digits", batch_size=128)
    members = [{"lr": 0.05, "weight_decay": 0.0}, {"lr": 0.5, "weight_decay": 1e-3}]
    trainer = dict(
        max_epochs=2,
        limit_train_batches=3,
        precision="64-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        num_sanity_val_steps=0,
    )
    kwargs = dict(mode="adaptive", percentile=50, history=4)
    population = PopulationTask(
        data.input_shape, 10, members, network_kwargs={"hidden_dims": [16]}, optimizer="sgd"
    )
    L.Trainer(callbacks=[GradientClipper(**kwargs)], **trainer).fit(population, datamodule=data)
    for i, member in enumerate(members):
        torch.manual_seed(0)
        task = ClassificationTask(
            data.input_shape, 10, network_kwargs={"hidden_dims": [16]}, optimizer="sgd", **member
        )
        fit = L.Trainer(callbacks=[GradientClipper(**kwargs)], **trainer)
        fit.fit(task, datamodule=ClassificationData("digits", batch_size=128))
        mine = population.net.member_state_dict(i)
        for name, value in task.net.state_dict().items():
            assert torch.allclose(mine[name], value, rtol=0, atol=1e-10), (i, name)
        assert float(population.member_metrics["grad_clipped_frac"][i]) == pytest.approx(
            float(fit.callback_metrics["grad_clipped_frac"]), abs=1e-7
        )

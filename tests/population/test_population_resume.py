"""A population's members saved after an epoch (``member_state``, through ``torch.save``) and
loaded into a population built afresh from the same members (``load_member_state``) train on
bit for bit as the population that was never stopped: what PBT's resume rests on. Both
population classes, with schedules, adaptive clipping and a plateau's own state."""

from __future__ import annotations

import io

import lightning as L
import pytest
import torch

from lit_optim import ClassificationData
from lit_optim.callbacks import GradientClipper
from lit_optim.population import ModulePopulation, PopulationTask, ResumeFrom, take_snapshot

EPOCHS, SPLIT = 3, 2  # the whole run; the epoch after which it is stopped and resumed


def _stop_at(epochs: int, saved: dict | None = None):
    """An ``on_epoch_end`` that stops the fit once the members trained ``epochs``, saving
    a snapshot of it into ``saved`` then, through a file's bytes."""

    def hook(pop) -> None:
        if max(pop.epochs_trained) < epochs:
            return
        if saved is not None:
            buffer = io.BytesIO()
            torch.save(take_snapshot(pop, epochs), buffer)
            buffer.seek(0)
            saved.update(torch.load(buffer, weights_only=True))  # what a file gives back
        pop.trainer.should_stop = True

    return hook


def _whole_stopped_resumed(make, fit):
    """The population fitted ``EPOCHS`` at once; and fitted ``SPLIT``, saved, then a new one
    loaded and fitted to ``EPOCHS``."""
    whole = make()
    whole.on_epoch_end = _stop_at(EPOCHS)
    fit(whole, [])
    saved: dict = {}
    stopped = make()
    stopped.on_epoch_end = _stop_at(SPLIT, saved)
    fit(stopped, [])
    resumed = make()
    resumed.on_epoch_end = _stop_at(EPOCHS)
    fit(resumed, [ResumeFrom(saved)])
    assert resumed.epochs_trained == [EPOCHS] * len(resumed.alive)
    return whole, resumed


def _assert_equal_states(whole, resumed, tensors) -> None:
    for a, b in zip(tensors(whole), tensors(resumed), strict=True):
        assert torch.equal(a, b)
    assert whole.member_metrics.keys() == resumed.member_metrics.keys()
    for name, values in whole.member_metrics.items():
        assert torch.equal(values, resumed.member_metrics[name]), name


TASK_MEMBERS = [
    {"lr": 0.05, "weight_decay": 1e-3, "momentum": 0.9},
    {"lr": 0.1, "weight_decay": 1e-4, "momentum": 0.5},
    {"lr": 0.02, "weight_decay": 0.0, "momentum": 0.8},
]


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "kwargs"),
    [
        ("adam", "cosine", {"warmup_steps": 3}),
        ("momentum", "plateau", {"patience": 0, "factor": 0.5}),
        ("sgd", "onecycle", {}),
    ],
)
def test_population_task_resumed_from_saved_member_states_equals_the_whole_run(
    optimizer, scheduler, kwargs
):
    members = [
        m if optimizer != "adam" else {"lr": m["lr"] / 10, "weight_decay": m["weight_decay"]}
        for m in TASK_MEMBERS
    ]
    data = ClassificationData("digits", batch_size=128)

    def make():
        return PopulationTask(
            data.input_shape,
            10,
            members,
            network_kwargs={"hidden_dims": [32, 16]},
            optimizer=optimizer,
            scheduler=scheduler,
            scheduler_kwargs=kwargs,
            gradient_clip_val=0.5,
        )

    def fit(population, callbacks):
        from test_population_task import _trainer  # the population tests' float64 Trainer

        torch.manual_seed(0)
        trainer = _trainer()
        trainer.callbacks += [GradientClipper("adaptive", percentile=50), *callbacks]
        trainer.fit(population, datamodule=ClassificationData("digits", batch_size=128))

    whole, resumed = _whole_stopped_resumed(make, fit)

    def tensors(pop):
        yield from pop.net.parameters()
        yield from (v for state in pop.update.state for v in state.values())
        yield pop.update.steps
        yield from pop.update.h.values()

    _assert_equal_states(whole, resumed, tensors)
    assert "grad_clipped_frac" in whole.member_metrics  # the clipper's state went along


def _seeded_shapes():
    """A data module as many users write one: its training loader shuffles from a generator
    of its own, seeded each time the loader is made (a resumed fit makes it afresh)."""
    from test_population_module import Shapes
    from torch.utils.data import DataLoader, TensorDataset

    class SeededShapes(Shapes):
        def train_dataloader(self):
            data = TensorDataset(self.x, self.y)
            generator = torch.Generator().manual_seed(3)
            return DataLoader(data, batch_size=self.batch_size, shuffle=True, generator=generator)

    return SeededShapes


@pytest.mark.parametrize(
    "scheduler,kwargs,loader",
    [
        ("cosine", {"warmup_steps": 10}, "global"),
        ("plateau", {"patience": 0, "factor": 0.5, "mode": "min"}, "global"),
        ("cosine", {"warmup_steps": 10}, "own generator"),
    ],
)
def test_module_population_resumed_from_saved_member_states_equals_the_whole_run(
    tmp_path, scheduler, kwargs, loader
):
    # A user's CNN (BatchNorm, a head param group, its own metric names); its loader shuffles
    # from the global generator, or from one of its own.
    from test_population_module import MEMBERS, TRAINER, Shapes, SmallCNN

    data = Shapes if loader == "global" else _seeded_shapes()

    members = [
        {**m, "weight_decay": m["weight_decay"] or 3e-3, "optimizer": "adamw"}
        | {"scheduler": scheduler, "scheduler_kwargs": kwargs}
        for m in MEMBERS
    ]

    def make():
        modules = []
        for hparams in members:
            L.seed_everything(0)
            modules.append(SmallCNN(**hparams))
        return ModulePopulation(modules, gradient_clip_val=1.0)

    def fit(population, callbacks):
        L.seed_everything(0)
        L.Trainer(
            default_root_dir=tmp_path,
            callbacks=[GradientClipper("adaptive", percentile=50), *callbacks],
            **{**TRAINER, "max_epochs": EPOCHS},
        ).fit(population, datamodule=data())

    whole, resumed = _whole_stopped_resumed(make, fit)

    def tensors(pop):
        yield from pop.stacked().values()
        yield from pop.stacked_buffers().values()  # BatchNorm's running statistics
        for update in pop.updates:
            yield from (v for state in update.state for v in state.values())
            yield update.steps

    _assert_equal_states(whole, resumed, tensors)
    lrs = [[g["lr"] for g in s["optimizer"].param_groups] for s in whole.shadows]
    assert lrs == [[g["lr"] for g in s["optimizer"].param_groups] for s in resumed.shadows]

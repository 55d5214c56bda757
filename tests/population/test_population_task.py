"""PopulationTask under a real Lightning Trainer against the same ClassificationTask trials
fitted one by one (float64, digits): weights and val_acc per member, with schedules."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from lit_optim import ClassificationData, ClassificationTask
from lit_optim.population.task import PopulationTask

NET = {"hidden_dims": [32, 16]}
CASES = {
    "sgd": [
        {"lr": 0.05, "weight_decay": 0.0},
        {"lr": 0.1, "weight_decay": 1e-3, "momentum": 0.9},
        {"lr": 0.02, "weight_decay": 1e-4, "dampening": 0.1, "momentum": 0.5},
        {"lr": 0.2, "weight_decay": 0.0},
    ],
    "momentum": [
        {"lr": 0.01, "weight_decay": 0.0, "momentum": 0.9},
        {"lr": 0.05, "weight_decay": 1e-3, "momentum": 0.5},
        {"lr": 0.1, "weight_decay": 1e-4, "momentum": 0.8},
        {"lr": 0.02, "weight_decay": 0.0, "momentum": 0.95},
    ],
    "nesterov": [
        {"lr": 0.01, "weight_decay": 0.0, "momentum": 0.9},
        {"lr": 0.05, "weight_decay": 1e-3, "momentum": 0.5},
        {"lr": 0.1, "weight_decay": 1e-4, "momentum": 0.8},
        {"lr": 0.02, "weight_decay": 0.0, "momentum": 0.95},
    ],
    "adam": [
        {"lr": 1e-3, "weight_decay": 0.0},
        {"lr": 3e-3, "weight_decay": 1e-3},
        {"lr": 1e-2, "weight_decay": 1e-4, "betas": (0.8, 0.99)},
        {"lr": 3e-2, "weight_decay": 0.0},
    ],
    "amsgrad": [
        {"lr": 1e-3, "weight_decay": 0.0},
        {"lr": 3e-3, "weight_decay": 1e-3},
        {"lr": 1e-2, "weight_decay": 1e-4, "betas": (0.8, 0.99)},
        {"lr": 3e-2, "weight_decay": 0.0, "eps": 1e-6},
    ],
    "adamw": [
        {"lr": 1e-3, "weight_decay": 1e-2},
        {"lr": 3e-3, "weight_decay": 0.1},
        {"lr": 1e-2, "weight_decay": 0.0},
        {"lr": 5e-3, "weight_decay": 0.05},
    ],
    "rmsprop": [
        {"lr": 1e-3, "weight_decay": 0.0},
        {"lr": 3e-3, "weight_decay": 1e-3, "alpha": 0.9},
        {"lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.5},
        {"lr": 5e-4, "weight_decay": 0.0, "eps": 1e-6},
    ],
    "adagrad": [
        {"lr": 0.01, "weight_decay": 0.0},
        {"lr": 0.05, "weight_decay": 1e-3},
        {"lr": 0.02, "weight_decay": 1e-4, "lr_decay": 1e-2},
        {"lr": 0.1, "weight_decay": 0.0, "initial_accumulator_value": 0.1},
    ],
}
SCHEDULES = [("constant", {}), ("cosine", {"warmup_steps": 3}), ("onecycle", {})]


def _sequential_task(data, member, optimizer, scheduler, kwargs):
    """The member's own ClassificationTask, from the weights its trial starts from."""
    torch.manual_seed(0)
    extra = {k: v for k, v in member.items() if k not in ("lr", "weight_decay")}
    return ClassificationTask(
        data.input_shape,
        10,
        network_kwargs=NET,
        optimizer=optimizer,
        lr=member["lr"],
        weight_decay=member["weight_decay"],
        optimizer_kwargs=extra,
        scheduler=scheduler,
        scheduler_kwargs=kwargs,
    )


def _trainer():
    return L.Trainer(
        max_epochs=3,
        limit_train_batches=3,
        precision="64-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        num_sanity_val_steps=0,
    )


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "kwargs"),
    [
        *[(name, schedule, kwargs) for name in CASES for schedule, kwargs in SCHEDULES],
        # One metric per member: each has a schedule of its own (the others share one).
        ("momentum", "plateau", {"patience": 0, "factor": 0.5, "warmup_steps": 3}),
    ],
)
def test_each_member_equals_its_sequential_classification_task(optimizer, scheduler, kwargs):
    members = CASES[optimizer]
    data = ClassificationData("digits", batch_size=128)
    population = PopulationTask(
        data.input_shape,
        10,
        members,
        network_kwargs=NET,
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_kwargs=kwargs,
    )
    _trainer().fit(population, datamodule=data)
    assert population.alive == [0, 1, 2, 3]
    for i, member in enumerate(members):
        task = _sequential_task(data, member, optimizer, scheduler, kwargs)
        trainer = _trainer()
        trainer.fit(task, datamodule=ClassificationData("digits", batch_size=128))
        mine = population.net.member_state_dict(i)
        for name, value in task.net.state_dict().items():
            assert torch.allclose(mine[name], value, rtol=0, atol=1e-10), (i, name)
        assert float(population.member_metrics["val_acc"][i]) == pytest.approx(
            float(trainer.callback_metrics["val_acc"]), abs=1e-7
        )  # torchmetrics: float32
        assert float(population.member_metrics["val_loss"][i]) == pytest.approx(
            float(trainer.callback_metrics["val_loss"]), rel=1e-10
        )


def test_a_member_that_diverges_is_dropped_with_its_reason_and_the_rest_train_on():
    members = [
        {"lr": 1e-3, "weight_decay": 0.0},
        {"lr": 1e12, "weight_decay": 0.0},
        {"lr": 3e-3, "weight_decay": 0.0},
    ]
    data = ClassificationData("digits", batch_size=128)
    population = PopulationTask(data.input_shape, 10, members, network_kwargs=NET, optimizer="sgd")
    _trainer().fit(population, datamodule=data)
    assert population.alive == [0, 2] and population.dropped == {
        1: "non-finite or spiking loss, or non-finite metric"
    }
    assert population.net.size == 2
    assert torch.isfinite(population.member_metrics["val_loss"]).all()


class _Batches(L.Callback):
    def __init__(self):
        self.by_epoch: dict[int, list] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.by_epoch.setdefault(trainer.current_epoch, []).append([t.clone() for t in batch])


class _Replay(L.LightningDataModule):
    """The population's training batches from population epoch ``start`` on; the same
    validation data."""

    def __init__(self, data, batches, start):
        super().__init__()
        self.data, self.batches, self.start = data, batches, start

    def setup(self, stage=None):
        self.data.setup(stage)

    def train_dataloader(self):
        from torch.utils.data import DataLoader

        return DataLoader(
            self.batches.by_epoch[self.trainer.current_epoch + self.start], batch_size=None
        )

    def val_dataloader(self):
        return self.data.val_dataloader()


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "kwargs"),
    [("adam", "cosine", {"warmup_steps": 3}), ("sgd", "onecycle", {}), ("adagrad", "constant", {})],
)
def test_a_member_that_joins_later_equals_its_sequential_task_fed_the_same_batches(
    optimizer, scheduler, kwargs
):
    # Two members start; a third joins after population epoch 0 at its own epoch 0 and step 0;
    # the first two complete their 3 epochs and leave. The newcomer equals ClassificationTask
    # fitted alone on the batches it saw (its schedule built for its own 3 epochs).
    members = CASES[optimizer][:3]
    data = ClassificationData("digits", batch_size=128)
    population = PopulationTask(
        data.input_shape,
        10,
        members[:2],
        network_kwargs=NET,
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_kwargs=kwargs,
    )
    population.stop_when_empty = False
    done = {}

    def between_epochs(pop):
        finished = [e == 3 for e in pop.epochs_trained]
        for position, index in enumerate(pop.alive):
            if finished[position]:
                done[index] = (
                    pop.net.member_state_dict(position),
                    {k: float(v[position]) for k, v in pop.member_metrics.items()},
                )
        pop.drop(torch.tensor([not f for f in finished]), reason="complete")
        if pop.trainer.current_epoch == 0:
            assert pop.join(members[2:], ["trial_2"]) == [2]
        if not pop.alive:
            pop.trainer.should_stop = True

    class RunsOn(L.Callback):
        def on_train_start(self, trainer, pl_module):
            trainer.fit_loop.max_epochs = -1

    population.on_epoch_end = between_epochs
    batches = _Batches()
    trainer = _trainer()
    trainer.callbacks += [batches, RunsOn()]
    trainer.fit(population, datamodule=data)
    assert sorted(done) == [0, 1, 2] and trainer.current_epoch == 4
    for index, start in ((0, 0), (2, 1)):
        member = members[index]
        task = _sequential_task(data, member, optimizer, scheduler, kwargs)
        reference = L.Trainer(
            max_epochs=3,
            limit_train_batches=3,
            precision="64-true",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            num_sanity_val_steps=0,
            reload_dataloaders_every_n_epochs=1,
        )
        reference.fit(
            task, datamodule=_Replay(ClassificationData("digits", batch_size=128), batches, start)
        )
        state, metrics = done[index]
        for name, value in task.net.state_dict().items():
            assert torch.allclose(state[name], value, rtol=0, atol=1e-10), (index, name)
        assert metrics["val_loss"] == pytest.approx(
            float(reference.callback_metrics["val_loss"]), rel=1e-10
        )


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "kwargs"),
    [
        ("adam", "cosine", {"warmup_steps": 3}),
        ("momentum", "plateau", {"patience": 0, "factor": 0.5}),
        ("sgd", "cyclic", {}),
        ("adam", "cosine_restarts", {"T_0": 1}),
    ],
)
def test_copy_member_is_bitwise_and_the_copy_trains_on_as_its_source(optimizer, scheduler, kwargs):
    # PBT's exploit: after epoch 0 member 2 takes member 0's weights, optimizer state, step
    # count and schedule, in memory. From then on both see the same batches with the same
    # hyperparameters: they must stay bit for bit equal to the end, and member 2 must differ
    # from the run without the copy.
    members = CASES[optimizer][:3]
    data = ClassificationData("digits", batch_size=128)

    def fit(copy):
        population = PopulationTask(
            data.input_shape,
            10,
            members,
            network_kwargs=NET,
            optimizer=optimizer,
            scheduler=scheduler,
            scheduler_kwargs=kwargs,
        )
        if copy:
            population.on_epoch_end = lambda pop: pop.current_epoch == 0 and pop.copy_member(0, 2)
        _trainer().fit(population, datamodule=ClassificationData("digits", batch_size=128))
        return population

    copied, plain = fit(True), fit(False)
    for a, b in zip(
        copied.net.member_state_dict(0).values(), copied.net.member_state_dict(2).values()
    ):
        assert torch.equal(a, b)
    for state in copied.update.state:
        for value in state.values():
            assert torch.equal(value[0], value[2])
    assert torch.equal(copied.update.h["lr"][0], copied.update.h["lr"][2])
    assert float(copied.member_metrics["val_loss"][0]) == float(
        copied.member_metrics["val_loss"][2]
    )
    without = plain.net.member_state_dict(2)
    assert not all(torch.equal(without[k], v) for k, v in copied.net.member_state_dict(2).items())


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "kwargs"),
    [
        ("adam", "cosine", {"warmup_steps": 3}),
        ("momentum", "plateau", {"patience": 0, "factor": 0.5}),
        ("sgd", "onecycle", {}),
        ("adamw", "constant", {}),
    ],
)
def test_an_exploited_and_explored_member_equals_its_replay_with_a_hyperparameter_schedule(
    optimizer, scheduler, kwargs
):
    # PBT: after epoch 0 member 2 takes member 0's state (exploit), then its lr x1.2 and its
    # weight decay x0.8 (explore); after epoch 1 member 1 takes member 2's, then lr x0.8 and
    # weight decay x1.2: a line of two generations. Member 2's run is member 0's whose lr and
    # weight decay change at the start of epoch 1, member 1's changes again at epoch 2:
    # ClassificationTask fitted alone with HyperparameterSchedule, one change and two.
    from lit_optim.callbacks import HyperparameterSchedule

    members = [m for m in CASES[optimizer] if m["weight_decay"] > 0][:2] * 2
    parent = members[0]
    new = {"lr": parent["lr"] * 1.2, "weight_decay": parent["weight_decay"] * 0.8}
    newer = {"lr": new["lr"] * 0.8, "weight_decay": new["weight_decay"] * 1.2}
    data = ClassificationData("digits", batch_size=128)
    population = PopulationTask(
        data.input_shape,
        10,
        members[:3],
        network_kwargs=NET,
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_kwargs=kwargs,
    )

    def exploit(pop):
        if pop.current_epoch == 0:
            pop.copy_member(0, 2)
            pop.rescale_member(2, **{k: new[k] / parent[k] for k in new})
        if pop.current_epoch == 1:
            pop.copy_member(2, 1)
            pop.rescale_member(1, **{k: newer[k] / new[k] for k in new})

    population.on_epoch_end = exploit
    _trainer().fit(population, datamodule=data)
    start = {k: parent[k] for k in new}
    for member, changes in (
        (2, [{"epoch": 1, **new}]),
        (1, [{"epoch": 1, **new}, {"epoch": 2, **newer}]),
    ):
        task = _sequential_task(data, parent, optimizer, scheduler, kwargs)
        trainer = _trainer()
        trainer.callbacks.append(HyperparameterSchedule(start=start, changes=changes))
        trainer.fit(task, datamodule=ClassificationData("digits", batch_size=128))
        mine = population.net.member_state_dict(member)
        for name, value in task.net.state_dict().items():
            assert torch.allclose(mine[name], value, rtol=0, atol=1e-10), (member, name)
        assert float(population.member_metrics["val_loss"][member]) == pytest.approx(
            float(trainer.callback_metrics["val_loss"]), rel=1e-10
        )
    mine = population.net.member_state_dict(2)
    # The explore changed the run: member 0 (the parent's own run on) differs.
    theirs = population.net.member_state_dict(0)
    assert not all(torch.equal(theirs[k], v) for k, v in mine.items())

"""Populations of a user's own LightningModule (lit_optim.population.ModulePopulation).

The module is written here, as a user would: a small CNN with BatchNorm and (optionally)
dropout, a param group of its own for the head, a schedule through lit_optim's factory, its own
metric names (``train/nll``, ``valid/nll``, and a torchmetrics accuracy as ``valid/top1``). The
reference is the same module trained one by one by a plain Lightning Trainer (automatic
optimization): with dropout off and in float64 every member must end where its own run ends."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from optuna.trial import TrialState
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from lit_optim import create_optimizer, create_scheduler
from lit_optim.population.module_population import ModulePopulation, NotVmappable


class Shapes(L.LightningDataModule):
    def __init__(self, n: int = 96, batch_size: int = 16):
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(self.n, 1, 8, 8, generator=g)
        self.y = (self.x.mean(dim=(1, 2, 3)) > 0).long() + (self.x[:, 0, 0, 0] > 1).long()

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[:40], self.y[:40]), batch_size=self.batch_size)


class SmallCNN(L.LightningModule):
    def __init__(
        self,
        lr: float = 1e-2,
        weight_decay: float = 1e-3,
        head_lr: float = 3e-2,
        dropout: float = 0.0,
        optimizer: str = "adamw",
        scheduler: str = "cosine",
        scheduler_kwargs: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        # No conv bias before BatchNorm (it cancels): its gradient is round-off, which Adam
        # would blow up to full steps, so no two kernels could agree on it.
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Dropout(dropout) if dropout else nn.Identity(),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * 8 * 8, 3)
        self.top1 = MulticlassAccuracy(num_classes=3)

    def forward(self, x):
        return self.head(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train/nll", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("valid/nll", nn.functional.cross_entropy(logits, y))
        self.top1(logits, y)
        self.log("valid/top1", self.top1)

    def configure_optimizers(self):
        opt = create_optimizer(
            self,
            self.hparams.optimizer,
            lr=self.hparams.lr,
            weight_decay=self.hparams.weight_decay,
            param_groups=[{"params": "head.*", "lr": self.hparams.head_lr}],
        )
        return {
            "optimizer": opt,
            "lr_scheduler": create_scheduler(
                self.hparams.scheduler,
                opt,
                self.trainer,
                monitor="valid/nll",
                **(self.hparams.scheduler_kwargs or {}),
            ),
        }


MEMBERS = [
    dict(lr=1e-2, weight_decay=1e-3, head_lr=3e-2),
    dict(lr=3e-3, weight_decay=1e-2, head_lr=1e-2),
    dict(lr=2e-2, weight_decay=0.0, head_lr=5e-3),
]
TRAINER = dict(
    max_epochs=3,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    enable_progress_bar=False,
    precision="64-true",
)


def _one_by_one(tmp_path, **hparams):
    L.seed_everything(0)
    module = SmallCNN(**hparams)
    L.seed_everything(0)  # the same batches as the population's fit (seeded the same way)
    trainer = L.Trainer(default_root_dir=tmp_path, **TRAINER)
    trainer.fit(module, datamodule=Shapes())
    return module, {k: float(v) for k, v in trainer.callback_metrics.items()}


def _population(tmp_path, members, clip=None, **trainer):
    modules = []
    for hparams in members:
        L.seed_everything(0)
        modules.append(SmallCNN(**hparams))
    population = ModulePopulation(modules, gradient_clip_val=clip)
    L.seed_everything(0)
    L.Trainer(default_root_dir=tmp_path, **{**TRAINER, **trainer}).fit(
        population, datamodule=Shapes()
    )
    return population


@pytest.mark.parametrize(
    "optimizer,scheduler,kwargs",
    [
        ("adamw", "cosine", {}),
        ("momentum", "onecycle", {}),
        # plateau's warmup rides on the optimizer's step hook (StepWarmup): the one schedule a
        # shadow optimizer must still be stepped for
        ("adamw", "plateau", {"warmup_steps": 10, "patience": 0, "factor": 0.5, "mode": "min"}),
    ],
    ids=["adamw-cosine", "momentum-onecycle", "adamw-warmup-plateau"],
)
def test_every_member_ends_where_its_own_run_ends(tmp_path, optimizer, scheduler, kwargs):
    members = [
        {**m, "optimizer": optimizer, "scheduler": scheduler, "scheduler_kwargs": kwargs}
        for m in MEMBERS
    ]
    population = _population(tmp_path, members)
    assert population.alive == [0, 1, 2] and not population.dropped
    for i, hparams in enumerate(members):
        reference, logged = _one_by_one(tmp_path, **hparams)
        theirs = population.member_state_dict(i)
        for name, value in reference.state_dict().items():
            if name.startswith("top1."):
                continue
            assert torch.allclose(theirs[name].to(value.dtype), value, rtol=0, atol=1e-10), name
        # the values each member logged are its own run's
        for name in ("valid/nll", "valid/top1", "train/nll"):
            assert float(population.member_metrics[name][i]) == pytest.approx(
                logged[name], abs=1e-10
            ), name


def test_batch_norm_statistics_are_per_member(tmp_path):
    population = _population(tmp_path, MEMBERS, max_epochs=1)
    means = population.stacked_buffers()["features.1.running_mean"]
    assert means.shape[0] == 3 and not torch.allclose(means[0], means[1])


def test_dropout_draws_its_own_masks_per_member(tmp_path):
    same = dict(lr=1e-2, weight_decay=0.0, head_lr=1e-2, dropout=0.5)
    population = _population(tmp_path, [same, same], max_epochs=1)
    head = population.stacked()["head.weight"]
    assert not torch.allclose(head[0], head[1])  # identical members, different masks
    without = _population(tmp_path, [{**same, "dropout": 0.0}] * 2, max_epochs=1)
    head = without.stacked()["head.weight"]
    assert torch.equal(head[0], head[1])


def test_gradient_clipping_is_per_member(tmp_path):
    # One member's large gradients must not shrink another's: clipped alone, each member
    # equals its own run clipped by Lightning.
    members = [
        dict(lr=1e-2, weight_decay=0.0, head_lr=1e-2, optimizer="sgd", scheduler="constant"),
        dict(lr=5e-1, weight_decay=0.0, head_lr=5e-1, optimizer="sgd", scheduler="constant"),
    ]
    population = _population(tmp_path, members, clip=0.05, max_epochs=1)
    for i, hparams in enumerate(members):
        L.seed_everything(0)
        module = SmallCNN(**hparams)
        L.seed_everything(0)
        L.Trainer(
            default_root_dir=tmp_path, **{**TRAINER, "max_epochs": 1, "gradient_clip_val": 0.05}
        ).fit(module, datamodule=Shapes())
        theirs = population.member_state_dict(i)
        assert torch.allclose(theirs["head.weight"], module.head.weight.detach(), atol=1e-10)
    unclipped = _population(tmp_path, members, max_epochs=1)  # the clip did bite
    assert not torch.allclose(
        unclipped.member_state_dict(1)["head.weight"],
        population.member_state_dict(1)["head.weight"],
    )


class _Batches(L.Callback):
    """Records every training batch by population epoch: what a replay feeds a reference."""

    def __init__(self):
        self.by_epoch: dict[int, list] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.by_epoch.setdefault(trainer.current_epoch, []).append([t.clone() for t in batch])


class _Replay(Shapes):
    """The population's batches from ``start`` on, one population epoch per epoch."""

    def __init__(self, batches: _Batches, start: int):
        super().__init__()
        self.batches, self.start = batches, start

    def train_dataloader(self):
        # batch_size=None: each item is already a batch (a bare list reads as N loaders)
        return DataLoader(
            self.batches.by_epoch[self.trainer.current_epoch + self.start], batch_size=None
        )


@pytest.mark.parametrize(
    "scheduler,kwargs",
    [
        ("cosine", {}),
        ("plateau", {"warmup_steps": 10, "patience": 0, "factor": 0.5, "mode": "min"}),
    ],
)
def test_a_member_that_joins_later_equals_its_run_fed_the_same_batches(tmp_path, scheduler, kwargs):
    # Two members start; after population epoch 0 a third joins (its own epoch 0, step 0, its
    # schedule built for its own 3 epochs); the first two complete after epoch 2 and leave.
    # The newcomer equals a plain Lightning run of it fed the batches it saw; the first
    # members still equal their own runs (the join took nothing from them).
    members = [
        {**m, "optimizer": "adamw", "scheduler": scheduler, "scheduler_kwargs": kwargs}
        for m in MEMBERS
    ]
    modules = []
    for hparams in members[:2]:
        L.seed_everything(0)
        modules.append(SmallCNN(**hparams))
    population = ModulePopulation(modules)
    population.stop_when_empty = False
    done: dict[int, tuple[dict, dict]] = {}

    def between_epochs(pop):
        finished = [e == 3 for e in pop.epochs_trained]
        for position, index in enumerate(pop.alive):
            if finished[position]:
                done[index] = (
                    pop.member_state_dict(position),
                    {k: float(v[position]) for k, v in pop.member_metrics.items()},
                )
        pop.drop(torch.tensor([not f for f in finished]), reason="complete")
        if pop.trainer.current_epoch == 0:
            state = torch.get_rng_state()
            L.seed_everything(0)
            newcomer = SmallCNN(**members[2])
            torch.set_rng_state(state)  # the population's data order goes on untouched
            assert pop.join([newcomer], ["trial_2"]) == [2]
        if not pop.alive:
            pop.trainer.should_stop = True

    population.on_epoch_end = between_epochs
    batches = _Batches()

    class RunsOn(L.Callback):  # the population outlives each member's 3 epochs
        def on_train_start(self, trainer, pl_module):
            trainer.fit_loop.max_epochs = -1

    L.seed_everything(0)
    trainer = L.Trainer(default_root_dir=tmp_path, callbacks=[batches, RunsOn()], **TRAINER)
    trainer.fit(population, datamodule=Shapes())
    assert sorted(done) == [0, 1, 2] and trainer.current_epoch == 4
    assert population.member_names == ["member_0", "member_1", "trial_2"]
    for index in (0, 2):
        L.seed_everything(0)
        module = SmallCNN(**members[index])
        if index == 0:
            reference, logged = _one_by_one(tmp_path, **members[0])
        else:
            reference = L.Trainer(
                default_root_dir=tmp_path, reload_dataloaders_every_n_epochs=1, **TRAINER
            )
            reference.fit(module, datamodule=_Replay(batches, start=1))
            reference, logged = module, {k: float(v) for k, v in reference.callback_metrics.items()}
        state, metrics = done[index]
        for name, value in reference.state_dict().items():
            if not name.startswith("top1."):
                assert torch.allclose(state[name].to(value.dtype), value, rtol=0, atol=1e-10), (
                    index,
                    name,
                )
        for name in ("valid/nll", "valid/top1", "train/nll"):
            assert metrics[name] == pytest.approx(logged[name], abs=1e-10), (index, name)


@pytest.mark.parametrize(
    "scheduler,kwargs",
    [("cosine", {"warmup_steps": 10}), ("plateau", {"patience": 0, "factor": 0.5, "mode": "min"})],
)
def test_copy_member_is_bitwise_and_the_copy_trains_on_as_its_source(tmp_path, scheduler, kwargs):
    # PBT's exploit on a user's module: after epoch 0 member 2 takes member 0's parameters,
    # BatchNorm statistics, optimizer state, shadow optimizer and schedule state. Both then see
    # the same batches with the same hyperparameters: bit for bit equal to the end.
    # every member with weight decay: their optimizers group the parameters alike
    members = [
        {
            **m,
            "weight_decay": m["weight_decay"] or 3e-3,
            "optimizer": "adamw",
            "scheduler": scheduler,
            "scheduler_kwargs": kwargs,
        }
        for m in MEMBERS
    ]
    modules = []
    for hparams in members:
        L.seed_everything(0)
        modules.append(SmallCNN(**hparams))
    population = ModulePopulation(modules)
    population.on_epoch_end = lambda pop: pop.current_epoch == 0 and pop.copy_member(0, 2)
    L.seed_everything(0)
    L.Trainer(default_root_dir=tmp_path, **TRAINER).fit(population, datamodule=Shapes())
    first, third = population.member_state_dict(0), population.member_state_dict(2)
    assert all(torch.equal(first[k], third[k]) for k in first)
    for update in population.updates:
        for state in update.state:
            for value in state.values():
                assert torch.equal(value[0], value[2])
    lrs = [
        [g.get("initial_lr", g["lr"]) for g in s["optimizer"].param_groups]
        for s in population.shadows
    ]  # the base lrs: cosine ends at 0 for all
    assert lrs[0] == lrs[2] != lrs[1]
    assert float(population.member_metrics["valid/nll"][0]) == float(
        population.member_metrics["valid/nll"][2]
    )
    plain = _population(tmp_path, members)
    assert not torch.equal(plain.member_state_dict(2)["head.weight"], third["head.weight"])


@pytest.mark.parametrize("scheduler", ["cosine", "step"])
def test_exploring_a_copy_leaves_its_source_schedule_as_it_was(tmp_path, scheduler):
    # PBT: member 2 copies member 0, then its lr is halved. Member 0's schedule must not
    # change with it: the copy holds lists of its own (a torch scheduler's state_dict hands
    # out its base_lrs list itself, which an explore rescales in place).
    members = [
        {**m, "weight_decay": m["weight_decay"] or 3e-3, "optimizer": "adamw"}
        | {"scheduler": scheduler}
        for m in MEMBERS
    ]
    seen = {}

    def exploit(pop):
        if pop.current_epoch == 0:
            base = [list(c["scheduler"].base_lrs) for c in pop.shadows[0]["schedulers"]]
            pop.copy_member(0, 2)
            pop.rescale_member(2, lr=0.5)
            seen["source"] = (base, [c["scheduler"].base_lrs for c in pop.shadows[0]["schedulers"]])
            seen["copy"] = [c["scheduler"].base_lrs for c in pop.shadows[2]["schedulers"]]

    modules = []
    for hparams in members:
        L.seed_everything(0)
        modules.append(SmallCNN(**hparams))
    population = ModulePopulation(modules)
    population.on_epoch_end = exploit
    L.Trainer(default_root_dir=tmp_path, **{**TRAINER, "max_epochs": 1}).fit(
        population, datamodule=Shapes()
    )
    before, after = seen["source"]
    assert after == before
    assert seen["copy"] == [[lr * 0.5 for lr in lrs] for lrs in before]


class ItemInStep(SmallCNN):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if loss.item() > 100:  # data-dependent Python control flow
            raise RuntimeError("unreachable")
        return loss


def test_a_step_that_reads_a_value_to_python_is_not_vmappable(tmp_path):
    L.seed_everything(0)
    with pytest.raises(
        NotVmappable, match=r"training_step cannot run once per member under vmap:.*item"
    ):
        _fit_modules(tmp_path, [ItemInStep(), ItemInStep()])


def test_both_population_classes_refuse_an_unknown_setting_with_the_close_match():
    # The settings both classes share are declared once (MemberSettings, taken as **kwargs):
    # a misspelt one is still Python's TypeError, not silently dropped.
    from lit_optim.population import PopulationTask

    with pytest.raises(TypeError, match="'gradient_clip_vall'; did you mean 'gradient_clip_val'"):
        ModulePopulation([SmallCNN(), SmallCNN()], gradient_clip_vall=1.0)
    with pytest.raises(TypeError, match="PopulationTask.*'member_name'; did you mean"):
        PopulationTask((4,), 2, [{"lr": 0.1}], member_name=["a"])
    built = ModulePopulation([SmallCNN(), SmallCNN()], gradient_clip_val=0.5, member_names="ab")
    assert (built.gradient_clip_val, built.member_names) == (0.5, ["a", "b"])


def _fit_modules(tmp_path, modules):
    L.Trainer(default_root_dir=tmp_path, **{**TRAINER, "max_epochs": 1}).fit(
        ModulePopulation(modules), datamodule=Shapes()
    )


def test_an_optimizer_without_a_population_rule_is_not_vmappable(tmp_path):
    with pytest.raises(NotVmappable, match="optimizer LAMB has no population rule"):
        _fit_modules(tmp_path, [SmallCNN(optimizer="lamb"), SmallCNN(optimizer="lamb")])


# -- through lit-tune run --population ------------------------------------------------------


def _tune(
    tmp_path,
    monkeypatch,
    space: dict,
    *args: str,
    init_args: dict | None = None,
    trainer: dict | None = None,
    study: str = "s",
):
    import yaml

    from tuning.cli import main as lit_tune

    tmp_path.mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lit-tune"])
    (tmp_path / "recipe.yaml").write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,
                "model": {
                    "class_path": "test_population_module.SmallCNN",
                    "init_args": init_args or {},
                },
                "data": {"class_path": "test_population_module.Shapes"},
                "trainer": {"max_epochs": 2, **(trainer or {})},
            }
        )
    )
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            study,
            "--accelerator",
            "cpu",
            "--pruner",
            "none",
            *args,
        ]
    )
    import optuna

    return optuna.load_study(study_name=study, storage=f"sqlite:///runs/{study}/study.db")


GRID = {
    "metric": "valid/nll",
    "direction": "minimize",
    "params": {"model.lr": [1e-2, 3e-3, 2e-2, 5e-3], "model.head_lr": [1e-2, 3e-2]},
}


def test_lit_tune_population_of_the_users_module_equals_one_by_one(tmp_path, monkeypatch, capsys):
    trainer = {"precision": "64-true"}
    alone = _tune(
        tmp_path / "a",
        monkeypatch,
        GRID,
        "--sampler",
        "grid",
        "--n-trials",
        "8",
        "--population",
        "1",
        trainer=trainer,
    )
    together = _tune(
        tmp_path / "b",
        monkeypatch,
        GRID,
        "--sampler",
        "grid",
        "--n-trials",
        "8",
        "--population",
        "8",
        trainer=trainer,
    )
    err = capsys.readouterr().err
    assert "train as one population of 8" in err, err
    key = lambda t: (t.params["model.lr"], t.params["model.head_lr"])  # noqa: E731
    expected = {key(t): t for t in alone.trials}
    assert len(together.trials) == len(expected) == 8
    for trial in together.trials:
        reference = expected[key(trial)]
        assert trial.value == pytest.approx(reference.value, abs=1e-10)
        # each trial's reported curve is its own member's
        assert trial.intermediate_values == pytest.approx(reference.intermediate_values, abs=1e-10)


def test_lit_tune_population_with_dropout_and_batch_norm(tmp_path, monkeypatch, capsys):
    space = {
        "metric": "valid/top1",  # direction from the MulticlassAccuracy logged under it
        "params": {"model.lr": "log[1e-3, 1e-1]", "model.weight_decay": "log[1e-5, 1e-1]"},
    }
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = _tune(
            tmp_path,
            monkeypatch,
            space,
            "--n-trials",
            "8",
            "--population",
            "8",
            init_args={"dropout": 0.3},
        )
    err = capsys.readouterr().err
    assert "train as one population of 8" in err and "one by one" not in err, err
    # torch.func's notice about its own internals (bincount in the Metric's update) stays in
    assert not [w for w in caught if "performance drop" in str(w.message)]
    assert study.direction.name == "MAXIMIZE"
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(finished) == 8 and all(len(t.intermediate_values) == 2 for t in finished)
    assert len({t.value for t in finished}) > 1  # each trial reports its own member's value


def test_lit_tune_falls_back_one_by_one_for_a_step_that_cannot_vmap(tmp_path, monkeypatch, capsys):
    import yaml

    study = None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipe.yaml").write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,
                "model": {"class_path": "test_population_module.ItemInStep"},
                "data": {"class_path": "test_population_module.Shapes"},
                "trainer": {"max_epochs": 1},
            }
        )
    )
    from tuning.cli import main as lit_tune

    monkeypatch.setattr("sys.argv", ["lit-tune"])
    (tmp_path / "space.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "valid/nll",
                "direction": "minimize",
                "params": {"model.lr": "log[1e-3, 1e-1]"},
            }
        )
    )
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--study",
            "f",
            "--accelerator",
            "cpu",
            "--n-trials",
            "4",
            "--population",
            "4",
        ]
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "run one by one" in line]
    assert len(lines) == 1 and ".item()" in lines[0], err
    import optuna

    study = optuna.load_study(study_name="f", storage="sqlite:///runs/f/study.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4


def test_members_that_group_differently_train_on_the_groups_they_share():
    # With weight decay a member splits biases off; without, one group: the population steps
    # each parameter with the hyperparameters of the group it sits in, member by member.
    from lit_optim.population.module_population import NotVmappable, _common_groups

    groups = _common_groups([[("a", "b"), ("c",)], [("a", "b", "c")], [("a",), ("b", "c")]])
    assert groups == [(("a",), (0, 0, 0)), (("b",), (0, 0, 1)), (("c",), (1, 0, 1))]
    with pytest.raises(NotVmappable, match="train different parameters"):
        _common_groups([[("a", "b")], [("a",)]])


def test_lit_tune_pbt_on_the_users_module_and_its_exported_trial_replays(
    tmp_path, monkeypatch, capsys
):
    # PBT on a user's CNN (BatchNorm, a head param group with its own lr, cosine with warmup):
    # each exploit copies a member in memory and rescales every group's lr and weight decay;
    # the exported recipe of a later generation, fitted alone, ends where its trial ended.
    from lit_optim.cli import cli_objects
    from tuning.runner.study import export_trial
    from tuning.runner.trainable import trial_trainer_args

    space = {
        "metric": "valid/nll",
        "direction": "minimize",
        "params": {"model.lr": "log[1e-3, 3e-2]", "model.weight_decay": "log[1e-4, 1e-2]"},
    }
    study = _tune(
        tmp_path,
        monkeypatch,
        space,
        "--algorithm",
        "pbt",
        "--n-trials",
        "7",
        "--population",
        "3",
        "--pbt-interval",
        "1",
        "--seed",
        "2",
        init_args={"scheduler_kwargs": {"warmup_steps": 3}},
        trainer={"precision": "64-true", "max_epochs": 3},
    )
    assert "by population based training" in capsys.readouterr().err
    children = [t for t in study.trials if t.state == TrialState.COMPLETE and "pbt" in t.user_attrs]
    assert children, [(t.number, t.state, t.user_attrs) for t in study.trials]
    child = max(children, key=lambda t: t.user_attrs["pbt"]["generation"])
    path = export_trial(study, child, tmp_path / "replay.yaml")
    cli = cli_objects(path, *trial_trainer_args("cpu"))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert float(cli.trainer.callback_metrics["valid/nll"]) == pytest.approx(
        child.value, rel=1e-8, abs=0
    )

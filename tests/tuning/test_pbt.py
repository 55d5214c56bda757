"""`lit-tune run --algorithm pbt`, run as a user would: population based training inside one
vectorized population, each exploit a new Optuna trial with its line's record; the exported
recipe replays a PBT trial."""

from __future__ import annotations

import math

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tuning.cli import main as lit_tune

SPACE = {
    "metric": "val_acc",
    "direction": "maximize",
    "params": {"model.lr": "log[1e-3, 3e-2]", "model.weight_decay": "log[1e-6, 1e-3]"},
}


@pytest.fixture
def space(tune_dir):
    (tune_dir / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return tune_dir


def _run(*args):
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "space.yaml",
            "--accelerator",
            "cpu",
            "--algorithm",
            "pbt",
            *args,
        ]
    )


def _study(name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///runs/{name}/study.db")


def _pbt_args(study):
    return (
        "--study",
        study,
        "--n-trials",
        "6",
        "--population",
        "4",
        "--trainer.max_epochs",
        "6",
        "--pbt-interval",
        "2",
        "--seed",
        "3",
    )


def test_pbt_replaces_the_bottom_with_explored_copies_of_the_top_as_new_trials(space, capsys):
    # 4 members, 6 epochs, an exploit every 2: after epochs 2 and 4 the worst member's slot
    # takes a copy of the best one's (quantile 0.25 of 4: one each time).
    _run(*_pbt_args("p"))
    err = capsys.readouterr().err
    assert "train as one population of 4 by population based training" in err
    study = _study("p")
    trials = study.trials
    assert len(trials) == 6 and {t.state for t in trials} <= {
        TrialState.COMPLETE,
        TrialState.PRUNED,
    }
    children = [t for t in trials if "pbt" in t.user_attrs]
    assert [t.user_attrs["pbt"]["epoch"] for t in children] == [2, 4]
    assert study.user_attrs["algorithm"] == "pbt"
    for child in children:
        record = child.user_attrs["pbt"]
        parent = trials[record["parent"]]
        # The slot's previous trial ended PRUNED then, naming its parent and its successor.
        replaced = [
            t
            for t in trials
            if t.user_attrs.get("pruned_reason", "").endswith(f"as trial {child.number}")
        ]
        assert len(replaced) == 1 and replaced[0].state == TrialState.PRUNED
        assert f"took trial {parent.number}'s state" in replaced[0].user_attrs["pruned_reason"]
        assert max(replaced[0].intermediate_values) == record["epoch"] - 1
        # The parent was a top member then: no member in that population was better.
        epoch = record["epoch"] - 1
        ranked = [
            t.intermediate_values[epoch]
            for t in trials
            if t.number < child.number
            and epoch in t.intermediate_values
            and t.intermediate_values.get(epoch) is not None
        ]
        assert parent.intermediate_values[epoch] == max(ranked)
        # Its curve starts as the parent's, then goes on for the rest of the run.
        assert {s: v for s, v in child.intermediate_values.items() if s < record["epoch"]} == {
            s: v for s, v in parent.intermediate_values.items() if s < record["epoch"]
        }
        assert sorted(child.intermediate_values) == list(range(6))
        # Explored: resampled within the range or the parent's value x0.8 / x1.2.
        for path, low, high in (("model.lr", 1e-3, 3e-2), ("model.weight_decay", 1e-6, 1e-3)):
            value, before = child.params[path], parent.params[path]
            assert low <= value <= high
            assert (
                any(math.isclose(value, before * f) for f in (0.8, 1.2))
                or value in (low, high)
                or not math.isclose(value, before)
            )
        assert record["changes"][-1] == {
            "epoch": record["epoch"],
            "lr": child.params["model.lr"],
            "weight_decay": child.params["model.weight_decay"],
        }
        assert record["generation"] == parent.user_attrs.get("pbt", {}).get("generation", 0) + 1
        recipe = (space / "runs" / "p" / f"trial_{child.number}" / "recipe.yaml").read_text()
        assert "HyperparameterSchedule" in recipe
    # The lineage: every slot of the population is held by one trial at a time from epoch 0
    # to 6, each exploit's trial starting where its slot's previous trial ended.
    from tuning.reports.lineage import lineage_segments

    segments = lineage_segments(trials)
    assert sorted(s.trial for s in segments) == list(range(6))
    for slot in range(4):
        held = sorted((s.start, s.end) for s in segments if s.slot == slot)
        assert held[0][0] == 0 and held[-1][1] == 6
        assert all(a[1] == b[0] for a, b in zip(held, held[1:])), held
    lit_tune(["report", "--study", "p"])
    assert (space / "runs" / "p" / "report" / "pbt_lineage.png").stat().st_size > 10_000


def test_the_exported_recipe_of_a_pbt_trial_replays_it(space):
    # float64, no guard: the deepest PBT trial that completed, fitted alone from its exported
    # recipe (its line's first lr and weight decay, then HyperparameterSchedule's changes at
    # the epochs the population made them), ends where the trial ended.
    from lit_optim.cli import cli_objects
    from tuning.runner.study import export_trial
    from tuning.runner.trainable import trial_trainer_args

    recipe = yaml.safe_load((space / "recipe.yaml").read_text())
    recipe["trainer"]["precision"] = "64-true"
    recipe["trainer"]["callbacks"] = []
    recipe["model"]["scheduler"] = "cosine"
    recipe["model"]["scheduler_kwargs"] = {"warmup_steps": 5}
    (space / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _run(
        "--study",
        "r",
        "--n-trials",
        "10",
        "--population",
        "4",
        "--trainer.max_epochs",
        "4",
        "--pbt-interval",
        "1",
        "--pbt-quantile",
        "0.5",
        "--seed",
        "1",
    )
    study = _study("r")
    lines = [t for t in study.trials if t.state == TrialState.COMPLETE and "pbt" in t.user_attrs]
    # Which line ends deepest depends on the draws; a line of two changes is replayed bit for
    # bit in tests/population/test_population_task.py.
    deepest = max(lines, key=lambda t: t.user_attrs["pbt"]["generation"])
    assert deepest.user_attrs["pbt"]["generation"] >= 1
    path = export_trial(study, deepest, space / "replay.yaml")
    cli = cli_objects(path, *trial_trainer_args("cpu"))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert float(cli.trainer.callback_metrics["val_loss"]) == pytest.approx(
        deepest.user_attrs["val_loss"], rel=1e-8, abs=0
    )
    assert float(cli.trainer.callback_metrics["val_acc"]) == pytest.approx(deepest.value, abs=1e-7)


@pytest.mark.parametrize(
    ("args", "space_params", "message"),
    [
        (
            [],
            {"data.batch_size": [32, 64], "model.optimizer_kwargs.momentum": "uniform[0.5, 0.9]"},
            "--algorithm pbt explores the model's lr and weight_decay while members train; "
            "the space has no range for either",
        ),
        (
            ["--pbt-interval", "0"],
            None,
            "--pbt-interval must be between 1 and 5 epochs (the run trains 6), got 0",
        ),
        (
            ["--pbt-interval", "6"],
            None,
            "--pbt-interval must be between 1 and 5 epochs (the run trains 6), got 6",
        ),
        (["--pbt-quantile", "0.7"], None, "--pbt-quantile must be above 0 and at most 0.5"),
        (["--pbt-quantile", "0"], None, "--pbt-quantile must be above 0 and at most 0.5"),
        (["--sampler", "grid"], {"model.lr": [0.01, 0.02]}, "--algorithm pbt explores"),
        (
            ["--sampler", "random", "--population", "1"],
            None,
            "--algorithm pbt needs a population of at least 2 (a member copies another), "
            "got --population 1",
        ),
        (["--algorithm", "pbtt"], None, "unknown algorithm 'pbtt'; did you mean 'pbt'?"),
    ],
)
def test_bad_pbt_input_is_one_line_before_anything_is_written(
    space, capsys, args, space_params, message
):
    if space_params is not None:
        (space / "space.yaml").write_text(yaml.safe_dump({**SPACE, "params": space_params}))
    with pytest.raises(SystemExit) as info:
        _run("--study", "bad", "--n-trials", "4", "--trainer.max_epochs", "6", *args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (space / "runs").exists()


def test_a_pbt_study_resumed_with_another_algorithm_is_one_line_and_left_as_it_was(space, capsys):
    _run(
        "--study",
        "s",
        "--n-trials",
        "2",
        "--population",
        "2",
        "--trainer.max_epochs",
        "2",
        "--pbt-interval",
        "1",
    )
    before = (space / "runs" / "s" / "study.db").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        lit_tune(
            [
                "run",
                "--recipe",
                "recipe.yaml",
                "--space",
                "space.yaml",
                "--accelerator",
                "cpu",
                "--study",
                "s",
                "--n-trials",
                "4",
                "--trainer.max_epochs",
                "2",
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and "made with another algorithm ('pbt' → 'optuna')" in err
    assert len(err.strip().splitlines()) == 1, err
    assert (space / "runs" / "s" / "study.db").read_bytes() == before


class _Rng:
    """A random.Random whose draws are given: what ``pairs`` and ``explore`` do with each."""

    def __init__(self, randoms=(), choices=(), uniforms=()):
        self.randoms, self.choices, self.uniforms = list(randoms), list(choices), list(uniforms)

    def random(self):
        return self.randoms.pop(0)

    def choice(self, options):
        return options[self.choices.pop(0)]

    def uniform(self, low, high):
        return self.uniforms.pop(0)


def test_pairs_copy_the_top_quantile_into_the_bottom_one_nan_first():
    from tuning.runner.pbt import pairs

    values = [0.5, float("nan"), 0.9, 0.7, 0.1, 0.8, 0.3, 0.6]
    # 8 members, quantile 0.25: two. Top: 0.9 (2), 0.8 (5); bottom: 0.1 (4), nan (1).
    assert pairs(values, True, 0.25, _Rng(choices=[0, 1])) == [(2, 4), (5, 1)]
    # Minimizing: top 0.1 (4), 0.3 (6); bottom 0.9 (2) and nan (1).
    assert pairs(values, False, 0.25, _Rng(choices=[1, 0])) == [(6, 2), (4, 1)]
    # Ray's size: ceil(n·q), at most half; none for one member.
    assert len(pairs(values[:3], True, 0.5, _Rng(choices=[0]))) == 1
    assert pairs([0.3], True, 0.5, _Rng()) == []


def test_explore_scales_or_resamples_within_the_range_and_keeps_the_rest():
    from tuning.runner.pbt import explore
    from tuning.search.space import parse_space

    space = parse_space(
        {
            "params": {
                "model.lr": "log[1e-4, 1e-1]",
                "model.weight_decay": "uniform[1e-5, 1e-2]",
                "model.optimizer_kwargs.momentum": "uniform[0.5, 0.9]",
            }
        }
    )
    parent = {"model.lr": 0.09, "model.weight_decay": 1e-3, "model.optimizer_kwargs.momentum": 0.7}
    # lr: not resampled (0.5 >= 0.25), x1.2 -> 0.108, kept at the range's top; weight decay:
    # resampled (0.1 < 0.25) uniformly. Momentum is not explored (a param group cannot change
    # it mid-run for every optimizer): inherited.
    out = explore(parent, space, _Rng(randoms=[0.5, 0.1], choices=[1], uniforms=[4e-3]))
    assert out == {
        "model.lr": 0.1,
        "model.weight_decay": 4e-3,
        "model.optimizer_kwargs.momentum": 0.7,
    }
    # A log range resamples in log space.
    out = explore(parent, space, _Rng(randoms=[0.1, 0.9], choices=[0], uniforms=[math.log(1e-3)]))
    assert out["model.lr"] == pytest.approx(1e-3) and out["model.weight_decay"] == 0.8e-3


def test_two_workers_each_run_pbt_populations_on_one_journal_study_and_split_the_budget(space):
    _run(
        "--study",
        "w",
        "--n-trials",
        "9",
        "--population",
        "2",
        "--n-workers",
        "2",
        "--trainer.max_epochs",
        "4",
        "--pbt-interval",
        "1",
    )
    study = optuna.load_study(
        study_name="w",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend("runs/w/journal.log")
        ),
    )
    trials = study.trials
    assert len(trials) == 9
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert any("pbt" in t.user_attrs for t in trials)
    # Each exploit's parent trained in the same population as its child.
    for child in (t for t in trials if "pbt" in t.user_attrs):
        parent = trials[child.user_attrs["pbt"]["parent"]]
        assert (
            parent.user_attrs["population"]["first_trial"]
            == child.user_attrs["population"]["first_trial"]
        )
        assert parent.user_attrs["pid"] == child.user_attrs["pid"]


def test_a_member_that_diverges_is_replaced_at_once_by_a_copy_of_a_top_one(space):
    # lr up to 100 with Adam: some of the first members blow up in their first epochs. PBT
    # does not wait for its interval (3) nor leave the slot empty: the epoch a member
    # diverges, its slot takes an explored copy of a good one; every slot is held from epoch
    # 0 to the end.
    (space / "space.yaml").write_text(
        yaml.safe_dump({**SPACE, "params": {"model.lr": "log[1e-3, 100]"}})
    )
    _run(
        "--study",
        "d",
        "--n-trials",
        "12",
        "--population",
        "4",
        "--trainer.max_epochs",
        "4",
        "--pbt-interval",
        "3",
        "--seed",
        "0",
        "--sampler",
        "random",
    )
    trials = _study("d").trials
    diverged = [t for t in trials if "pbt: diverged:" in t.user_attrs.get("pruned_reason", "")]
    assert diverged, [(t.number, t.state, t.user_attrs.get("pruned_reason")) for t in trials]
    from tuning.reports.lineage import lineage_segments

    # The population where a member was replaced (in another, all may diverge at once, with
    # no good member to copy: they leave).
    where = diverged[0].user_attrs["population"]["first_trial"]
    segments = [s for s in lineage_segments(trials) if s.population == where]
    for slot in range(4):
        held = sorted((s.start, s.end) for s in segments if s.slot == slot)
        assert held[0][0] == 0 and held[-1][1] == 4, (slot, held)
        assert all(a[1] == b[0] for a, b in zip(held, held[1:])), (slot, held)
    for trial in diverged:  # replaced the epoch after its last report, not at the interval
        child = next(
            t
            for t in trials
            if t.user_attrs.get("pbt", {}).get("slot") is not None
            and trial.user_attrs["pruned_reason"].endswith(f"as trial {t.number}")
        )
        assert child.user_attrs["pbt"]["epoch"] == max(trial.intermediate_values) + 1
        parent = trials[child.user_attrs["pbt"]["parent"]]
        assert "diverged" not in parent.user_attrs.get("pruned_reason", "")


def test_a_pbt_study_interrupted_after_an_interval_resumes_from_it_as_if_never_stopped(
    space, monkeypatch, capsys
):
    # The same study twice: once run through; once stopped by a real SIGINT right after its
    # population saved its state at epoch 2 (after that interval's exploit), then rerun. The
    # rerun asks a new trial for each of the 4 interrupted members (they failed for rerun),
    # with their values, loads their state and goes on from epoch 3: every later value, the
    # epoch-4 exploit and the finished trials equal the run that was never stopped.
    import os
    import signal

    from tuning.runner.population import _Report

    _run(*_pbt_args("whole"))
    save = _Report._save_snapshot

    def save_then_interrupt(self, pl_module):
        save(self, pl_module)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(_Report, "_save_snapshot", save_then_interrupt)
    with pytest.raises(SystemExit) as stop:
        _run(*_pbt_args("cut"))
    assert stop.value.code == 130
    snapshots = list((space / "runs" / "cut" / "pbt").glob("population_*.pt"))
    assert len(snapshots) == 1
    monkeypatch.setattr(_Report, "_save_snapshot", save)
    capsys.readouterr()
    _run(*_pbt_args("cut"))
    err = capsys.readouterr().err
    assert "resume trials 0, 1, 2, 4 from their population's state at epoch 2" in err, err
    assert not list((space / "runs" / "cut" / "pbt").glob("*"))  # ended: nothing to resume

    whole, cut = _study("whole").trials, _study("cut").trials
    lost = [t for t in cut if t.state == TrialState.FAIL]
    assert [t.number for t in lost] == [0, 1, 2, 4] and all(t.user_attrs["rerun"] for t in lost)
    counted = [t for t in cut if t.state != TrialState.FAIL]
    assert len(counted) == 6  # the budget, exactly
    resumed = [t for t in cut if t.user_attrs.get("pbt", {}).get("resumed")]
    assert [t.user_attrs["pbt"]["parent"] for t in resumed] == [0, 1, 2, 4]
    for trial in resumed:  # the line's values, then its own from epoch 2 on
        old = cut[trial.user_attrs["pbt"]["parent"]]
        assert trial.params == old.params
        assert trial.user_attrs["pbt"]["epoch"] == 2
        assert {s: v for s, v in trial.intermediate_values.items() if s < 2} == {
            s: v for s, v in old.intermediate_values.items() if s < 2
        }

    def outcome(trials):  # every told trial: its state, params and whole curve
        return sorted(
            (t.state.name, sorted(t.params.items()), sorted(t.intermediate_values.items()))
            for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        )

    assert len(outcome(whole)) == 6
    assert outcome(cut) == outcome(whole)
    # A resumed trial exports as the line it continues (its changes, none at the resume),
    # and the report draws the resumed slots.
    from tuning.runner.study import export_trial

    done = next(t for t in resumed if t.state == TrialState.COMPLETE)
    exported = yaml.safe_load(export_trial(_study("cut"), done, space / "x.yaml").read_text())
    (schedule,) = [
        c for c in exported["trainer"]["callbacks"] if "HyperparameterSchedule" in c["class_path"]
    ]
    assert schedule["init_args"]["changes"] == done.user_attrs["pbt"]["changes"]
    lit_tune(["report", "--study", "cut"])
    assert (space / "runs" / "cut" / "report" / "pbt_lineage.png").stat().st_size > 10_000
    exploits = [t.user_attrs["pbt"] for t in cut if "pbt" in t.user_attrs]
    assert [(r["epoch"], r.get("resumed", False)) for r in exploits].count((4, False)) == 1


def test_a_snapshot_that_cannot_be_read_is_one_line_and_the_run_starts_afresh(space, capsys):
    # A truncated or foreign file where a snapshot would be: said in one line, deleted, and
    # the study runs as if there were none (nothing to resume).
    folder = space / "runs" / "j" / "pbt"
    folder.mkdir(parents=True)
    (folder / "population_0.pt").write_bytes(b"not a snapshot")
    _run(*_pbt_args("j"))
    err = capsys.readouterr().err
    assert "population_0.pt cannot be resumed from (" in err and "Traceback" not in err
    assert "resume trials" not in err
    assert not list(folder.iterdir())
    trials = _study("j").trials
    assert len(trials) == 6 and all(t.state != TrialState.FAIL for t in trials)

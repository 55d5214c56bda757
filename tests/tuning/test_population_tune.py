"""`lit-tune run --population N`, run as a user would."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from support import ROOT
from tuning.cli import main as lit_tune


@pytest.fixture
def space(tune_dir):
    (tune_dir / "space.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "val_acc",
                "direction": "maximize",
                "params": {"model.lr": "log[1e-3, 3e-2]", "model.weight_decay": "log[1e-6, 1e-3]"},
            }
        )
    )
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
            "--pruner",
            "none",
            *args,
        ]
    )


def test_a_population_study_finishes_its_budget_with_one_trial_per_member(space):
    _run("--study", "pop", "--n-trials", "6", "--population", "3")
    study = optuna.load_study(study_name="pop", storage="sqlite:///runs/pop/study.db")
    assert len(study.trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({(t.params["model.lr"], t.params["model.weight_decay"]) for t in study.trials}) == 6
    for t in study.trials:
        assert t.intermediate_values and 0 < t.value <= 1 and "val_loss" in t.user_attrs
    header = (space / "runs" / "pop" / "trial_0" / "recipe.yaml").read_text().splitlines()[0]
    assert "population of 3" in header  # trained together, not one by one


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--population", "0"], "--population: must be auto or an integer >= 1, got '0'"),
        (["--population", "many"], "--population: must be auto or an integer >= 1, got 'many'"),
    ],
)
def test_bad_population_input_is_one_line(space, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        _run("--study", "bad", "--n-trials", "4", *args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err
    assert not (space / "runs").exists()


def test_workers_each_train_populations_and_use_the_budget_once(space):
    _run("--study", "w", "--n-trials", "6", "--population", "3", "--n-workers", "2")
    study = optuna.load_study(
        study_name="w",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend("runs/w/journal.log")
        ),
    )
    assert len(study.trials) == 6 and all(t.state == TrialState.COMPLETE for t in study.trials)
    # A worker may take every batch when the other starts late: at most two processes told them
    assert 1 <= len({t.user_attrs["pid"] for t in study.trials}) <= 2
    headers = [
        (space / "runs" / "w" / f"trial_{t.number}" / "recipe.yaml").read_text().splitlines()[0]
        for t in study.trials
    ]
    assert all("population" in h for h in headers), headers


def _grid_space(tune_dir):
    (tune_dir / "grid.yaml").write_text(
        yaml.safe_dump(
            {
                "metric": "val_acc",
                "direction": "maximize",
                "params": {"model.lr": [1e-3, 1e-2], "model.weight_decay": [1e-5, 1e-4]},
            }
        )
    )


def test_a_grid_population_walks_each_point_once_and_ends_with_the_grid(space):
    _grid_space(space)
    lit_tune(
        [
            "run",
            "--recipe",
            "recipe.yaml",
            "--space",
            "grid.yaml",
            "--accelerator",
            "cpu",
            "--pruner",
            "none",
            "--sampler",
            "grid",
            "--study",
            "g",
            "--n-trials",
            "10",
            "--population",
            "3",
        ]
    )
    study = optuna.load_study(study_name="g", storage="sqlite:///runs/g/study.db")
    points = [(t.params["model.lr"], t.params["model.weight_decay"]) for t in study.trials]
    # 3 + 1, not 3 + 3 with two running points handed out again, and not the budget of 10
    assert sorted(points) == [(1e-3, 1e-5), (1e-3, 1e-4), (1e-2, 1e-5), (1e-2, 1e-4)]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    header = (space / "runs" / "g" / "trial_0" / "recipe.yaml").read_text().splitlines()[0]
    assert "population of 3" in header


def test_a_population_larger_than_the_grid_is_one_line(space, capsys):
    _grid_space(space)
    with pytest.raises(SystemExit) as info:
        lit_tune(
            [
                "run",
                "--recipe",
                "recipe.yaml",
                "--space",
                "grid.yaml",
                "--sampler",
                "grid",
                "--study",
                "g",
                "--n-trials",
                "8",
                "--population",
                "5",
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert "--population 5 is larger than the grid, which has 4 points" in err
    assert not (space / "runs").exists()


PRUNERS = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2),
    "percentile": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=2),
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=1, reduction_factor=2
    ),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=4, reduction_factor=2
    ),
    "none": lambda: optuna.pruners.NopPruner(),
}


@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_per_epoch_pruning_decides_as_should_prune(tmp_path, pruner):
    # Two studies with the same history: one judged the population's way (one read of the
    # study per epoch, rung marks written through), the twin by each trial's should_prune, in
    # the same order. Successive halving writes as it judges: a later member must see the
    # marks an earlier one left.
    from tuning.runner.population import _Report

    def study_with_history(name):
        study = optuna.create_study(
            storage=f"sqlite:///{tmp_path / name}",
            study_name="s",
            direction="maximize",
            pruner=PRUNERS[pruner](),
        )
        for value in (0.5, 0.6, 0.7):  # finished trials with a history
            trial = study.ask()
            for epoch in range(3):
                trial.report(value - 0.1 * (2 - epoch), epoch)
            study.tell(trial, value)
        return study, [study.ask() for _ in range(6)]

    ours, twin = study_with_history("a.db"), study_with_history("b.db")
    decisions, expected = [], []
    for epoch in range(3):
        for (study, members), out in ((ours, decisions), (twin, expected)):
            alive = [t for t in members if t.number not in {n for n, _ in out if _}]
            for i, trial in enumerate(alive):
                trial.report(0.2 * (i % 3) + 0.05 * epoch - 0.01 * i, epoch)
            if study is ours[0]:
                judge = _Report(study, members, "val_acc", lambda *a: None, lambda n: None)._judge()
                out += [(t.number, bool(judge(t))) for t in alive]
            else:
                out += [(t.number, t.should_prune()) for t in alive]
    assert decisions == expected
    pruned = [number for number, yes in decisions if yes]
    assert (not pruned) == (pruner == "none"), decisions
    if pruner == "successive_halving":  # the rung marks reached the storage, as should_prune's
        marks = [t.system_attrs for t in ours[0].get_trials()]
        assert marks == [t.system_attrs for t in twin[0].get_trials()]


def test_without_population_given_the_study_trains_populations_and_says_so(space, capsys):
    _run("--study", "auto", "--n-trials", "12")
    err = capsys.readouterr().err
    auto = [line for line in err.splitlines() if line.startswith("population auto:")]
    assert auto == [
        "population auto: 3 trials train at once as one vectorized model (bounded by "
        "4 sampler rounds; --population 1 trains them one by one)"
    ], err
    # One population: as members complete, newly asked trials take their slots
    assert (
        err.count("train as one population") == 1
        and "trials 0, 1, 2 train as one population of 3" in err
    ), err
    study = optuna.load_study(study_name="auto", storage="sqlite:///runs/auto/study.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 12
    joined = [t.user_attrs["population"]["epoch_joined"] for t in study.trials]
    assert {t.user_attrs["population"]["first_trial"] for t in study.trials} == {0}
    assert joined[:3] == [0, 0, 0] and all(epoch > 0 for epoch in joined[3:]), joined
    assert sorted(joined) == joined  # asked as slots free up, in order


def test_population_one_keeps_trials_one_by_one(space, capsys):
    _run("--study", "one", "--n-trials", "2", "--population", "1")
    err = capsys.readouterr().err
    assert "population auto" not in err and "train as one population" not in err


def test_a_space_that_varies_structure_still_forms_populations(tune_dir, capsys):

    root = ROOT
    (tune_dir / "space.yaml").write_text((root / "recipes" / "digits" / "search.yaml").read_text())
    _run("--study", "full", "--n-trials", "12", "--population", "4")
    err = capsys.readouterr().err
    # a population of one structure hosts two generations of its 4 slots (8 trials), then
    # the next one draws its structure afresh
    assert err.count("train as one population of 4") == 2, err
    assert "trials 8, 9, 10, 11 train as one population of 4" in err, err
    study = optuna.load_study(study_name="full", storage="sqlite:///runs/full/study.db")
    structural = (
        "model.optimizer",
        "data.batch_size",
        "model.scheduler",
        "model.network_kwargs.activation",
        "model.network_kwargs.dropout",
    )
    for batch in (study.trials[:8], study.trials[8:]):
        # one structure per population, drawn once; the scalars drawn per member
        assert len({tuple(t.params.get(k) for k in structural) for t in batch}) == 1
        assert len({t.params["model.lr"] for t in batch}) == len(batch)
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


@pytest.mark.parametrize(
    ("class_path", "path", "scalar"),
    [
        ("lit_optim.ClassificationTask", "model.lr", True),
        ("lit_optim.ClassificationTask", "model.optimizer_kwargs.momentum", True),
        ("lit_optim.ClassificationTask", "model.optimizer", False),
        ("lit_optim.ClassificationTask", "data.batch_size", False),
        ("lit_optim.ClassificationTask", "model.network_kwargs.dropout", False),
        ("my.Module", "model.head_lr", True),
        ("my.Module", "model.init_args.warmup_steps", True),
        ("my.Module", "model.dropout", False),
        ("my.Module", "model.hidden", False),
    ],
)
def test_what_may_differ_within_a_population(class_path, path, scalar):
    from tuning.runner.population import member_scalar

    assert member_scalar({"model": {"class_path": class_path}}, path) is scalar


def test_a_network_vmap_cannot_run_trains_one_by_one_and_says_why(space, capsys):
    """nn.GRU has no batching rule (aten::gru): the population of our task's fast path must
    fall back to one by one with the reason, not end the study on a RuntimeError."""
    recipe = yaml.safe_load((space / "recipe.yaml").read_text())
    recipe["model"].update(network="gru", network_kwargs={"hidden_size": 2})
    recipe["data"].update(dataset="mnist1d", dataset_kwargs={"num_samples": 300})
    recipe["trainer"]["max_epochs"] = 1
    (space / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _run("--study", "gru", "--n-trials", "2", "--population", "2")
    out, err = capsys.readouterr()
    # Each trial counted when it is told, not when asked: 1/2, then 2/2 (was 2/2 twice).
    progress = [line.split(",")[0] for line in out.splitlines() if "/2 trials" in line]
    assert progress == ["study gru: 1/2 trials", "study gru: 2/2 trials"], out
    assert "trials 0, 1 run one by one: the network cannot run once per member under vmap" in err
    assert "aten::gru" in err and "Traceback" not in err
    study = optuna.load_study(study_name="gru", storage="sqlite:///runs/gru/study.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def _with_callbacks(tune_dir, *callbacks):
    recipe = yaml.safe_load((tune_dir / "recipe.yaml").read_text())
    recipe["trainer"]["callbacks"] = list(callbacks)
    (tune_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))


def test_the_health_callbacks_train_in_populations_per_member(space, capsys):
    """The README's training-health advice keeps the population speed-up: each trial is
    clipped and diagnosed as its own run, under its own name."""
    _with_callbacks(
        space,
        {
            "class_path": "lit_optim.callbacks.GradientClipper",
            "init_args": {"mode": "adaptive", "percentile": 90},
        },
        {"class_path": "LayerDiagnostics", "init_args": {"every_n_steps": 4, "png": "d.png"}},
        {"class_path": "lit_optim.callbacks.NonFiniteGuard", "init_args": {"action": "stop"}},
    )
    _run("--study", "health", "--n-trials", "3", "--population", "3")
    err = capsys.readouterr().err
    assert "trials 0, 1, 2 train as one population of 3" in err and "one by one" not in err, err
    study = optuna.load_study(study_name="health", storage="sqlite:///runs/health/study.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    shares = [t.user_attrs["grad_clipped_frac"] for t in study.trials]  # per member, logged
    assert all(0 < share < 1 for share in shares), shares
    plots = sorted(p.name for p in (space / "runs").rglob("*.png"))
    assert plots == ["d.trial_0.png", "d.trial_1.png", "d.trial_2.png"]


@pytest.mark.parametrize("action", ["skip", "rollback"])
def test_a_guard_action_without_a_per_member_form_is_stop_per_member_and_says_so(
    space, capsys, action
):
    """The project's own recipe rolls back: its populations stay, and one line says how a
    member's NaN ends (its trial pruned as diverged) and how to keep the action."""
    _with_callbacks(
        space, {"class_path": "lit_optim.callbacks.NonFiniteGuard", "init_args": {"action": action}}
    )
    recipe = yaml.safe_load((space / "recipe.yaml").read_text())
    (space / "space.yaml").write_text(
        yaml.safe_dump(
            {"metric": "val_acc", "direction": "maximize", "params": {"model.lr": [1e-3, 1e7]}}
        )
    )
    recipe["model"]["optimizer"] = "sgd"
    (space / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _run("--study", "guard", "--n-trials", "2", "--population", "2", "--sampler", "grid")
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("NonFiniteGuard action")]
    assert len(notes) == 1, err
    assert notes[0].startswith(
        f"NonFiniteGuard action '{action}' acts as 'stop' per member in a "
        "population: a member whose loss goes non-finite or spikes leaves "
        "it, its trial pruned as diverged ("
    )
    assert "would need its own" in notes[0] and notes[0].endswith(
        f"--population 1 keeps '{action}'"
    )
    assert "trials 0, 1 train as one population of 2" in err
    study = optuna.load_study(study_name="guard", storage="sqlite:///runs/guard/study.db")
    states = {t.params["model.lr"]: t.state for t in study.trials}
    assert states == {1e-3: TrialState.COMPLETE, 1e7: TrialState.PRUNED}
    assert (
        study.trials[[t.params["model.lr"] for t in study.trials].index(1e7)]
        .user_attrs["pruned_reason"]
        .startswith("diverged")
    )


def test_population_one_keeps_the_guard_action_without_a_note(space, capsys):
    _with_callbacks(
        space,
        {"class_path": "lit_optim.callbacks.NonFiniteGuard", "init_args": {"action": "rollback"}},
    )
    _run("--study", "one", "--n-trials", "1", "--population", "1")
    assert "NonFiniteGuard action" not in capsys.readouterr().err


def test_another_callback_trains_one_by_one_and_names_those_that_act_per_member(space, capsys):
    _with_callbacks(space, {"class_path": "lightning.pytorch.callbacks.LearningRateMonitor"})
    _run("--study", "lrm", "--n-trials", "2", "--population", "2")
    err = capsys.readouterr().err
    assert (
        "trials 0, 1 run one by one: callback lightning.pytorch.callbacks.LearningRateMonitor "
        "is not supported in a population (those that act per member: GradientClipper, "
        "LayerDiagnostics, NonFiniteGuard)"
    ) in err, err


def test_a_member_that_leaves_is_told_at_once_not_when_the_population_ends(
    space, capsys, monkeypatch
):
    """Slots, not batches (first step): a diverged member's trial is PRUNED the epoch it
    leaves, while the others train on; the sampler and an interruption see it told."""
    import tuning.runner.population as population

    epochs_of_the_others = {}  # trial told -> how many epochs the others had reported by then
    tell = population._tell

    def spy(study, trial, *args):
        epochs_of_the_others[trial.number] = [
            len(t.intermediate_values)
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number
        ]
        return tell(study, trial, *args)

    monkeypatch.setattr(population, "_tell", spy)
    recipe = yaml.safe_load((space / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 6
    recipe["model"]["optimizer"] = "sgd"
    (space / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (space / "space.yaml").write_text(
        yaml.safe_dump(
            {"metric": "val_acc", "direction": "maximize", "params": {"model.lr": [1e-2, 1e7]}}
        )
    )
    _run("--study", "leave", "--n-trials", "2", "--population", "2", "--sampler", "grid")
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="leave", storage="sqlite:///runs/leave/study.db")
    by_lr = {t.params["model.lr"]: t for t in study.trials}
    gone, stayed = by_lr[1e7], by_lr[1e-2]
    assert gone.state == TrialState.PRUNED and gone.user_attrs["pruned_reason"].startswith(
        "diverged"
    )
    assert stayed.state == TrialState.COMPLETE and len(stayed.intermediate_values) == 6
    assert epochs_of_the_others[gone.number] in ([1], [2])  # told while the other trained on
    # told one at a time: the progress counts 1/2 (the leaver), then 2/2
    progress = [line.split(",")[0] for line in out.splitlines() if "/2 trials" in line]
    assert progress == ["study leave: 1/2 trials", "study leave: 2/2 trials"], out


def test_threads_auto_probes_says_so_and_gives_the_callers_threads_back(space, capsys):
    import torch

    before = torch.get_num_threads()
    _run("--study", "threads", "--n-trials", "2", "--population", "2")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("threads: ")]
    if (__import__("os").cpu_count() or 1) > 1:  # one candidate only on one core: no probe
        assert len(lines) == 1 and lines[0].endswith("--threads N sets it"), err
        assert "1 thread " in lines[0] and " per worker, the faster in a probe at start" in lines[0]
    assert torch.get_num_threads() == before  # run in-process: the caller's count is back


def test_the_thread_probe_leaves_the_callers_threads_and_random_state():
    import torch

    from tuning.runner.threads import choose_threads

    torch.manual_seed(123)
    before, rng = torch.get_num_threads(), torch.get_rng_state()
    threads, line = choose_threads("auto", 1, "cpu")
    assert threads in (1, __import__("os").cpu_count())
    assert torch.get_num_threads() == before and torch.equal(torch.get_rng_state(), rng)
    assert choose_threads(3, 1, "cpu") == (3, None)


def test_threads_given_is_used_without_a_probe(space, capsys, monkeypatch):
    import torch

    from tuning.runner import threads as chooser

    seen = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real(n)))
    monkeypatch.setattr(chooser, "_probe", lambda *a: pytest.fail("--threads 1 must not probe"))
    _run("--study", "one-thread", "--n-trials", "1", "--population", "1", "--threads", "1")
    assert "threads: " not in capsys.readouterr().err
    assert seen[0] == 1  # the worker trained on 1 thread, then gave the caller's back


def test_asha_in_a_population_decides_as_should_prune_of_the_same_trials_one_by_one(space):
    # Successive halving (= ASHA: trials start at different times) over a population whose
    # slots refill: members report at their own epochs. A replay asks the same trials of a
    # fresh study one by one and feeds each report in the order the population made them
    # (population epoch = the epoch a trial joined + its own epoch; in each, all report,
    # then each is judged, then those at their last epoch complete): every should_prune
    # answer must be the population's decision.
    recipe = yaml.safe_load((space / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 6
    (space / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _run(
        "--study", "asha", "--n-trials", "16", "--population", "4", "--pruner", "successive_halving"
    )
    study = optuna.load_study(study_name="asha", storage="sqlite:///runs/asha/study.db")
    trials = study.trials
    assert len(trials) == 16
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and any(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["population"]["epoch_joined"] for t in trials}) > 2  # refilled
    # lit-tune's successive halving: min_resource 1 from the start (Optuna's auto, known early)
    replay = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    )
    asked = {t.number: replay.ask() for t in trials}
    joined = {t.number: t.user_attrs["population"]["epoch_joined"] for t in trials}
    last = {t.number: max(t.intermediate_values) for t in trials}
    end = max(joined[n] + last[n] for n in joined)
    decisions = {}
    for epoch in range(end + 1):
        active = [
            t for t in trials if joined[t.number] <= epoch <= joined[t.number] + last[t.number]
        ]
        for t in active:
            asked[t.number].report(
                t.intermediate_values[epoch - joined[t.number]], epoch - joined[t.number]
            )
        for t in active:
            decisions[(t.number, epoch - joined[t.number])] = asked[t.number].should_prune()
        for t in active:
            step = epoch - joined[t.number]
            if step == last[t.number]:
                replay.tell(
                    asked[t.number],
                    t.value if t.state == TrialState.COMPLETE else None,
                    state=t.state,
                )
    for t in trials:
        # a member that diverged was judged (not pruned) before its divergence was seen
        by_pruner = t.user_attrs.get("pruned_reason", "").startswith("pruned at")
        for step in t.intermediate_values:
            expected = by_pruner and step == last[t.number]
            assert decisions[(t.number, step)] == expected, (t.number, step, t.user_attrs)

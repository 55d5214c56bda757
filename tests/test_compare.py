"""lit-tune compare: the report's numbers come from the studies and seed runs, and an
interrupted comparison resumes."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna
import pytest
import yaml

from tuning.cli import main



@pytest.fixture
def workdir(tune_dir):
    return tune_dir


def _compare(*args):
    main(["compare", "--recipe", "recipe.yaml", "--budget", "2", "--seeds", "2",
          "--target-acc", "0.5", *args])


def test_report_numbers_match_the_studies_and_seed_runs(workdir, capsys):
    _compare("--optimizers", "momentum,adam")
    out = Path("runs/compare")
    for name in ("report.md", "learning_curves.png", "learning_curves.html",
                 "lr_sensitivity.png", "lr_sensitivity.html", "results.json"):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    storage = f"sqlite:///{out / 'studies.db'}"
    report = (out / "report.md").read_text()
    for label in ("momentum", "adam"):
        entry = results["entries"][label]
        study = optuna.load_study(study_name=label, storage=storage)
        assert len(study.trials) == 2
        assert entry["best_params"] == study.best_params
        assert entry["best_trial_val_acc"] == study.best_value
        seed_files = sorted((out / label).glob("tuned_seed*/result.json"))
        assert len(seed_files) == 2
        accs = [json.loads(f.read_text())["test_acc"] for f in seed_files]
        assert entry["tuned"]["test_acc"]["mean"] == pytest.approx(statistics.fmean(accs))
        assert entry["tuned"]["test_acc"]["std"] == pytest.approx(statistics.stdev(accs))
        mean, std = entry["tuned"]["test_acc"]["mean"], entry["tuned"]["test_acc"]["std"]
        assert f"| {label} | " in report and f"{mean:.4f} ± {std:.4f}" in report
        # The retrained best really used the best trial's lr.
        tuned = yaml.safe_load((out / label / "tuned_seed0" / "recipe.yaml").read_text())
        assert tuned["model"]["lr"] == study.best_params["model.lr"]
        assert tuned["model"]["optimizer"] == label
    means = {k: v["tuned"]["test_acc"]["mean"] for k, v in results["entries"].items()}
    assert results["ranking"] == sorted(means, key=lambda k: -means[k])


def test_compare_resumes_without_redoing_finished_work(workdir):
    _compare("--optimizers", "sgd")
    out = Path("runs/compare")
    stamp = (out / "sgd" / "tuned_seed1" / "result.json").stat().st_mtime_ns
    first = json.loads((out / "results.json").read_text())
    _compare("--optimizers", "sgd")
    study = optuna.load_study(study_name="sgd", storage=f"sqlite:///{out / 'studies.db'}")
    assert len(study.trials) == 2  # no new trials
    assert (out / "sgd" / "tuned_seed1" / "result.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["entries"] == first["entries"]


def test_schedules_for_one_optimizer(workdir):
    _compare("--optimizers", "sgd", "--schedulers", "constant,cosine", "--seeds", "1")
    results = json.loads(Path("runs/compare/results.json").read_text())
    assert set(results["entries"]) == {"sgd+constant", "sgd+cosine"}
    cosine = yaml.safe_load(Path("runs/compare/sgd_cosine/tuned_seed0/recipe.yaml").read_text())
    assert cosine["model"]["scheduler"] == "cosine"


@pytest.mark.parametrize(("args", "message"), [
    (["--optimizers", "sgd,adamm"], "unknown optimizer 'adamm'"),
    (["--optimizers", "sgd", "--budget", "0"], "budget must be an integer >= 1"),
    (["--optimizers", "sgd", "--seeds", "0"], "seeds must be an integer >= 1"),
    (["--optimizers", "sgd", "--target-acc", "1.5"], r"target accuracy must be in \[0, 1\]"),
    (["--optimizers", "sgd", "--schedulers", "cosin"], "unknown scheduler 'cosin'"),
    (["--optimizers", "sgd", "--population", "0"], "--population: must be auto or an integer >= 1"),
])
def test_bad_compare_arguments_fail_before_any_training(workdir, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--recipe", "recipe.yaml", *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    import re

    assert re.search(message, err)
    assert not Path("runs/compare").exists()


def test_each_optimizer_s_trials_train_as_one_population(workdir):
    _compare("--optimizers", "momentum,adam", "--seeds", "1", "--population", "2")
    out = Path("runs/compare")
    results = json.loads((out / "results.json").read_text())
    for label in ("momentum", "adam"):
        study = optuna.load_study(study_name=label, storage=f"sqlite:///{out / 'studies.db'}")
        assert len(study.trials) == 2 and results["entries"][label]["best_params"] == study.best_params
        assert len({t.params["model.lr"] for t in study.trials}) == 2
        header = (out / label / "trials" / "trial_0" / "recipe.yaml").read_text().splitlines()[0]
        assert "population of 2" in header


def test_convex_plots_against_the_bounds(workdir):
    _compare("--optimizers", "adam", "--seeds", "1", "--convex", "quadratic,logreg")
    out = Path("runs/compare")
    for problem in ("quadratic", "logreg"):
        assert (out / f"convex_{problem}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"convex_{problem}.png" in (out / "report.md").read_text()


def test_a_rerun_with_another_recipe_never_returns_the_old_numbers(workdir, capsys):
    _compare("--optimizers", "sgd", "--budget", "1", "--seeds", "1")
    recipe = yaml.safe_load((workdir / "recipe.yaml").read_text())
    recipe["trainer"]["max_epochs"] = 1
    (workdir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(SystemExit) as info:
        _compare("--optimizers", "sgd", "--budget", "1", "--seeds", "1")
    err = capsys.readouterr().err
    assert info.value.code == 2 and "was made with another recipe" in err


def test_a_cached_seed_run_of_another_recipe_is_refused(tmp_path):
    from lit_optim import ConfigError
    from tuning.reports.compare import _seed_run

    (tmp_path / "result.json").write_text('{"val_acc": 0.99, "recipe_sha256": "0" }')
    with pytest.raises(ConfigError, match="holds a seed run of another recipe"):
        _seed_run({"model": {"lr": 0.1}}, tmp_path, 0, 0.9)

"""``lit-tune``: run, inspect and export Optuna studies over a lit-optim recipe.

    lit-tune run --recipe recipes/digits/mlp.yaml --space recipes/digits/search.yaml \\
        --n-trials 50 --study digits-mlp [--storage URL] [--n-workers N]
    lit-tune best --study digits-mlp [--storage URL] --export best.yaml
    lit-tune report --study digits-mlp [--storage URL]

Without --storage a study lives in runs/<study>/study.db (a journal file with --n-workers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from lit_optim import __version__
from lit_optim.catalog import DIRECTION_WORDS
from tuning.runner.algorithms import ALGORITHMS, MAX_FAILURES, PRUNERS, SAMPLERS

# Optuna, Lightning and torch are imported in main(), once the command line is parsed:
# `lit-tune --help` and `--version` answer without them.

__all__ = ["main"]


def auto_or_count(value: str) -> int | str:
    """``--population``, ``--threads``: ``auto`` or an integer >= 1."""
    if value == "auto":
        return value
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise argparse.ArgumentTypeError(f"must be auto or an integer >= 1, got {value!r}")
    return size


def study_name(value: str) -> str:
    """``--study``: a name that is also a folder under --run-dir, so not empty, not a path."""
    if not value or value in (".", "..") or "/" in value or "\\" in value or value != value.strip():
        raise argparse.ArgumentTypeError(
            f"must be a name such as digits-mlp (it is also the folder runs/<study>/), "
            f"got {value!r}"
        )
    return value


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {value!r}")
    return seconds


def _installed(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lit-tune", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version",
        action="version",
        version=f"lit-tune {__version__} (lit-optim {__version__}, optuna {_installed('optuna')})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--study",
        required=True,
        type=study_name,
        help="study name (also its folder under --run-dir)",
    )
    common.add_argument(
        "--storage", help="Optuna storage URL (sqlite:///…, postgresql://…) or a journal file path"
    )
    common.add_argument("--run-dir", default="runs", type=Path, help="parent of runs/<study>/")
    _add_run(sub, common)
    best = sub.add_parser("best", parents=[common], help="show the best trial")
    best.add_argument("--export", type=Path, help="write the best trial's recipe here")
    sub.add_parser("report", parents=[common], help="plots and a summary in runs/<study>/report")
    studies = sub.add_parser("studies", help="the studies of a run directory or a storage")
    studies.add_argument("--storage", help="an Optuna storage URL or journal file path")
    studies.add_argument(
        "--run-dir",
        default="runs",
        type=Path,
        help="list every study under this folder (default %(default)s)",
    )
    sub.add_parser("delete", parents=[common], help="delete a study from its storage")
    _add_compare(sub)
    return parser


def _add_run(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lit-tune run``'s options."""
    run = sub.add_parser("run", parents=[common], help="create or resume a study and run it")
    run.add_argument(
        "--recipe", required=True, help="the lit-optim recipe (YAML) every trial starts from"
    )
    run.add_argument(
        "--space", required=True, help="the search space (YAML): metric, direction, params"
    )
    run.add_argument(
        "--n-trials", type=int, default=50, help="finished trials the study should have"
    )
    run.add_argument(
        "--n-workers",
        type=auto_or_count,
        default="auto",
        help="processes running trials at once (a journal file or PostgreSQL storage); auto "
        "(the default) starts one per core on a CPU (one per GPU) where the budget is long "
        "enough (>= 100 trials a process, or --timeout >= 60 s) and the storage is not "
        "SQLite, else 1, and says so",
    )
    # The fixed sets show in --help (metavar); a wrong name is refused before trial 0 in one
    # line with the close matches, as every other name (argparse's choices would print the
    # usage and no suggestion).
    run.add_argument(
        "--sampler",
        default="tpe",
        metavar="{" + ",".join(SAMPLERS) + "}",
        help="Optuna sampler (default %(default)s)",
    )
    run.add_argument(
        "--pruner",
        default="median",
        metavar="{" + ",".join(PRUNERS) + "}",
        help="Optuna pruner (default %(default)s)",
    )
    run.add_argument(
        "--seed", type=int, default=0, help="sampler seed (each worker its own, from this one)"
    )
    run.add_argument(
        "--accelerator",
        default="auto",
        help="Lightning accelerator for the trials: auto, cpu, gpu, mps …",
    )
    run.add_argument(
        "--max-failures",
        type=int,
        default=MAX_FAILURES,
        help="failed trials in a row that stop the study (default %(default)s)",
    )
    run.add_argument(
        "--accept-changes",
        action="store_true",
        help="continue a study made with another recipe, space or metric",
    )
    run.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    run.add_argument(
        "--population",
        type=auto_or_count,
        default="auto",
        help="train up to N trials at once as one vectorized model; auto (the "
        "default) chooses N from the budget, the device and its memory, and "
        "says what it chose; 1: one by one",
    )
    run.add_argument(
        "--algorithm",
        default="optuna",
        metavar="{" + ",".join(ALGORITHMS) + "}",
        help="optuna (the default): the sampler picks each trial's values and the "
        "pruner stops it; pbt: population based training inside each "
        "population, the bottom members copying the top ones and exploring "
        "their lr and weight decay as they train",
    )
    run.add_argument(
        "--pbt-interval",
        type=int,
        metavar="EPOCHS",
        help="--algorithm pbt: epochs between exploits (default: a sixth of the run)",
    )
    run.add_argument(
        "--pbt-quantile",
        type=float,
        default=0.25,
        help="--algorithm pbt: the bottom fraction that copies the top one "
        "(default %(default)s, as Ray Tune's)",
    )
    run.add_argument(
        "--threads",
        type=auto_or_count,
        default="auto",
        help="torch threads per worker process on CPU; auto (the default) takes "
        "the faster of 1 and each worker's share of the cores in a probe at "
        "start (on a busy machine 1 can be many times faster), and says so",
    )
    run.add_argument(
        "--lr-range",
        choices=["auto"],
        help="auto: search the lr over "
        "[suggestion/10, divergence] of an lr range test run before trial 0",
    )
    run.add_argument(
        "--heartbeat",
        type=positive_seconds,
        default=10.0,
        help="seconds between trial heartbeats (RDB storages); a trial silent for "
        "3× this is failed when the study is run again",
    )


def _add_compare(sub: Any) -> None:
    """``lit-tune compare``'s options."""
    compare = sub.add_parser("compare", help="fair optimizer comparison: equal budgets, seeds")
    compare.add_argument(
        "--recipe", required=True, help="the lit-optim recipe every optimizer's study starts from"
    )
    compare.add_argument("--optimizers", required=True, help="comma-separated registry names")
    compare.add_argument(
        "--schedulers",
        help="comma-separated: compare these schedules for the first optimizer instead",
    )
    compare.add_argument("--budget", type=int, default=20, help="tuning trials per optimizer")
    compare.add_argument("--seeds", type=int, default=3, help="seeds for the retrained best")
    compare.add_argument(
        "--metric",
        help="what each study tunes and the report ranks: a name the "
        "module logs (default: the recipe's objective.metric, "
        "else val_acc)",
    )
    compare.add_argument(
        "--direction",
        choices=DIRECTION_WORDS,
        help="needed only when the metric is not a torchmetrics Metric (which "
        "says higher_is_better) nor a standard name such as val_loss",
    )
    compare.add_argument(
        "--test-metric",
        help="what the retrained runs are ranked by on the test "
        "set (default: the metric's test twin, val_acc → "
        "test_acc, where the module's test_step logs it)",
    )
    compare.add_argument(
        "--target",
        "--target-acc",
        dest="target",
        type=float,
        help="report the epochs each optimizer needs to reach this value of the metric",
    )
    compare.add_argument("--name", default="compare", help="runs/<name>/ holds everything")
    compare.add_argument(
        "--run-dir", default="runs", type=Path, help="parent of runs/<name>/ (default %(default)s)"
    )
    compare.add_argument(
        "--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu, mps …"
    )
    compare.add_argument(
        "--population",
        type=auto_or_count,
        default="auto",
        help="train up to N of an optimizer's trials at once (as lit-tune run)",
    )
    compare.add_argument(
        "--convex", default="", help="also plot F(θ_n) − F* against the bounds: quadratic,logreg"
    )


def _overrides(parser: argparse.ArgumentParser, extra: list[str]) -> dict[str, Any]:
    """``--trainer.max_epochs 5 --model.lr=0.01`` → {dotted path: YAML value}: the recipe
    overrides of the lit-optim command line, applied to every trial."""
    out: dict[str, Any] = {}
    words = list(extra)
    while words:
        word = words.pop(0)
        key, eq, value = word.partition("=")
        if not key.startswith(("--model.", "--data.", "--trainer.", "--seed_everything")):
            parser.error(
                f"unrecognized argument: {word} (recipe overrides are --model.*, "
                "--data.*, --trainer.* or --seed_everything)"
            )
        if not eq:
            if not words:
                parser.error(f"{key} needs a value")
            value = words.pop(0)
        try:
            out[key[2:]] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key[2:]] = value
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("run", "compare"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    overrides = _overrides(parser, extra)
    import optuna
    import sqlalchemy.exc

    from lit_optim import LitOptimError
    from tuning.runner.trainable import quiet_lightning
    from tuning.storage.backends import StorageFault, default_storage_url, storage_fault

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_lightning()  # the parses before trial 0 would print Lightning's banner each time
    storage = getattr(args, "storage", None)
    try:
        if args.command in _ON_A_STUDY:
            if args.command == "run":
                _choose_workers(args)
            storage = args.storage or default_storage_url(
                args.run_dir,
                args.study,
                getattr(args, "n_workers", 1),
                create=args.command == "run",
            )
            _ON_A_STUDY[args.command](args, storage, overrides)
        else:
            _OTHERS[args.command](args, overrides)
    except StorageFault as err:  # a full disk, a lost server: in the same words everywhere
        _die(f"storage {storage}: {err}" if storage else str(err))
    except (LitOptimError, ValueError) as err:  # ValueError: optuna's, e.g. best of no trial
        _die(str(err))
    except (OSError, sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
        fault = storage_fault(err)
        if fault is not None:
            _die(f"storage {storage}: {fault}" if storage else str(fault))
        _die_of_storage(err, storage)


# -- one function per subcommand (as Optuna's CLI has a command class each) -------------------


def _compare(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    from tuning.reports.compare import run_compare

    run_compare(
        recipe=args.recipe,
        optimizers=[n for n in args.optimizers.split(",") if n],
        schedulers=[n for n in args.schedulers.split(",") if n] if args.schedulers else None,
        budget=args.budget,
        seeds=args.seeds,
        target=args.target,
        run_dir=args.run_dir / args.name,
        accelerator=args.accelerator,
        convex=[n for n in args.convex.split(",") if n],
        population=args.population,
        metric=args.metric,
        direction=args.direction,
        test_metric=args.test_metric,
        overrides=overrides,
    )
    print((args.run_dir / args.name / "report.md").read_text())


def _studies(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    from tuning.reports.study_report import list_studies

    print(list_studies(args.storage, args.run_dir))


def _choose_workers(args: argparse.Namespace) -> None:
    """``--n-workers auto`` made a number before the storage is chosen (a journal file for
    several); the line that says why waits in ``args.workers_note`` for the run to start."""
    from tuning.runner.processes import choose_workers

    args.n_workers, args.workers_note = choose_workers(
        args.n_workers,
        storage=args.storage,
        run_dir=args.run_dir,
        study=args.study,
        n_trials=args.n_trials,
        accelerator=args.accelerator,
        timeout=args.timeout,
    )


def _run(args: argparse.Namespace, storage: str, overrides: dict[str, Any]) -> None:
    from optuna.trial import TrialState

    from lit_optim import LitOptimError
    from tuning.reports.study_report import summary_table
    from tuning.runner.errors import Interrupted
    from tuning.runner.study import StudyRequest, load_study, run_study

    try:
        study = run_study(
            StudyRequest(
                recipe=args.recipe,
                space=args.space,
                study_name=args.study,
                storage_url=storage,
                run_dir=args.run_dir / args.study,
                n_trials=args.n_trials,
                n_workers=args.n_workers,
                sampler=args.sampler,
                pruner=args.pruner,
                seed=args.seed,
                accelerator=args.accelerator,
                heartbeat_s=args.heartbeat,
                max_failures=args.max_failures,
                accept_changes=args.accept_changes,
                overrides=overrides,
                timeout_s=args.timeout,
                lr_range=args.lr_range,
                population=args.population,
                threads=args.threads,
                algorithm=args.algorithm,
                pbt_interval=args.pbt_interval,
                pbt_quantile=args.pbt_quantile,
                workers_note=args.workers_note,
            )
        )
    except Interrupted as err:
        # The trial that was running is failed without a fail_reason: the next run of
        # the same command runs it again and finishes the budget.
        try:
            print(summary_table(load_study(args.study, storage)))
        except LitOptimError:
            pass  # stopped before the study was created
        print(
            f"lit-tune: {err}; the running trial was marked failed and is run again "
            "by the next `lit-tune run` of this study",
            file=sys.stderr,
        )
        raise SystemExit(128 + err.signum) from None
    print(summary_table(study))
    print(
        f"storage: {storage}   (optuna-dashboard {storage})\n"
        f"trials: {args.run_dir / args.study}/trial_<n>/recipe.yaml; "
        f"report: lit-tune report --study {args.study}"
        + (f" --storage {storage}" if args.storage else "")
    )
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        print(
            f"lit-tune: error: study {args.study} has no completed trial (see the "
            "failed and pruned trials' fail_reason / pruned_reason)",
            file=sys.stderr,
        )
        raise SystemExit(1)


def _delete(args: argparse.Namespace, storage: str, overrides: dict[str, Any]) -> None:
    import optuna

    from tuning.runner.study import load_study
    from tuning.storage.backends import open_storage

    load_study(args.study, storage)  # a missing one is an error with close matches
    optuna.delete_study(study_name=args.study, storage=open_storage(storage))
    print(
        f"deleted study {args.study} from {storage}; files under "
        f"{args.run_dir / args.study}/ (trial recipes, reports) are left as they are"
    )


def _best(args: argparse.Namespace, storage: str, overrides: dict[str, Any]) -> None:
    from tuning.reports.study_report import summary_table
    from tuning.runner.study import export_best, load_study

    study = load_study(args.study, storage)
    print(summary_table(study))
    if args.export:
        print(f"wrote {export_best(study, args.export).resolve()}")


def _report(args: argparse.Namespace, storage: str, overrides: dict[str, Any]) -> None:
    from tuning.reports.study_report import write_report
    from tuning.runner.study import load_study

    study = load_study(args.study, storage)
    for path in write_report(study, args.run_dir / args.study / "report"):
        print(path)


# The commands on one study (--study, --storage) and the others.
_ON_A_STUDY: dict[str, Callable[[argparse.Namespace, str, dict[str, Any]], None]] = {
    "run": _run,
    "delete": _delete,
    "best": _best,
    "report": _report,
}
_OTHERS: dict[str, Callable[[argparse.Namespace, dict[str, Any]], None]] = {
    "compare": _compare,
    "studies": _studies,
}


def _die_of_storage(err: BaseException, storage: str | None) -> None:
    import sqlalchemy.exc

    if isinstance(err, OSError):  # a read-only run directory
        _die(f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
    if isinstance(err, sqlalchemy.exc.SQLAlchemyError):  # e.g. a read-only or locked study.db
        # DBAPIError (most of them) carries the driver's own words in .orig
        cause = getattr(err, "orig", None) or err
        _die(f"storage {storage}: {' '.join(str(cause).split())}")
    cause = err.__cause__  # StorageInternalError: a write that failed mid-study
    cause = getattr(cause, "orig", None) or cause or err
    _die(
        f"storage {storage}: a write failed ({type(cause).__name__}: {cause}); every trial "
        "finished before it is kept: fix the server and run the same command again"
    )


def _die(message: str) -> None:
    print(f"lit-tune: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2) from None


if __name__ == "__main__":
    main()

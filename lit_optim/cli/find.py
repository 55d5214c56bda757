"""``lit-optim lr-find`` and ``lit-optim batch-find``: the range test and the batch-size search
on any recipe, with the answer written back into a recipe on request.

    lit-optim lr-find --config recipes/digits/mlp.yaml [--model.optimizer sgd] [--export r.yaml]
    lit-optim batch-find --config recipes/digits/mlp.yaml [--mode binsearch] [--export r.yaml]

Recipe overrides (``--model.x V``, ``--trainer.x V``) apply as in ``lit-optim fit``. Nothing is
written but the curve (under ``--out``) and ``--export``; the module's weights are untouched.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from lit_optim.catalog.errors import ConfigError

__all__ = ["batch_find_command", "lr_find_command", "scratch_objects"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, as every other mistake
        raise ConfigError(f"{self.prog}: {message}")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"lit-optim {prog}", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="the recipe (several are merged in order, as for fit); or name "
        "the classes alone: --model my_pkg.Module --data my_pkg.Data",
    )
    parser.add_argument("--export", type=Path, help="write the recipe with the answer here")
    return parser


def scratch_objects(configs: list[str], overrides: list[str], root: str):
    """The recipe's module, data and Trainer for a search of a few steps: no logger, no
    checkpoints, no bar, ``root`` (a temporary folder) for what Lightning saves meanwhile."""
    from lit_optim.cli.lightning_cli import SCRATCH_TRAINER_ARGS, cli_objects

    return cli_objects(
        configs[0] if configs else None,
        *[f"--config={c}" for c in configs[1:]],
        *overrides,
        *SCRATCH_TRAINER_ARGS,
        f"--trainer.default_root_dir={root}",
    )


def check_export(path: Path | None) -> None:
    if path is not None and not path.parent.is_dir():  # create only what was asked for
        raise ConfigError(f"--export {path}: folder {path.parent} does not exist")


def _export(
    configs: list[str], overrides: list[str], path: Path, updates: dict[str, object], header: str
) -> Path:
    """The recipe as ``lit-optim fit`` would parse it (the user's overrides included, none of
    the search's scratch settings; the form --print_config writes) with ``updates`` (dotted
    keys under ``model`` / ``data``) applied."""
    from lit_optim.cli.lightning_cli import cli_objects

    cli = cli_objects(
        configs[0] if configs else None, *[f"--config={c}" for c in configs[1:]], *overrides
    )
    config = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))
    for key, value in updates.items():
        section, name = key.split(".", 1)
        target = config[section].get("init_args", config[section])
        target[name] = value
    path.write_text(f"# {header}\n" + yaml.safe_dump(config, sort_keys=False))
    return path


def lr_find_command(args: Sequence[str]) -> None:
    from lit_optim.finders.lr_range import (
        check_range_args,
        check_takes_lr,
        run_range_test,
        write_curve,
    )

    parser = _parser("lr-find")
    parser.add_argument("--min_lr", type=float, default=1e-6)
    parser.add_argument("--max_lr", type=float, default=10.0)
    parser.add_argument(
        "--num_training", type=int, default=100, help="steps of the range test (>= 10)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where lr_find.png/.html/.json go (default runs/lr_find/<recipe>)",
    )
    known, overrides = parser.parse_known_args(list(args))
    check_range_args(known.min_lr, known.max_lr, known.num_training)
    check_export(known.export)
    out = known.out or Path("runs") / "lr_find" / (
        Path(known.config[-1]).stem if known.config else "model"
    )
    with tempfile.TemporaryDirectory(prefix="lit-optim-lr-find-") as root:
        cli = scratch_objects(
            known.config,
            [*overrides, "--trainer.max_epochs=-1", f"--trainer.max_steps={known.num_training}"],
            root,
        )
        lr_name = check_takes_lr(cli.model)
        result = run_range_test(
            cli.model,
            cli.datamodule,
            cli.trainer,
            min_lr=known.min_lr,
            max_lr=known.max_lr,
            num_training=known.num_training,
        )
    if result.suggestion is None:
        raise ConfigError(
            f"the range test stopped after {len(result.lrs)} steps, too few for "
            "a suggestion: raise --min_lr's distance to --max_lr or --num_training"
        )
    assert result.search_range is not None  # there is a suggestion
    low, high = result.search_range
    diverged = (
        f"{result.divergence:.3g}"
        if result.divergence is not None
        else f"none up to max_lr {known.max_lr:g}"
    )
    print(
        f"suggested lr: {result.suggestion:.4g}   (steepest descent of the smoothed loss that "
        "training_step returns; lower is better)\n"
        f"diverges at: {diverged}\n"
        f"search range: log[{low:.3g}, {high:.3g}]   (model.{lr_name} in a lit-tune space)"
    )
    title = f"lr range test: {', '.join(known.config) or type(cli.model).__qualname__}"
    for path in write_curve(result, out, title=title):
        print(f"wrote {path}")
    if known.export:
        path = _export(
            known.config,
            overrides,
            known.export,
            {f"model.{lr_name}": float(f"{result.suggestion:.4g}")},
            f"lit-optim lr-find: {lr_name} {result.suggestion:.4g} (diverges at "
            f"{diverged}; search range log[{low:.3g}, {high:.3g}])",
        )
        print(f"wrote {path}")


def batch_find_command(args: Sequence[str]) -> None:
    from lit_optim.finders.batch_size import SEARCH_MODES, check_has_batch_size, run_batch_search

    parser = _parser("batch-find")
    parser.add_argument("--mode", choices=SEARCH_MODES, default="power")
    parser.add_argument("--init_val", type=int, default=2)
    parser.add_argument("--max_trials", type=int, default=25)
    parser.add_argument("--steps_per_trial", type=int, default=3)
    known, overrides = parser.parse_known_args(list(args))
    check_export(known.export)
    with tempfile.TemporaryDirectory(prefix="lit-optim-batch-find-") as root:
        cli = scratch_objects(known.config, overrides, root)
        check_has_batch_size(cli.datamodule)
        chosen = cli.datamodule.batch_size
        result = run_batch_search(
            cli.model,
            cli.datamodule,
            cli.instantiate_trainer,
            mode=known.mode,
            init_val=known.init_val,
            max_trials=known.max_trials,
            steps_per_trial=known.steps_per_trial,
        )
    n = result.train_samples
    note = (
        f" (the whole training set, {n} samples: memory fits {result.fits}, so it is no limit here)"
        if n is not None and result.fits >= n
        else ""
    )
    if result.refused is not None:
        size, why = result.refused
        note = f" (the recipe cannot train at batch {size}: {why})"
    print(f"largest batch that fits: {result.largest}{note}   ({known.mode} search)")
    print("batch size   samples/s   (5 timed training steps each)")
    for size, rate in result.throughput.items():
        print(f"{size:>10}   {rate:>9.0f}")
    throughput = result.throughput
    best = max(throughput, key=lambda size: throughput[size]) if throughput else None
    if best is not None:
        print(
            f"fastest: batch {best} ({result.throughput[best]:.0f} samples/s); the recipe "
            f"has {chosen}"
        )
    scaled = _scaled_lr(cli.model, chosen, result.largest)
    if scaled:
        print(scaled[1])
    if known.export:
        updates: dict[str, object] = {"data.batch_size": result.largest}
        path = _export(
            known.config,
            overrides,
            known.export,
            updates,
            f"lit-optim batch-find: batch_size {result.largest} ({known.mode} search)",
        )
        print(f"wrote {path}")


def _scaled_lr(model, chosen: int, largest: int) -> tuple[float, str] | None:
    """With ``lr_scaling`` in the recipe, the lr the found batch implies (the rule the task
    applies itself when it trains with that batch)."""
    from lit_optim.catalog.factory import scaling_rule_factor

    hp = getattr(model, "hparams", {})
    rule, base, lr = hp.get("lr_scaling"), hp.get("base_batch_size"), hp.get("lr")
    if rule in (None, "none") or not base or lr is None:
        return None
    factor = scaling_rule_factor(rule, largest, base)
    return lr * factor, (
        f"lr_scaling {rule}: lr {lr:g} × {factor:.3g} = {lr * factor:.4g} at "
        f"batch {largest} (base_batch_size {base}; applied by the task itself)"
    )

"""The ``lit-optim`` command: LightningCLI's fit/validate/test/predict plus ``list``.

    lit-optim fit --config recipes/digits/mlp.yaml
    lit-optim fit --config recipes/digits/mlp.yaml --model.optimizer sgd --model.lr 0.1
    lit-optim list optimizers

Bad input (an unknown name, lr <= 0, missing dataset files …) ends with one ``error:`` line
and exit status 2, as argument errors do, never with a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

import lit_optim.callbacks  # noqa: F401  (so recipes can name the callbacks by class name)
from lit_optim.catalog import KINDS, format_catalog
from lit_optim.data import ClassificationData
from lit_optim.errors import LitOptimError, UnknownNameError
from lit_optim.registry import did_you_mean
from lit_optim.task import ClassificationTask

__all__ = ["LitOptimCLI", "cli_objects", "main"]


class LitOptimCLI(LightningCLI):
    """LightningCLI over ``ClassificationTask`` and ``ClassificationData``."""

    def add_arguments_to_parser(self, parser) -> None:
        # The network's input and output sizes come from the dataset, so a recipe never states
        # them twice (and cannot state them inconsistently).
        parser.link_arguments("data.input_shape", "model.input_shape", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")


_CLI_KWARGS: dict = {
    # The task builds its optimizer from --model.optimizer; LightningCLI's own
    # --optimizer/--lr_scheduler groups would be a second, conflicting way.
    "auto_configure_optimizers": False,
    # Without a recipe, Lightning's default of 1000 epochs would be a surprise.
    "trainer_defaults": {"max_epochs": 20},
}


def run_lightning_cli(args: Sequence[str] | None) -> LitOptimCLI:
    return LitOptimCLI(
        ClassificationTask,
        ClassificationData,
        args=list(args) if args is not None else None,
        # Re-running into the same log directory overwrites its config.yaml instead of failing.
        save_config_kwargs={"overwrite": True},
        **_CLI_KWARGS,
    )


def cli_objects(config: str | Path, *overrides: str) -> LitOptimCLI:
    """The task, data module and Trainer that ``lit-optim fit --config CONFIG OVERRIDES``
    would build, not run and not saving a config.yaml (tuning and comparisons fit them)."""
    return LitOptimCLI(
        ClassificationTask, ClassificationData, run=False, save_config_callback=None,
        args=["--config", str(config), *overrides], **_CLI_KWARGS,
    )


def list_command(args: Sequence[str]) -> None:
    if len(args) > 1:
        raise LitOptimError("usage: lit-optim list [optimizers|schedulers|models|datasets]")
    if args:
        kind = args[0].lower()
        if kind not in KINDS:
            hint = did_you_mean(kind, KINDS, cutoff=0.5)
            raise UnknownNameError(
                f"unknown catalogue {args[0]!r}; {hint + ' ' if hint else ''}choose one of: "
                f"{', '.join(KINDS)}"
            )
    print(format_catalog(args[0].lower() if args else None))


def main(argv: Sequence[str] | None = None) -> None:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        if words and words[0] == "list":
            list_command(words[1:])
        else:
            # None lets LightningCLI read sys.argv itself (it warns when given both).
            run_lightning_cli(None if argv is None else words)
    except LitOptimError as err:
        print(f"lit-optim: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

"""The ``lit-optim`` command: LightningCLI's fit/validate/test/predict plus ``list``.

    lit-optim fit --config recipes/digits/mlp.yaml
    lit-optim fit --config recipes/digits/mlp.yaml --model.optimizer sgd --model.lr 0.1
    lit-optim fit --model my_pkg.MyModule --model.lr 0.01 --data my_pkg.MyData
    lit-optim list optimizers

Any LightningModule and LightningDataModule can be named by class path (``--model X``, or
``class_path``/``init_args`` in a recipe); ``ClassificationTask`` and ``ClassificationData``
are the defaults, so a recipe that names neither means them. Bad input (an unknown name or
class, lr <= 0, missing dataset files …) ends with one ``error:`` line and exit status 2, as
argument errors do, never with a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

import lit_optim.callbacks  # noqa: F401  (so recipes can name the callbacks by class name)
from lit_optim.catalog import KINDS, format_catalog
from lit_optim.errors import LitOptimError, UnknownNameError
from lit_optim.registry import did_you_mean, import_object

__all__ = ["LitOptimCLI", "chained_error", "cli_objects", "config_error_line", "main",
           "parse_error_line"]

DEFAULT_MODEL = "lit_optim.ClassificationTask"
DEFAULT_DATA = "lit_optim.ClassificationData"
SUBCOMMANDS = ("fit", "validate", "test", "predict")


class LitOptimCLI(LightningCLI):
    """LightningCLI over any LightningModule and LightningDataModule (subclass mode)."""

    def before_instantiate_classes(self) -> None:
        # A ClassificationData knows its input shape and class count before reading any data,
        # so a recipe never states them twice (or inconsistently) for a module that takes them.
        config = self.config[self.subcommand] if self.subcommand else self.config
        model, data = config.get("model"), config.get("data")
        if not model or not data:
            return
        from lit_optim.data import ClassificationData, DATASETS

        data_class = import_object(data.class_path)
        if not (isinstance(data_class, type) and issubclass(data_class, ClassificationData)):
            return
        takes = inspect.signature(import_object(model.class_path)).parameters
        if "input_shape" not in takes or "num_classes" not in takes:
            return
        args = data.init_args
        shape, classes = DATASETS.get(args.dataset).spec(args.dataset_kwargs or {})
        if model.init_args.get("input_shape") is None:
            model.init_args.input_shape = list(shape)
        if model.init_args.get("num_classes") is None:
            model.init_args.num_classes = classes


_CLI_KWARGS: dict = {
    "model_class": L.LightningModule,
    "datamodule_class": L.LightningDataModule,
    "subclass_mode_model": True,
    "subclass_mode_data": True,
    # ClassificationTask builds its optimizer from --model.optimizer; LightningCLI's own
    # --optimizer/--lr_scheduler groups would be a second, conflicting way.
    "auto_configure_optimizers": False,
    # Without a recipe, Lightning's default of 1000 epochs would be a surprise.
    "trainer_defaults": {"max_epochs": 20},
    # A rejected value raises (and main prints its one relevant line) instead of printing
    # 60-80 lines of usage first.
    "parser_kwargs": {"exit_on_error": False},
}


def with_default_classes(args: Sequence[str]) -> list[str]:
    """``args`` with ``--model``/``--data`` of the default classes in front, so that a recipe or
    command line naming no class means ClassificationTask / ClassificationData. A class path
    given later (in a recipe or as ``--model X``) replaces them; jsonargparse then keeps only
    the values given explicitly, never the default class's defaults."""
    args = list(args)
    at = 1 if args and args[0] in SUBCOMMANDS else 0
    if at == 0 and args and not args[0].startswith("-"):
        return args  # an unknown subcommand: let LightningCLI say so
    if any(a in ("-h", "--help") for a in args):
        return args
    return [*args[:at], f"--model={DEFAULT_MODEL}", f"--data={DEFAULT_DATA}", *args[at:]]


def run_lightning_cli(args: Sequence[str]) -> LitOptimCLI:
    return LitOptimCLI(
        args=with_default_classes(args),
        # Re-running into the same log directory overwrites its config.yaml instead of failing.
        save_config_kwargs={"overwrite": True},
        **_CLI_KWARGS,
    )


def cli_objects(config: str | Path, *overrides: str) -> LitOptimCLI:
    """The module, data module and Trainer that ``lit-optim fit --config CONFIG OVERRIDES``
    would build, not run and not saving a config.yaml (tuning and comparisons fit them)."""
    return LitOptimCLI(
        run=False, save_config_callback=None,
        args=with_default_classes(["--config", str(config), *overrides]), **_CLI_KWARGS,
    )


_NOISE = ("Does not validate against any", "Subtypes:", "Errors:", "Given value type:",
          "Given value:", "Expected a <class 'NoneType'>", "Expected a path but")


def parse_error_line(err: BaseException) -> str:
    """jsonargparse's nested complaint as one line, with a did-you-mean for an unknown key."""
    lines = [line.strip().lstrip("- ") for line in str(err).splitlines()]
    kept = [line for line in lines if line and not line.startswith(_NOISE)]
    text = " ".join(kept)
    text = re.sub(r'^Parser key "([^"]+)":\s*', r"\1: ", text)
    text = re.sub(r"Problem with given class_path '([^']+)':\s*", r"\1: ", text)
    given = next((line[len("Given value:"):].strip() for line in lines
                  if line.startswith("Given value:")), "")
    text = text.replace("Import path does not correspond", f"{given!r} is not a class path,"
                        " or does not correspond")
    unknown = re.search(r"Option '([^']+)' is not accepted", text)
    owner = re.search(r"(?:^|: )([\w.]+\.[A-Z]\w*): ", text)
    if unknown and owner:
        try:
            params = inspect.signature(import_object(owner.group(1))).parameters
        except Exception:  # noqa: BLE001 - the hint is optional
            params = {}
        hint = did_you_mean(unknown.group(1), [p for p in params if p not in ("self", "args", "kwargs")])
        if hint:
            text += f"; {hint}"
    return text


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
        if words == ["--version"]:
            import lightning

            from lit_optim import __version__

            print(f"lit-optim {__version__} (lightning {lightning.__version__})")
        elif words and words[0] == "list":
            list_command(words[1:])
        else:
            if argv is None:
                sys.argv[1:] = []  # the args go in explicitly; LightningCLI warns when given both
            run_lightning_cli(words)
    except SIGTERMException:
        # Lightning ends fit on SIGTERM with SystemExit() (status 0); a stopped run is not a
        # finished one. last.ckpt, when the recipe keeps one, is where it resumes from.
        print("lit-optim: interrupted by SIGTERM; the run did not finish", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception as err:  # noqa: BLE001 - sorted by config_error_line
        line = config_error_line(err)
        if line is None:
            raise  # not caused by the input: a bug keeps its traceback
        _die(line)


def config_error_line(err: BaseException) -> str | None:
    """One line for an error caused by the configuration, or None for any other exception.

    That is: our own errors (also when jsonargparse wrapped what a class's ``__init__`` raised:
    in subclass mode it reports "Does not validate against any of the Union subtypes" around
    it), jsonargparse's parse errors, and Lightning's misconfiguration errors (a monitor the
    module never logs).
    """
    cause = chained_error(err, LitOptimError)
    if cause is not None:
        return str(cause)
    if isinstance(err, argparse.ArgumentError) or (
            isinstance(err, ValueError) and str(err).startswith("Does not validate against any")):
        return parse_error_line(err)
    if isinstance(err, MisconfigurationException):
        return " ".join(str(err).split())
    return None


def chained_error(err: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _die(message: str) -> None:
    print(f"lit-optim: error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


if __name__ == "__main__":
    main()

"""The LightningCLI behind ``lit-optim fit|validate|test|predict``: any LightningModule and
LightningDataModule by class path, with lit-optim's Trainer defaults and checks, and the
objects of a recipe without running it (``cli_objects``, what tuning and the finders build).
Errors of the configuration become one line (``config_error_line``).
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Optional

import lightning as L
import yaml
from jsonargparse import set_loader
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import DeviceStatsMonitor, LearningRateMonitor
from lightning.pytorch.cli import LightningCLI

import lit_optim
import lit_optim.callbacks  # noqa: F401  (so recipes can name the callbacks by class name)
from lit_optim.callbacks.divergence import unbounded_weights
from lit_optim.callbacks.run_summary import RunSummary
from lit_optim.catalog.checks import load_yaml
from lit_optim.catalog.errors import ConfigError, LitOptimError, chained_error
from lit_optim.catalog.registry import did_you_mean, import_object
from lit_optim.cli.cuda_check import restore_cuda_check
from lit_optim.cli.errors import TrainingDiverged
from lit_optim.cli.trainer_setup import check_trainer_values, with_cli_defaults
from lit_optim.training.checkpoints import (
    checkpoint_folders,
    overridden_settings,
    read_checkpoint,
    resolve_checkpoint,
)

__all__ = [
    "SCRATCH_TRAINER_ARGS",
    "LitOptimCLI",
    "cli_objects",
    "config_error_line",
    "parse_error_line",
    "run_lightning_cli",
]

restore_cuda_check(lit_optim._NVML_CHECK_BEFORE_LIGHTNING)  # after Lightning's import set it
# Recipes are read by a YAML loader that refuses a key given twice (PyYAML keeps the last).
set_loader("yaml", load_yaml, exceptions=(yaml.YAMLError,))

DEFAULT_MODEL = "lit_optim.ClassificationTask"
DEFAULT_DATA = "lit_optim.ClassificationData"
SUBCOMMANDS = ("fit", "validate", "test", "predict")
EVALUATING = ("validate", "test", "predict")  # score a network: need a checkpoint


class LitOptimCLI(LightningCLI):
    """LightningCLI over any LightningModule and LightningDataModule (subclass mode).

    Beyond LightningCLI: Trainer values are checked before anything is built; a default
    checkpoint keeps ``last.ckpt`` and never non-finite weights; ``--ckpt_path`` may be
    ``last`` or ``best`` of this recipe's runs and must be a checkpoint; a resumed fit names
    the settings the checkpoint replaces; ``test``/``validate``/``predict`` need one; a
    fit ends with a summary (and ``--test`` tests its checkpoint right away) and exits 1 when
    training ended on non-finite values.
    """

    summary: RunSummary | None = None

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--test",
            type=bool,
            default=False,
            help="after fit, test the best checkpoint (fit only)",
        )
        parser.add_argument(
            "--objective.metric",
            type=Optional[str],
            default=None,
            help="the metric this run is ranked by, as the module logs it: the "
            "default checkpoint keeps its best epoch, the summary marks it",
        )
        parser.add_argument(
            "--objective.direction",
            type=Optional[Literal["min", "max"]],
            default=None,
            help="min or max for objective.metric; not needed for a torchmetrics "
            "Metric logged under that name (its higher_is_better) or a "
            "standard name (val_loss, val_acc …)",
        )

    def instantiate_trainer(self, **kwargs):
        init = self.config_init[self.subcommand] if self.subcommand else self.config_init
        config = {**(init.get("trainer") or {}), **kwargs}
        check_trainer_values(config)
        objective = init.get("objective") or {}
        defaults, self.summary = with_cli_defaults(
            config, objective.get("metric"), objective.get("direction")
        )
        try:
            return super().instantiate_trainer(**{**kwargs, **defaults})
        except (ValueError, TypeError) as err:  # Lightning's word for a bad Trainer value
            if isinstance(err, LitOptimError):
                raise
            raise ConfigError(f"trainer: {' '.join(str(err).split())}") from err

    # The one override of a private LightningCLI method (its behaviour is pinned by the
    # --ckpt_path cases of tests/cli/test_fit_hardening.py): it is where LightningCLI reads
    # --ckpt_path and puts the checkpoint's hyperparameters over the parsed model config,
    # before any hook of ours runs.
    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        if config.get("ckpt_path") is None:
            if subcommand in EVALUATING:
                raise ConfigError(
                    f"lit-optim {subcommand} needs --ckpt_path: a checkpoint file, or last / "
                    "best of this recipe's runs (without one it would score an untrained network)"
                )
            return
        path = resolve_checkpoint(config.ckpt_path, checkpoint_folders(config.get("trainer") or {}))
        assert path is not None  # a given ckpt_path resolves to one
        config.ckpt_path = path
        if not Path(path).is_file():
            return super()._parse_ckpt_path()  # hpc, registry: Lightning's own
        if subcommand in EVALUATING:
            _log_beside_the_run(config, subcommand, Path(path))
        checkpoint = read_checkpoint(path, weights_only=config.get("weights_only"))
        model = config.get("model")
        saved = checkpoint.get("hyper_parameters") or {}
        saved_class = saved.get("_class_path") if isinstance(saved, dict) else None
        if model is not None and saved_class and model.get("class_path") != saved_class:
            # LightningCLI would quietly build the checkpoint's class instead of the recipe's.
            raise ConfigError(
                f"--ckpt_path {path} holds a {saved_class}, but the recipe's model "
                f"is {model.get('class_path')}: pass a checkpoint of that model, "
                f"or --model {saved_class}"
            )
        if model is not None and model.get("init_args") is not None:
            replaced = overridden_settings(saved, model.init_args.as_dict())
            if replaced:
                doing = "resuming from" if subcommand == "fit" else f"{subcommand} with"
                print(
                    f"lit-optim: warning: {doing} {path}: its settings replace "
                    f"{'; '.join(replaced)} (the checkpoint's network, optimizer state, lr "
                    "and schedule are restored; start a new run to train with other ones)",
                    file=sys.stderr,
                )
        del checkpoint
        try:
            super()._parse_ckpt_path()
        except Exception as err:  # noqa: BLE001 - one line for whatever the file holds
            if isinstance(err, LitOptimError):
                raise
            raise ConfigError(
                f"--ckpt_path {path}: its hyperparameters do not fit "
                f"{model.class_path if model else 'the model'}: "
                f"{parse_error_line(err)}"
            ) from err

    def before_fit(self) -> None:
        objective = (self.config_init[self.subcommand].get("objective") or {}).get("metric")
        declared = getattr(type(self.model), "LOGGED_METRICS", None)
        if objective and declared is not None and objective not in declared:
            hint = did_you_mean(objective, declared)
            raise ConfigError(
                f"objective.metric {objective!r} is never logged by "
                f"{type(self.model).__name__}; it logs: {', '.join(declared)}"
                f"{'; ' + hint if hint else ''}"
            )
        # Lightning loads --ckpt_path into the module before its precision plugin converts
        # it: a float64 checkpoint went through float32 params on resume (1e-8 off the run
        # that never stopped). Converted first, the weights load exactly.
        if str(self.trainer.precision).startswith("64"):
            self.model.double()

    def after_fit(self) -> None:
        trainer, summary = self.trainer, self.summary
        # Read before --test: its checkpoint restore also restores the summary's history.
        lines = summary.lines() if summary else []
        bad = (summary.nonfinite_finals() if summary else []) + nonfinite_weights(self.model)
        # Finite but diverged: a loss far above the lowest it reached, or weights whose squares
        # overflow (a float64 run at lr 1e30 ends near 1e21 and 1e30, and "finished").
        diverged = (
            None
            if bad
            else ((summary.loss.diverged() if summary else None) or unbounded_weights(self.model))
        )
        tested = None
        checkpoint = trainer.checkpoint_callback
        best = getattr(checkpoint, "best_model_path", "") or getattr(
            checkpoint, "last_model_path", ""
        )
        if diverged and getattr(checkpoint, "monitor", None) is None:
            best = ""  # the last epoch's checkpoint holds the diverged weights: not to be tested
        monitor = getattr(checkpoint, "monitor", None)
        ranked = monitor is not None and bool(getattr(checkpoint, "best_model_path", ""))
        # What --test scores: the best epoch where a checkpoint ranks by a metric, else the last.
        tested_what = f"best checkpoint by {monitor}" if ranked else "last epoch"
        if (
            self.config_init[self.subcommand].get("test")
            and not trainer.interrupted
            and not diverged
        ):
            tested = trainer.test(
                self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False
            )
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask
        if trainer.is_global_zero:
            test = (
                (
                    f"lit-optim test --config {Path(log_dir or '.') / 'config.yaml'} --ckpt_path "
                    f"{best}"
                )
                if best
                else ""
            )
            print(closing_summary(trainer, lines, log_dir, test, tested, tested_what))
        if diverged:
            raise TrainingDiverged(
                f"training ended diverged: {diverged}. Lower the lr (or add "
                "lit_optim.callbacks.NonFiniteGuard with loss_spike_factor to "
                "stop it where it starts)"
            )
        if bad:
            callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by its connector
            guarded = any(type(cb).__name__ == "NonFiniteGuard" for cb in callbacks)
            raise TrainingDiverged(
                f"training ended on non-finite values ({', '.join(bad)}); no checkpoint of "
                "non-finite weights was kept. "
                + (
                    "Lower the lr: the NonFiniteGuard did not recover"
                    if guarded
                    else "Lower the lr, or add lit_optim.callbacks.NonFiniteGuard "
                    "(action: rollback) to the recipe's trainer.callbacks"
                )
            )

    def before_instantiate_classes(self) -> None:
        # A ClassificationData knows its input shape and class count before reading any data,
        # so a recipe never states them twice (or inconsistently) for a module that takes them.
        config = self.config[self.subcommand] if self.subcommand else self.config
        model, data = config.get("model"), config.get("data")
        if not model or not data:
            return
        from lit_optim.data import DATASETS, ClassificationData

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


def _log_beside_the_run(config: Any, subcommand: str, checkpoint: Path) -> None:
    """``validate`` / ``test`` / ``predict`` of a fit's checkpoint log into that fit's run
    folder (``version_0/test/``), not into a new ``version_N`` that looks like another fit:
    when the checkpoint sits in a run's ``checkpoints/`` and the recipe names no logger."""
    trainer = config.get("trainer")
    if trainer is None or checkpoint.parent.name != "checkpoints":
        return
    if trainer.get("logger") not in (None, True):  # the recipe's own logger (or none) stays
        return
    trainer.logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(checkpoint.parent.parent), "name": subcommand, "version": ""},
    }


def nonfinite_weights(module: L.LightningModule) -> list[str]:
    from lit_optim.callbacks._grads import nonfinite_names

    named = list(module.named_parameters())
    bad = nonfinite_names([n for n, _ in named], [p.detach() for _, p in named], limit=4)
    return [f"weights of {', '.join(bad[:3])}{' …' if len(bad) > 3 else ''}"] if bad else []


def closing_summary(
    trainer: L.Trainer,
    metric_lines: list[str],
    log_dir: str | None,
    test_command: str,
    tested: Sequence[Mapping[str, float]] | None,
    tested_what: str = "best checkpoint",
) -> str:
    """What a person reads after a fit: each epoch metric's final and best value, the test
    result when ``--test`` ran (of ``tested_what``), where the checkpoint and logs are, and
    how to test."""
    state = "interrupted" if trainer.interrupted else "finished"
    lines = [f"fit {state}: {trainer.current_epoch} epochs, {trainer.global_step} steps"]
    lines += metric_lines
    for name, value in (tested[0] if tested else {}).items():
        lines.append(f"  {name}  {value:.4f}  ({tested_what}, --test)")
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None:
        last, best = (
            getattr(checkpoint, "last_model_path", ""),
            getattr(checkpoint, "best_model_path", ""),
        )
        if last or best:
            lines.append(
                f"checkpoint: {best or last}"
                + (f"   last: {last}" if last and last != best else "")
            )
    if log_dir:
        lines.append(f"logs: {log_dir}")
    if test_command:
        lines.append(f"test it: {test_command}")
    return "\n".join(lines)


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
    # allow_abbrev: argparse would take --trainer.max_epoch for --trainer.max_epochs.
    "parser_kwargs": {
        "exit_on_error": False,
        "allow_abbrev": False,
        "description": (
            "lit-optim: fit, validate, test and predict any LightningModule with Lightning's CLI "
            "(ClassificationTask and ClassificationData by default). Also: `lit-optim list "
            "[optimizers|schedulers|models|datasets]` prints every registered name with its "
            "kwargs; `lit-optim lr-find --config R` (the learning-rate range test) and "
            "`lit-optim batch-find --config R` (the batch-size search); `lit-optim --version`."
        ),
    },
}
# Each subcommand's help starts with how to see the options of the module and the data
# module (LightningCLI lists only their class choice, and its generated usage line is 40
# lines long).
_CLI_KWARGS["parser_kwargs"].update(
    {
        subcommand: {
            "usage": f"lit-optim {subcommand} [-h] [-c CONFIG] [--model CLASS] [--data CLASS] "
            "[--model.* / --data.* / --trainer.* OPTIONS] [--ckpt_path PATH] …",
            "description": (
                f"{what}. The module's own options: `--model.help ClassificationTask` (or your "
                "module's class path); the data module's: `--data.help ClassificationData`; "
                "every value of a recipe: `--config R --print_config`."
            ),
        }
        for subcommand, what in (
            ("fit", "Train a LightningModule"),
            ("validate", "Score a checkpoint on the validation data"),
            ("test", "Score a checkpoint on the test data"),
            ("predict", "Predict with a checkpoint"),
        )
    }
)


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


def check_config_files(args: Sequence[str]) -> None:
    """Each ``--config`` file is UTF-8 text with settings in it: a binary file would end in a
    UnicodeDecodeError traceback, an empty one in jsonargparse's bare "Unexpected config"."""
    args = list(args)
    paths = [value for flag, value in zip(args, args[1:]) if flag in ("--config", "-c")]
    paths += [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    for path in map(Path, paths):
        if not path.is_file():
            continue  # jsonargparse's own message names a missing file
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"--config {path} is not UTF-8 text (byte {data[err.start]:#04x} at "
                f"offset {err.start}): pass a YAML recipe"
            ) from None
        if not [
            line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]:
            raise ConfigError(
                f"--config {path} is empty: no settings in it (drop it, or write "
                "the recipe's keys: trainer, model, data)"
            )
        try:
            settings = load_yaml(text)
        except yaml.constructor.ConstructorError as err:  # a key given twice, with the file
            raise ConfigError(f"--config {path}: {err.problem}") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise ConfigError(
                f"--config {path} is not valid YAML: {getattr(err, 'problem', None) or err}{where}"
            ) from None
        if not isinstance(settings, dict):
            raise ConfigError(
                f"--config {path} is not a mapping of settings (it holds a "
                f"{type(settings).__name__}): write the recipe's keys: trainer, "
                "model, data"
            )


def run_lightning_cli(args: Sequence[str]) -> LitOptimCLI:
    check_config_files(args)
    return LitOptimCLI(
        args=with_default_classes(args),
        # Re-running into the same log directory overwrites its config.yaml instead of failing.
        save_config_kwargs={"overwrite": True},
        **_CLI_KWARGS,
    )


# A run that leaves nothing behind and prints no bar: what the finders, lit-tune's trials and
# compare's seed runs give the Trainer, whatever the recipe says (their own lines report).
SCRATCH_TRAINER_ARGS = (
    "--trainer.logger=false",
    "--trainer.enable_checkpointing=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
)


def cli_objects(config: str | Path | None, *overrides: str) -> LitOptimCLI:
    """The module, data module and Trainer that ``lit-optim fit --config CONFIG OVERRIDES``
    would build, not run and not saving a config.yaml (tuning and comparisons fit them).
    ``config`` None: the overrides alone (``--model my_pkg.Module …``)."""
    head = ["--config", str(config)] if config is not None else []
    check_config_files([*head, *overrides])
    cli = LitOptimCLI(
        run=False,
        save_config_callback=None,
        args=with_default_classes([*head, *overrides]),
        **_CLI_KWARGS,
    )
    if not cli.trainer.loggers:  # a scratch run (SCRATCH_TRAINER_ARGS)
        # The recipe's callbacks that only write to a logger have nothing to write to, and
        # refuse to start without one (LearningRateMonitor, DeviceStatsMonitor): every trial
        # of a recipe that `lit-optim fit` runs fine would fail.
        callbacks = cli.trainer.callbacks  # type: ignore[attr-defined]  # set by its connector
        cli.trainer.callbacks = [  # type: ignore[attr-defined]
            cb for cb in callbacks if not isinstance(cb, _LOGGER_ONLY_CALLBACKS)
        ]
    return cli


_LOGGER_ONLY_CALLBACKS = (LearningRateMonitor, DeviceStatsMonitor)


_NOISE = (
    "Does not validate against any",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Given value:",
    "Expected a <class 'NoneType'>",
    "Expected a path but",
)


# The sections of a lit-optim fit recipe (tests/cli/test_cli.py checks them against the parser):
# the candidates for a misspelt top-level key such as `trainr:`.
RECIPE_SECTIONS = ("seed_everything", "trainer", "model", "data", "ckpt_path", "objective", "test")


def _unknown_key_hint(text: str) -> str:
    """'did you mean …?' for an unknown top-level or trainer key, as jsonargparse words it:
    ``unrecognized arguments: --trainer.max_epocs 2`` (a flag) or ``does not accept option
    'trainr.max_epochs'`` (a recipe key). Model and data keys get theirs from their class."""
    found = re.search(r"unrecognized arguments: --([\w.]+)", text) or re.search(
        r"does not accept option '([\w.]+)'", text
    )
    if not found:
        return ""
    section, _, key = found.group(1).partition(".")
    if section not in RECIPE_SECTIONS:
        return did_you_mean(section, RECIPE_SECTIONS)
    if section == "trainer" and key:
        params = [p for p in inspect.signature(L.Trainer.__init__).parameters if p != "self"]
        close = difflib.get_close_matches(key.split(".")[0], params, n=3, cutoff=0.8)
        return f"did you mean {', '.join(repr('trainer.' + c) for c in close)}?" if close else ""
    return ""


def parse_error_line(err: BaseException) -> str:
    """jsonargparse's nested complaint as one line, with a did-you-mean for an unknown key."""
    lines = [line.strip().lstrip("- ") for line in str(err).splitlines()]
    kept = [line for line in lines if line and not line.startswith(_NOISE)]
    text = " ".join(kept)
    text = re.sub(r'^Parser key "([^"]+)":\s*', r"\1: ", text)
    text = re.sub(r"Problem with given class_path '([^']+)':\s*", r"\1: ", text)
    given = next(
        (line[len("Given value:") :].strip() for line in lines if line.startswith("Given value:")),
        "",
    )
    text = text.replace(
        "Import path does not correspond", f"{given!r} is not a class path, or does not correspond"
    )
    nonfinite = re.search(
        r'Parser key "([^"]+)":\s*Expected a <class .float.>\. Got value: '
        r"([+-]?(?:nan|inf(?:inity)?))\b",
        str(err),
        re.IGNORECASE,
    )
    if nonfinite:  # jsonargparse's float type refuses them with no word of why
        prefix = text.split(": ")[0] + "." if ": " in text else ""
        return f"{prefix}{nonfinite.group(1)} must be a finite number, got {nonfinite.group(2)}"
    hint = _unknown_key_hint(text)
    if hint:
        return f"{text}; {hint}"
    unknown = re.search(r"Option '([^']+)' is not accepted", text)
    owner = re.search(r"(?:^|: )([\w.]+\.[A-Z]\w*): ", text)
    if unknown and owner:
        params: Mapping[str, Any]
        try:
            params = inspect.signature(import_object(owner.group(1))).parameters
        except Exception:  # noqa: BLE001 - the hint is optional
            params = {}
        hint = did_you_mean(
            unknown.group(1), [p for p in params if p not in ("self", "args", "kwargs")]
        )
        if hint:
            text += f"; {hint}"
    return text


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
        isinstance(err, ValueError) and str(err).startswith("Does not validate against any")
    ):
        return parse_error_line(err)
    if isinstance(err, MisconfigurationException):
        line = " ".join(str(err).split())
        if "Trainer(devices=" in line:  # Lightning says what is wrong, not what is allowed
            line = (
                line.rstrip(".") + "; trainer.devices is a count >= 1, a list of device "
                "indices such as [0, 1], -1 (all) or auto"
            )
        return line
    misfit = chained_error(err, RuntimeError)
    if misfit is not None and str(misfit).startswith("Error(s) in loading state_dict"):
        return checkpoint_misfit_line(str(misfit))
    return None


def checkpoint_misfit_line(message: str) -> str:
    """torch's "Error(s) in loading state_dict" (a line per tensor) as one line: the checkpoint
    was trained with other options (a width, a depth) than the recipe builds now."""
    sizes = re.findall(
        r"size mismatch for ([\w.]+): copying a param with shape torch.Size\("
        r"(\[[^\]]*\])\) from checkpoint, the shape in current model is "
        r"torch.Size\((\[[^\]]*\])\)",
        message,
    )
    missing = re.search(r"Missing key\(s\) in state_dict: ([^.]*)\.", message)
    unexpected = re.search(r"Unexpected key\(s\) in state_dict: ([^.]*)\.", message)
    parts = [f"{name} is {ckpt} there, {now} here" for name, ckpt, now in sizes[:2]]
    if missing:
        parts.append(f"the model has {missing.group(1).split(',')[0]} but the checkpoint not")
    if unexpected:
        parts.append(f"the checkpoint has {unexpected.group(1).split(',')[0]} but the model not")
    more = len(sizes) - 2 if len(sizes) > 2 else 0
    return (
        f"the checkpoint (--ckpt_path) does not fit the model the recipe builds: "
        f"{'; '.join(parts) or 'its weights differ'}{f' (and {more} more)' if more else ''}. "
        "Give the options it was trained with (its run's config.yaml, beside "
        "checkpoints/), or a checkpoint of this model"
    )

"""The ``lit-optim`` command: LightningCLI's fit/validate/test/predict plus ``list``,
``lr-find`` and ``batch-find``.

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

import os
import signal
import sys
import warnings
from collections.abc import Sequence

from lit_optim.catalog.errors import LitOptimError, UnknownNameError
from lit_optim.catalog.registry import did_you_mean
from lit_optim.cli.errors import Interrupted

# Lightning, torch and the LightningCLI are imported inside main(), after --version: a
# version query costs no framework import (bench/README.md, costs).

__all__ = ["list_command", "main"]

LIST_USAGE = "usage: lit-optim list [optimizers|schedulers|models|datasets]"


def list_command(args: Sequence[str]) -> None:
    from lit_optim.cli.listing import KINDS, format_catalog

    if args and args[0] in ("-h", "--help"):
        print(
            f"{LIST_USAGE}\n\nPrints the registered names (optimizers, LR schedulers, models, "
            "datasets: built-in and from installed plugins), each with its description and "
            "keyword arguments; with a kind, only that catalogue."
        )
        return
    if len(args) > 1:
        raise LitOptimError(LIST_USAGE)
    if args:
        kind = args[0].lower()
        if kind not in KINDS:
            hint = did_you_mean(kind, KINDS, cutoff=0.5)
            raise UnknownNameError(
                f"unknown catalogue {args[0]!r}; {hint + ' ' if hint else ''}choose one of: "
                f"{', '.join(KINDS)}"
            )
    print(format_catalog(args[0].lower() if args else None))


TOP_HELP = """\
usage: lit-optim [-h] [--version] {fit,validate,test,predict,list,lr-find,batch-find} ...

lit-optim: fit, validate, test and predict any LightningModule with Lightning's CLI
(ClassificationTask and ClassificationData by default), with optimizers and LR schedules
chosen by name.

commands:
  fit          train: lit-optim fit --config recipes/digits/mlp.yaml [--model.lr 0.01 ...]
  validate     one epoch over the validation set (--ckpt_path best|last|FILE)
  test         one epoch over the test set (--ckpt_path best|last|FILE)
  predict      predictions of a checkpoint
  list         lit-optim list [optimizers|schedulers|models|datasets]: every registered
               name with its description and kwargs
  lr-find      the learning-rate range test on a recipe: lit-optim lr-find --config R
  batch-find   the largest batch and the fastest one: lit-optim batch-find --config R

options:
  -h, --help   show this help and exit; `lit-optim COMMAND --help` shows a command's
               options (the task's own: `lit-optim fit --model.help ClassificationTask`)
  --version    lit-optim's and Lightning's versions
"""


def main(argv: Sequence[str] | None = None) -> None:
    words = list(sys.argv[1:] if argv is None else argv)
    if words in (["-h"], ["--help"]):  # answered without importing Lightning or torch
        print(TOP_HELP, end="")
        return
    if words == ["--version"]:
        from importlib.metadata import version

        from lit_optim import __version__

        print(f"lit-optim {__version__} (lightning {version('lightning')})")
        return
    if words and words[0] == "list":  # the catalogues: no Lightning needed
        try:
            list_command(words[1:])
        except LitOptimError as err:
            _die(str(err))
        return
    if not sys.stderr.isatty():
        # A bar redrawn with carriage returns is noise in a log file: Lightning's lr finder
        # draws one with no option to turn it off. tqdm reads TQDM_* defaults when it is
        # imported (below, with Lightning); a user's own TQDM_DISABLE is kept.
        os.environ.setdefault("TQDM_DISABLE", "1")
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lit_optim.catalog.errors import disk_fault, disk_fault_words
    from lit_optim.cli.errors import TrainingDiverged
    from lit_optim.cli.lightning_cli import config_error_line, run_lightning_cli
    from lit_optim.cli.trainer_setup import silence_lightning_noise

    silence_lightning_noise()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not SIG_IGN (a `&` job)
        signal.signal(signal.SIGINT, _interrupt)
    # sys.argv stays as it is: Lightning's DDP launcher starts the other ranks with it. The
    # args also go in explicitly (with the default classes; the finders add their scratch
    # settings), which LightningCLI warns about when it sees both: not the user's doing.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    try:
        if words and words[0] in ("lr-find", "batch-find"):
            from lit_optim.cli.find import batch_find_command, lr_find_command

            (lr_find_command if words[0] == "lr-find" else batch_find_command)(words[1:])
        else:
            try:
                run_lightning_cli(words)
            finally:
                _close_process_group()
    except TrainingDiverged as err:
        print(f"lit-optim: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except (SIGTERMException, Interrupted) as err:
        # Lightning ends fit on SIGTERM with SystemExit() (status 0), and on Ctrl-C with status
        # 1 after its own message; a stopped run is neither finished nor failed: 128 + the
        # signal, the shell's convention. last.ckpt, when the recipe keeps one, resumes it.
        signum = signal.SIGINT if isinstance(err, Interrupted) else signal.SIGTERM
        print(f"lit-optim: interrupted by {signum.name}; the run did not finish", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    except Exception as err:  # noqa: BLE001 - sorted by config_error_line
        line = config_error_line(err)
        disk = disk_fault(err)
        if line is None and disk is not None:  # a checkpoint or a log that could not be written
            line = (
                f"a file of the run could not be written ({disk_fault_words(disk)}): free "
                "space on the disk of the run's folder (or give --trainer.default_root_dir "
                "on another disk) and run again; a run that saved last.ckpt resumes with "
                "--ckpt_path last"
            )
        if line is None:
            raise  # not caused by the input: a bug keeps its traceback
        _die(line)


def _interrupt(signum, frame) -> None:
    raise Interrupted()


def _close_process_group() -> None:
    """End the DDP process group Lightning leaves open. Left to interpreter exit, gloo's
    threads are destroyed while still joinable: "terminate called without an active
    exception" and SIGABRT after a finished fit, on about one DDP run in eight."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _die(message: str) -> None:
    print(f"lit-optim: error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


if __name__ == "__main__":
    main()

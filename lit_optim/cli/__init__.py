"""The ``lit-optim`` command: a LightningCLI (``main``), ``list``, ``lr-find`` / ``batch-find``,
and the Trainer defaults it brings. The top layer of ``lit_optim``."""

from typing import TYPE_CHECKING

from lit_optim.catalog.lazy import lazy_exports

# for tools that build a run the way `lit-optim fit` does (lit-tune):
# public name -> the module that defines it, imported on first use
_EXPORTS = {
    "SCRATCH_TRAINER_ARGS": "lit_optim.cli.lightning_cli",
    "cli_objects": "lit_optim.cli.lightning_cli",
    "config_error_line": "lit_optim.cli.lightning_cli",
    "scratch_objects": "lit_optim.cli.find",
}

if TYPE_CHECKING:  # `name as name`: a re-export (editors and type checkers resolve it)
    from lit_optim.cli.find import scratch_objects as scratch_objects
    from lit_optim.cli.lightning_cli import SCRATCH_TRAINER_ARGS as SCRATCH_TRAINER_ARGS
    from lit_optim.cli.lightning_cli import cli_objects as cli_objects
    from lit_optim.cli.lightning_cli import config_error_line as config_error_line

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

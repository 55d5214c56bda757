"""Finders for any LightningModule: the learning-rate range test and the batch-size search."""

from typing import TYPE_CHECKING

from lit_optim.catalog.lazy import lazy_exports

# the learning-rate range test and the batch-size search:
# public name -> the module that defines it, imported on first use
_EXPORTS = {
    "RangeTest": "lit_optim.finders.lr_range",
    "check_range_args": "lit_optim.finders.lr_range",
    "check_takes_lr": "lit_optim.finders.lr_range",
    "run_range_test": "lit_optim.finders.lr_range",
    "write_curve": "lit_optim.finders.lr_range",
    "BatchSearch": "lit_optim.finders.batch_size",
    "check_has_batch_size": "lit_optim.finders.batch_size",
    "run_batch_search": "lit_optim.finders.batch_size",
    "SEARCH_MODES": "lit_optim.finders.batch_size",
}

if TYPE_CHECKING:  # `name as name`: a re-export (editors and type checkers resolve it)
    from lit_optim.finders.batch_size import SEARCH_MODES as SEARCH_MODES
    from lit_optim.finders.batch_size import BatchSearch as BatchSearch
    from lit_optim.finders.batch_size import check_has_batch_size as check_has_batch_size
    from lit_optim.finders.batch_size import run_batch_search as run_batch_search
    from lit_optim.finders.lr_range import RangeTest as RangeTest
    from lit_optim.finders.lr_range import check_range_args as check_range_args
    from lit_optim.finders.lr_range import check_takes_lr as check_takes_lr
    from lit_optim.finders.lr_range import run_range_test as run_range_test
    from lit_optim.finders.lr_range import write_curve as write_curve

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

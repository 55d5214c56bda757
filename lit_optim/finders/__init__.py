"""Finders for any LightningModule: the learning-rate range test and the batch-size search."""

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
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

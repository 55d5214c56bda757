"""The plugin catalog: registries, value checks, optimizers and schedulers by name, param
groups and the public factory (``create_optimizer`` / ``create_scheduler``).

The lowest layer: it imports torch only, never Lightning or torchmetrics, and nothing above it.
Its public names are exported from ``lit_optim`` itself; the helpers the other layers share
(name suggestions, value checks, lazy exports) from here.
"""

from lit_optim.catalog.lazy import lazy_exports

# what the other layers (tuning/ included) use beyond lit_optim's own exports:
# public name -> the module that defines it, imported on first use
_EXPORTS = {
    "DIRECTION_WORDS": "lit_optim.catalog.objective",
    "check_count": "lit_optim.catalog.checks",
    "check_number": "lit_optim.catalog.checks",
    "chained_error": "lit_optim.catalog.errors",
    "disk_fault": "lit_optim.catalog.errors",
    "disk_fault_words": "lit_optim.catalog.errors",
    "error_chain": "lit_optim.catalog.errors",
    "did_you_mean": "lit_optim.catalog.registry",
    "lazy_exports": "lit_optim.catalog.lazy",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

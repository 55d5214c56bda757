"""lit-optim's Optuna layer: search spaces, the objective, storage, studies and reports.

Names are imported on first use (PEP 562): ``lit-tune --help`` and ``--version`` load no
Optuna, Lightning or torch.
"""

from __future__ import annotations

from lit_optim.catalog import lazy_exports

_EXPORTS = {
    "SearchSpace": "tuning.search.space",
    "load_space": "tuning.search.space",
    "export_best": "tuning.runner.study",
    "load_study": "tuning.runner.study",
    "run_study": "tuning.runner.study",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""lit-optim's Optuna layer: search spaces, the objective, storage, studies and reports.

Names are imported on first use (PEP 562): ``lit-tune --help`` and ``--version`` load no
Optuna, Lightning or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SearchSpace": "tuning.search.space",
    "load_space": "tuning.search.space",
    "export_best": "tuning.runner.study",
    "load_study": "tuning.runner.study",
    "run_study": "tuning.runner.study",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tuning' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

"""lit-optim's Optuna layer: search spaces, the objective, storage, studies and reports.

Names are imported on first use (PEP 562): ``lit-tune --help`` and ``--version`` load no
Optuna, Lightning or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lit_optim.catalog import lazy_exports

_EXPORTS = {
    "SearchSpace": "tuning.search.space",
    "load_space": "tuning.search.space",
    "export_best": "tuning.runner.study",
    "load_study": "tuning.runner.study",
    "run_study": "tuning.runner.study",
}

# The same names for editors and type checkers, which cannot follow the table above (as
# optuna/__init__.py pairs its lazy imports with these).
if TYPE_CHECKING:  # `name as name`: a re-export
    from tuning.runner.study import (
        export_best as export_best,
    )
    from tuning.runner.study import (
        load_study as load_study,
    )
    from tuning.runner.study import (
        run_study as run_study,
    )
    from tuning.search.space import SearchSpace as SearchSpace
    from tuning.search.space import load_space as load_space

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

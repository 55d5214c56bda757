"""lit-optim's Optuna layer: search spaces, the objective, storage, studies and reports."""

from tuning.search.space import SearchSpace, load_space
from tuning.runner.study import export_best, load_study, run_study

__all__ = ["SearchSpace", "export_best", "load_space", "load_study", "run_study"]

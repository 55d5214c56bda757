"""Optuna's samplers and pruners by the names lit-tune takes (``--sampler``, ``--pruner``).

Optuna is imported when one is built, not when the names are read: ``lit-tune --help`` lists
them without loading Optuna.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lit_optim import UnknownNameError
from lit_optim.catalog import did_you_mean

if TYPE_CHECKING:
    import optuna

    from tuning.search.space import SearchSpace

__all__ = [
    "ALGORITHMS",
    "MAX_FAILURES",
    "PRUNERS",
    "SAMPLERS",
    "check_algorithm",
    "make_pruner",
    "make_sampler",
    "median_warmup",
]

SAMPLERS = ("tpe", "random", "qmc", "cmaes", "gp", "grid")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
# --algorithm: the sampler picks and the pruner stops (optuna), or population based training
# inside each population (pbt: tuning.runner.pbt).
ALGORITHMS = ("optuna", "pbt")
MAX_FAILURES = 3  # consecutive failed trials that stop a study (--max-failures)


def _check(name: str, names: tuple[str, ...], kind: str) -> None:
    if name not in names:
        hint = did_you_mean(name, names, cutoff=0.5) or f"choose one of: {', '.join(names)}"
        raise UnknownNameError(f"unknown {kind} {name!r}; {hint}")


def check_algorithm(name: str) -> None:
    _check(name, ALGORITHMS, "algorithm")


def make_sampler(name: str, space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    _check(name, SAMPLERS, "sampler")
    from optuna import samplers

    if name == "grid":
        return samplers.GridSampler(space.grid(), seed=seed)
    kind: Any = {
        "tpe": samplers.TPESampler,
        "random": samplers.RandomSampler,
        "qmc": samplers.QMCSampler,
        "cmaes": samplers.CmaEsSampler,
        "gp": samplers.GPSampler,
    }[name]
    return kind(seed=seed)


def median_warmup(epochs: int) -> int:
    """Epochs the median pruner waits: a quarter of the run, at least 2. An early epoch says
    little about a run whose accuracy still rises at epoch 20 (a fixed 2 cut a 30-epoch study's
    trials flat at epoch 3)."""
    return max(2, epochs // 4)


def make_pruner(name: str, epochs: int = 20) -> optuna.pruners.BasePruner:
    """``epochs``: the run's length (the steps the pruners see are validation epochs)."""
    _check(name, PRUNERS, "pruner")
    from optuna import pruners

    if name == "median":
        return pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=median_warmup(epochs))
    if name == "hyperband":
        return pruners.HyperbandPruner(max_resource=max(1, epochs))
    if name == "successive_halving":
        # Optuna's "auto" min_resource is this same value, but known only once a trial has
        # completed: a population's first members would all train to the end unjudged.
        return pruners.SuccessiveHalvingPruner(min_resource=max(1, epochs // 100))
    return pruners.NopPruner()

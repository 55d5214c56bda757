"""Population based training's policy (``lit-tune run --algorithm pbt``): which members copy
which, how a copy's lr and weight decay are explored, and the record each new trial keeps.
The mechanics (copying a member in memory, telling and asking trials) are the population's
(``tuning.runner.population``).

Every ``interval`` epochs the members are ranked by the study's metric; each member of the
bottom ``quantile`` takes the state of one of the top ``quantile`` (weights, buffers,
optimizer state, schedule position: ``copy_member``), its trial ends PRUNED, and a new trial
continues in its slot with explored values: each explored parameter is resampled within the
space's range with probability 0.25, else the parent's value times 0.8 or 1.2, kept in the
range (Ray Tune's PBT defaults). Optuna has no PBT (optuna#287); Ray's copies checkpoints
between processes, here a copy is an in-memory index assignment.

What can change while a member trains is what an optimizer's param groups hold: the lr (its
schedule rescaled, ``lit_optim.catalog.rescale``) and the weight decay. Other member
parameters are inherited from the parent; structural ones are the population's.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from optuna.distributions import FloatDistribution, IntDistribution

from lit_optim import ConfigError
from tuning.search.recipe import apply_overrides
from tuning.search.space import SearchSpace

__all__ = [
    "EXPLORED_KEYS",
    "QUANTILE",
    "PBTSettings",
    "check_pbt",
    "default_interval",
    "explore",
    "explored_paths",
    "lineage",
    "pairs",
    "replay_recipe",
    "resumed_lineage",
]

EXPLORED_KEYS = ("lr", "weight_decay")  # what a param group holds: changeable mid-run
FACTORS = (0.8, 1.2)
RESAMPLE_PROBABILITY = 0.25
QUANTILE = 0.25


@dataclass(frozen=True)
class PBTSettings:
    interval: int  # epochs between exploits
    quantile: float = QUANTILE  # the bottom fraction that copies the top one
    seed: int = 0


def default_interval(epochs: int) -> int:
    """Five or six exploit rounds a run (Ray's examples perturb every few epochs)."""
    return max(1, epochs // 6)


def _key(path: str) -> str | None:
    parts = path.split(".")
    if parts[0] != "model" or len(parts) < 2:
        return None
    return parts[2] if parts[1] == "init_args" and len(parts) > 2 else parts[1]


def explored_paths(space: SearchSpace) -> dict[str, str]:
    """{search-space path: lr | weight_decay} of the ranges PBT explores."""
    out = {}
    for param in space.params:
        key, dist = _key(param.path), param.distribution
        ranged = isinstance(dist, FloatDistribution | IntDistribution) and dist.low > 0
        if key in EXPLORED_KEYS and ranged and not param.when:
            out[param.path] = key
    return out


def check_pbt(
    space: SearchSpace,
    *,
    interval: int | None,
    quantile: float,
    population: int | str,
    sampler: str,
    epochs: int,
) -> None:
    """Every way ``--algorithm pbt`` cannot run, before anything is written."""
    if not explored_paths(space):
        ranges = [
            p.path
            for p in space.params
            if isinstance(p.distribution, FloatDistribution | IntDistribution)
        ]
        raise ConfigError(
            "--algorithm pbt explores the model's lr and weight_decay while members train; the "
            "space has no range for either (give model.lr a range such as log[1e-4, 1e-1], "
            "low > 0)" + (f"; its ranges: {', '.join(ranges)}" if ranges else "")
        )
    if interval is not None and not 1 <= interval < epochs:
        raise ConfigError(
            f"--pbt-interval must be between 1 and {epochs - 1} epochs (the run "
            f"trains {epochs}), got {interval}"
        )
    if not (isinstance(quantile, float | int) and 0 < quantile <= 0.5):
        raise ConfigError(
            f"--pbt-quantile must be above 0 and at most 0.5 (the bottom fraction "
            f"that copies the top one), got {quantile!r}"
        )
    if sampler == "grid":
        raise ConfigError(
            "--algorithm pbt explores values around its members' and the grid "
            "sampler has only its points: use another --sampler (tpe, random …)"
        )
    if isinstance(population, int) and population < 2:
        raise ConfigError(
            f"--algorithm pbt needs a population of at least 2 (a member copies "
            f"another), got --population {population}"
        )


def pairs(
    values: list[float], maximize: bool, quantile: float, rng: random.Random
) -> list[tuple[int, int]]:
    """(source, target) positions: each of the bottom ``quantile`` (non-finite values first)
    takes a random one of the top ``quantile``. Ray's rule for the size: ceil(n·quantile), at
    most half the members."""
    n = len(values)
    size = min(math.ceil(n * quantile), n // 2)
    if size == 0:
        return []

    def rank(position: int) -> float:
        value = values[position]
        if not math.isfinite(value):
            return -math.inf
        return value if maximize else -value

    order = sorted(range(n), key=rank, reverse=True)
    top, bottom = order[:size], order[n - size :]
    return [(rng.choice(top), target) for target in bottom]


def explore(params: dict[str, Any], space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    """The parent's ``params`` with each explored path resampled (probability 0.25) or
    scaled by 0.8 or 1.2, kept in its range."""
    out = dict(params)
    explored = explored_paths(space)
    for param in space.params:
        dist = param.distribution
        if param.path not in explored or param.path not in params:
            continue
        assert isinstance(dist, FloatDistribution | IntDistribution)  # what explored_paths keeps
        if rng.random() < RESAMPLE_PROBABILITY:
            value = (
                math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
                if dist.log
                else rng.uniform(dist.low, dist.high)
            )
        else:
            value = params[param.path] * rng.choice(FACTORS)
        value = min(max(value, dist.low), dist.high)
        out[param.path] = value if isinstance(dist, FloatDistribution) else int(round(value))
    return out


def lineage(
    parent: dict[str, Any] | None,
    parent_number: int,
    params: dict[str, Any],
    new_params: dict[str, Any],
    space: SearchSpace,
    *,
    epoch: int,
    slot: int,
) -> dict[str, Any]:
    """The new trial's ``pbt`` user attribute: its parent, generation, slot and the epoch it
    took over, and the lr / weight decay schedule of its whole line (``start``: the root's
    values, ``changes``: one entry per exploit) that ``replay_recipe`` turns into a recipe."""
    paths = explored_paths(space)
    parent = parent or _root_line(parent_number, params, paths)
    change = {"epoch": epoch, **{paths[p]: new_params[p] for p in paths if p in new_params}}
    return {
        "parent": parent_number,
        "root": parent["root"],
        "generation": parent["generation"] + 1,
        "slot": slot,
        "epoch": epoch,
        "start": parent["start"],
        "changes": [*parent["changes"], change],
    }


def resumed_lineage(
    record: dict[str, Any] | None,
    number: int,
    params: dict[str, Any],
    space: SearchSpace,
    *,
    epoch: int,
    slot: int,
) -> dict[str, Any]:
    """The ``pbt`` record of a trial that goes on from killed trial ``number``'s state at
    ``epoch`` (a rerun resuming its population): the same line and values, no change (not a
    new generation), its parent the killed trial."""
    line = record or _root_line(number, params, explored_paths(space))
    return {**line, "parent": number, "slot": slot, "epoch": epoch, "resumed": True}


def _root_line(number: int, params: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """The line a trial of the first members starts (it has no ``pbt`` record): its own lr
    and weight decay from epoch 0, no change yet."""
    return {
        "generation": 0,
        "root": number,
        "start": {paths[p]: params[p] for p in paths if p in params},
        "changes": [],
    }


def replay_recipe(
    recipe: dict[str, Any], params: dict[str, Any], record: dict[str, Any], space: SearchSpace
) -> dict[str, Any]:
    """The recipe that replays a PBT trial: its line's first lr and weight decay, the
    parameters it inherited, and a ``HyperparameterSchedule`` callback with the changes."""
    paths = explored_paths(space)
    first = {path: record["start"][key] for path, key in paths.items() if key in record["start"]}
    merged = apply_overrides(recipe, {**params, **first})
    trainer = merged.setdefault("trainer", {})
    trainer["callbacks"] = [
        *(trainer.get("callbacks") or []),
        {
            "class_path": "lit_optim.callbacks.HyperparameterSchedule",
            "init_args": {
                "start": dict(record["start"]),
                "changes": [dict(c) for c in record["changes"]],
            },
        },
    ]
    return merged

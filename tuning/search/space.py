"""Search spaces: ``recipes/<dataset>/search.yaml``, parsed and checked before any trial runs.

    metric: val_acc            # what the objective returns (logged by the task)
    direction: maximize        # optional where the metric declares it (lit_optim.catalog.objective)
    params:
      model.lr: log[1.0e-5, 1.0]             # log-uniform
      model.weight_decay: log[1.0e-6, 1.0e-1]
      data.batch_size: [32, 64, 128, 256, 512]   # categorical
      model.optimizer: [sgd, adam, adamw]
      model.optimizer_kwargs.momentum:
        distribution: uniform[0.5, 0.99]
        when: {model.optimizer: [sgd]}        # conditional: only for the SGD family

A value is a list (categorical), ``log[low, high]``, ``uniform[low, high]``,
``int[low, high]`` or ``intlog[low, high]``. Keys are the same dotted paths as the CLI
(``--model.lr``), so a trial's parameters are command-line overrides of the recipe.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import optuna
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from lit_optim import (
    DATASETS,
    MODELS,
    OPTIMIZERS,
    SCHEDULERS,
    ConfigError,
    Registry,
    load_yaml,
    resolve_objective,
)

__all__ = [
    "Distribution",
    "Param",
    "SearchSpace",
    "load_space",
    "load_space_dict",
    "parse_space",
]

_RANGE = re.compile(r"^\s*(log|uniform|int|intlog)\s*\[\s*([^,\]]+)\s*,\s*([^\]]+)\s*\]\s*$")
# Names in these keys must be registry names: checked (with close matches) before any trial.
_REGISTRIES: dict[str, Registry[Any]] = {
    "model.optimizer": OPTIMIZERS,
    "model.scheduler": SCHEDULERS,
    "model.network": MODELS,
    "data.dataset": DATASETS,
}
_ROOTS = ("model.", "data.", "trainer.")
# What a space's entries parse to: a list of choices, a float range, an int range.
Distribution = CategoricalDistribution | FloatDistribution | IntDistribution


@dataclass(frozen=True)
class Param:
    path: str
    distribution: Distribution
    when: dict[str, list[Any]] = field(default_factory=dict)

    def active(self, chosen: dict[str, Any]) -> bool:
        return all(chosen.get(key) in values for key, values in self.when.items())


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    metric: str = "val_acc"
    # "maximize" / "minimize" as written (min / max accepted); None: not written, resolved
    # before trial 0 from the metric itself (tuning.search.preflight.resolve_direction).
    direction: str | None = None

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's overrides, {dotted path: value}, conditionals included when active."""
        chosen: dict[str, Any] = {}
        for param in self.params:
            if param.active(chosen):
                chosen[param.path] = _suggest(trial, param.path, param.distribution)
        return chosen

    def first_values(self, **forced: Any) -> dict[str, Any]:
        """A trial's overrides made of each parameter's first value (a list's first choice, a
        range's low end), conditionals included when active: what is parsed before trial 0.
        ``forced`` ({path: value}) replaces some of them, and conditionals follow."""
        chosen: dict[str, Any] = {}
        for param in self.params:
            if param.active(chosen):
                dist = param.distribution
                chosen[param.path] = forced.get(
                    param.path,
                    (dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low),
                )
        return chosen

    def other_choices(self) -> list[tuple[str, Any]]:
        """(path, value) for every categorical value but the first: each is parsed before
        trial 0 too, with the parameters it switches on."""
        return [
            (p.path, value)
            for p in self.params
            if isinstance(p.distribution, CategoricalDistribution)
            for value in p.distribution.choices[1:]
        ]

    def range_ends(self) -> list[tuple[str, Any]]:
        """(path, high end) for every range: its low end is among the first values, so both
        ends of each range are parsed before trial 0 (momentum over [0.5, 1.5] fails there,
        not in the trial that draws 1.2)."""
        return [
            (p.path, p.distribution.high)
            for p in self.params
            if not isinstance(p.distribution, CategoricalDistribution)
        ]

    def grid(self) -> dict[str, list[Any]]:
        """The values a grid sampler walks: every parameter must be categorical."""
        continuous = [
            p.path for p in self.params if not isinstance(p.distribution, CategoricalDistribution)
        ]
        if continuous:
            raise ConfigError(
                "the grid sampler needs a list of values for every parameter; "
                f"{', '.join(continuous)} {'is' if len(continuous) == 1 else 'are'} a range"
            )
        # every one categorical: checked above
        return {
            p.path: list(cast(CategoricalDistribution, p.distribution).choices) for p in self.params
        }


def _suggest(trial: optuna.Trial, name: str, dist: Distribution) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_categorical(name, dist.choices)


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a number") from None


def _distribution(spec: Any, where: str) -> Distribution:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where}: an empty list of choices")
        return CategoricalDistribution(spec)
    match = _RANGE.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ConfigError(
            f"{where}: expected a list of choices or log[low, high] / uniform[low, high] / "
            f"int[low, high] / intlog[low, high], got {spec!r}"
        )
    kind, low, high = match.group(1), _number(match.group(2), where), _number(match.group(3), where)
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ConfigError(f"{where}: low must be below high, got [{low:g}, {high:g}]")
    if kind in ("log", "intlog") and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low:g}")
    if kind in ("int", "intlog"):
        if low != int(low) or high != int(high):
            raise ConfigError(f"{where}: int ranges need whole numbers, got [{low:g}, {high:g}]")
        return IntDistribution(int(low), int(high), log=kind == "intlog")
    return FloatDistribution(low, high, log=kind == "log")


def _check_names(path: str, dist: Distribution, where: str) -> None:
    registry = _REGISTRIES.get(path)
    if registry is not None and isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            try:
                registry.get(cast(Any, choice))  # a choice that is no name is refused there
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None


def parse_space(raw: dict[str, Any], source: str = "search space") -> SearchSpace:
    if not isinstance(raw, dict) or not isinstance(raw.get("params"), dict) or not raw["params"]:
        raise ConfigError(f"{source}: needs a 'params' mapping of dotted paths to distributions")
    unknown = sorted(set(raw) - {"params", "metric", "direction"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; expected params, metric, direction"
        )
    direction = raw.get("direction")
    if direction is not None:
        objective = resolve_objective("metric", direction, given_as=f"{source}: direction")
        assert objective is not None  # a given direction is one, or an error
        direction = objective.study_direction
    metric = raw.get("metric", "val_acc")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"{source}: metric must be the name of a logged metric, got {metric!r}")
    params: list[Param] = []
    for path, spec in raw["params"].items():
        where = f"{source}: {path}"
        if not isinstance(path, str) or not path.startswith(_ROOTS):
            raise ConfigError(f"{where}: keys are dotted paths under model., data. or trainer.")
        when: dict[str, Any] = {}
        if isinstance(spec, dict):
            extra = sorted(set(spec) - {"distribution", "when"})
            if extra or "distribution" not in spec:
                raise ConfigError(f"{where}: a mapping needs 'distribution' (and optional 'when')")
            when = spec.get("when") or {}
            if not isinstance(when, dict) or not all(isinstance(v, list) for v in when.values()):
                raise ConfigError(f"{where}: 'when' maps a parameter to the list of its values")
            earlier = {p.path for p in params}
            missing = [k for k in when if k not in earlier]
            if missing:
                raise ConfigError(
                    f"{where}: 'when' refers to {', '.join(missing)}, which must be "
                    "a searched parameter listed above it"
                )
            spec = spec["distribution"]
        dist = _distribution(spec, where)
        _check_names(path, dist, where)
        params.append(Param(path, dist, {k: list(v) for k, v in when.items()}))
    return SearchSpace(tuple(params), metric=metric, direction=direction)


def load_space_dict(path: str | Path) -> dict[str, Any]:
    """The search-space file as YAML data; a missing file or a YAML error is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space {path} does not exist")
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"search space {path} is not UTF-8 text (byte at offset {err.start}): pass a YAML file"
        ) from None
    except yaml.YAMLError as err:
        problem = " ".join((getattr(err, "problem", None) or str(err)).split())
        raise ConfigError(f"search space {path} is not valid YAML: {problem}") from None


def load_space(path: str | Path) -> SearchSpace:
    return parse_space(load_space_dict(path), source=str(path))

"""Recipes as nested dicts: load one, apply a trial's dotted overrides, write the result."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from lit_optim import ConfigError, load_yaml

__all__ = ["apply_overrides", "load_recipe", "write_recipe"]


def load_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist")
    try:
        recipe = load_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"recipe {path} is not UTF-8 text (byte at offset {err.start}): pass a YAML file"
        ) from None
    except yaml.YAMLError as err:  # a syntax error or a !!python tag
        problem = " ".join((getattr(err, "problem", None) or str(err)).split())
        raise ConfigError(f"recipe {path} is not valid YAML: {problem}") from None
    if not isinstance(recipe, dict):
        raise ConfigError(f"recipe {path} is not a mapping")
    return recipe


def apply_overrides(recipe: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``recipe`` with {"model.optimizer_kwargs.momentum": 0.9, …} set in place."""
    merged = copy.deepcopy(recipe)
    for path, value in overrides.items():
        node = merged
        *parents, leaf = path.split(".")
        for key in parents:
            node = _child(_into_init_args(node, key), key, path)
        _into_init_args(node, leaf)[leaf] = value
    return merged


def _into_init_args(node: dict[str, Any], key: str) -> dict[str, Any]:
    """``model.lr`` on ``model: {class_path: X, init_args: {...}}`` means ``init_args.lr``, as
    on the command line, so a space reads the same for our task and a user's module."""
    if "class_path" in node and key not in ("class_path", "init_args", "dict_kwargs"):
        return _child(node, "init_args", key)
    return node


def _child(node: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    child = node.get(key)
    if child is None:
        child = node[key] = {}
    if not isinstance(child, dict):
        raise ConfigError(f"cannot set {path}: {key} is {child!r}, not a mapping")
    return child


def write_recipe(recipe: dict[str, Any], path: str | Path, header: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(recipe, sort_keys=False)
    path.write_text(
        "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body
    )
    return path

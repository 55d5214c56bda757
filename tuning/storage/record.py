"""What a study means, stored in its user attributes when it is created: the recipe and the
search space (canonical text and SHA-256), the metric and the direction. A study resumed with
other ones would mix two experiments in one record (a val_loss stored in a maximize-val_acc
study), so that is refused with what differs, unless the user says to continue anyway.

Hashes are over the parsed YAML dumped canonically, so a comment or a reordered key in the
recipe is not a change; a changed value is.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import optuna
import yaml

from lit_optim import ConfigError

__all__ = ["check_same_record", "content_sha256", "record_of", "recipe_of"]


def content_sha256(data: Any) -> str:
    """SHA-256 of YAML/JSON data dumped canonically (key order and comments do not count)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def record_of(
    recipe: dict[str, Any],
    space: dict[str, Any],
    metric: str,
    direction: str,
    algorithm: str = "optuna",
) -> dict[str, str]:
    """The user attributes that define a study (``algorithm``: ``lit-tune run --algorithm``;
    a PBT trial's value means another thing than one trained with fixed values)."""
    return {
        "algorithm": algorithm,
        "recipe_text": yaml.safe_dump(recipe, sort_keys=False),
        "recipe_sha256": content_sha256(recipe),
        "space_text": yaml.safe_dump(space, sort_keys=False),
        "space_sha256": content_sha256(space),
        "metric": metric,
        "direction": direction,
    }


# (user attribute, what it is called in a message). A study made before a key existed is not
# compared on it.
_DEFINING = (
    ("recipe_sha256", "recipe"),
    ("space_sha256", "search space"),
    ("metric", "metric"),
    ("direction", "direction"),
    ("algorithm", "algorithm"),
)


def check_same_record(
    study: optuna.Study, record: dict[str, str], *, accept_changes: bool, where: str
) -> None:
    """ConfigError naming what differs between ``study``'s record and ``record``.

    A study made before records existed (no ``recipe_sha256``) is compared on what it has.
    """
    stored = dict(study.user_attrs)
    stored.setdefault("direction", study.direction.name.lower())
    differs = [name for key, name in _DEFINING if key in stored and stored[key] != record[key]]
    if not differs or accept_changes:
        return
    detail = ", ".join(
        f"{name} ({stored[key]!r} → {record[key]!r})"
        if key in ("metric", "direction", "algorithm")
        else name
        for key, name in _DEFINING
        if name in differs
    )
    raise ConfigError(
        f"study {study.study_name!r} in {where} was made with another {detail}; its trials "
        "would not mean the same: use a new --study name, or pass --accept-changes to continue "
        "it anyway"
    )


def recipe_of(study: optuna.Study) -> dict[str, Any] | None:
    """The recipe a study was made with, as stored in it (None for a study without a record)."""
    text = study.user_attrs.get("recipe_text")
    return yaml.safe_load(text) if text is not None else None

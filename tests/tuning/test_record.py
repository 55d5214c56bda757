"""tuning.storage.record: what a study means (recipe, space, metric, direction, algorithm),
stored when it is made and compared when it is resumed, on a real SQLite study."""

from __future__ import annotations

import hashlib
import json

import optuna
import pytest
import yaml

from lit_optim import ConfigError
from tuning.storage.record import check_same_record, content_sha256, recipe_of, record_of

RECIPE = {
    "model": {"lr": 0.01, "network_kwargs": {"hidden_dims": [32]}},
    "trainer": {"max_epochs": 2},
}
SPACE = {"params": {"model.lr": "log[1e-4, 1e-1]"}, "metric": "val_acc"}


def _study(tmp_path, record, direction="maximize"):
    study = optuna.create_study(
        study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}", direction=direction
    )
    for key, value in record.items():
        study.set_user_attr(key, value)
    return optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")


def test_the_hash_is_of_the_canonical_dump_so_key_order_does_not_count_but_a_value_does():
    reordered = {"trainer": {"max_epochs": 2}, "model": dict(reversed(RECIPE["model"].items()))}
    expected = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()
    assert content_sha256(RECIPE) == content_sha256(reordered) == expected
    changed = {**RECIPE, "trainer": {"max_epochs": 3}}
    assert content_sha256(changed) != expected


def test_a_record_round_trips_through_the_storage(tmp_path):
    record = record_of(RECIPE, SPACE, "val_acc", "maximize", "pbt")
    study = _study(tmp_path, record)
    assert recipe_of(study) == RECIPE
    assert yaml.safe_load(study.user_attrs["space_text"]) == SPACE
    assert study.user_attrs["algorithm"] == "pbt"
    check_same_record(study, record, accept_changes=False, where="runs/s")  # the same: no error


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"recipe": {**RECIPE, "trainer": {"max_epochs": 5}}}, "another recipe"),
        ({"space": {**SPACE, "metric": "val_loss"}}, "another search space"),
        ({"metric": "val_loss"}, "another metric ('val_acc' → 'val_loss')"),
        ({"direction": "minimize"}, "another direction ('maximize' → 'minimize')"),
        ({"algorithm": "optuna"}, "another algorithm ('pbt' → 'optuna')"),
    ],
)
def test_a_study_resumed_with_another_definition_is_refused_naming_what_differs(
    tmp_path, change, named
):
    stored = record_of(RECIPE, SPACE, "val_acc", "maximize", "pbt")
    study = _study(tmp_path, stored)
    args = {"recipe": RECIPE, "space": SPACE, "metric": "val_acc", "direction": "maximize"}
    args["algorithm"] = "pbt"
    args.update(change)
    new = record_of(
        args["recipe"], args["space"], args["metric"], args["direction"], args["algorithm"]
    )
    with pytest.raises(ConfigError) as err:
        check_same_record(study, new, accept_changes=False, where="runs/s/study.db")
    message = str(err.value)
    assert f"study 's' in runs/s/study.db was made with {named}" in message, message
    assert "--accept-changes" in message
    check_same_record(study, new, accept_changes=True, where="runs/s")  # the user said so


def test_a_study_made_before_records_is_compared_on_what_it_has(tmp_path):
    # No recipe or space stored: only the direction (Optuna's own) can differ.
    study = _study(tmp_path, {}, direction="minimize")
    assert recipe_of(study) is None
    same_direction = record_of(RECIPE, SPACE, "val_loss", "minimize")
    check_same_record(study, same_direction, accept_changes=False, where="old")
    with pytest.raises(ConfigError, match=r"direction \('minimize' → 'maximize'\)"):
        check_same_record(
            study,
            record_of(RECIPE, SPACE, "val_acc", "maximize"),
            accept_changes=False,
            where="old",
        )

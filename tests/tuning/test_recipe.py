"""tuning.search.recipe: a recipe loaded from a file, a trial's dotted overrides set into it
(our task's flat model section and a user's class_path / init_args alike), written back."""

from __future__ import annotations

import pytest
import yaml

from lit_optim import ConfigError
from tuning.search.recipe import apply_overrides, load_recipe, write_recipe

TASK = {"model": {"optimizer": "adam", "lr": 0.001}, "data": {"batch_size": 64}}
USER = {
    "model": {"class_path": "my.Net", "init_args": {"lr": 0.1}},
    "data": {"class_path": "my.Data"},
}


def test_overrides_go_where_the_command_line_puts_them_and_leave_the_recipe_as_it_was():
    merged = apply_overrides(
        TASK, {"model.lr": 0.01, "model.optimizer_kwargs.momentum": 0.9, "trainer.max_epochs": 3}
    )
    assert merged == {
        "model": {"optimizer": "adam", "lr": 0.01, "optimizer_kwargs": {"momentum": 0.9}},
        "data": {"batch_size": 64},
        "trainer": {"max_epochs": 3},
    }
    assert TASK["model"]["lr"] == 0.001 and "trainer" not in TASK  # a copy


def test_a_class_path_section_takes_its_overrides_into_init_args():
    merged = apply_overrides(USER, {"model.lr": 0.05, "model.head_lr": 0.2, "data.batch_size": 32})
    assert merged["model"] == {"class_path": "my.Net", "init_args": {"lr": 0.05, "head_lr": 0.2}}
    assert merged["data"] == {"class_path": "my.Data", "init_args": {"batch_size": 32}}
    # class_path itself is the section's, not an init arg
    assert apply_overrides(USER, {"model.class_path": "my.Other"})["model"]["class_path"] == (
        "my.Other"
    )


def test_an_override_through_a_value_that_is_not_a_mapping_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"cannot set data.batch_size.x: batch_size is 64"):
        apply_overrides(TASK, {"data.batch_size.x": 1})


def test_a_written_recipe_reads_back_with_its_header_as_comments(tmp_path):
    path = write_recipe(TASK, tmp_path / "trial_3" / "recipe.yaml", header="trial 3\n\nvalue 0.9")
    text = path.read_text()
    assert text.startswith("# trial 3\n#\n# value 0.9\n")
    assert yaml.safe_load(text) == TASK
    assert load_recipe(path) == TASK


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"\xff\xfe not text", "is not UTF-8 text (byte at offset 0): pass a YAML file"),
        (b"model: [1, 2", "is not valid YAML"),
        (b"- a list\n- of things\n", "is not a mapping"),
        (b"model: {lr: 1}\nmodel: {lr: 2}\n", "model"),  # a key given twice is refused
    ],
)
def test_a_recipe_that_cannot_be_read_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "recipe.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match="recipe .*") as err:
        load_recipe(path)
    assert message in str(err.value)

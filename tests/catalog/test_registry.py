"""Registry behaviour: names, aliases, overrides, close-match errors, entry-point plugins."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import pytest

from lit_optim import DATASETS, MODELS, OPTIMIZERS, SCHEDULERS, UnknownNameError
from lit_optim.catalog.registry import Registry, RegistryEntry, import_object


@dataclass(frozen=True, kw_only=True)
class Thing(RegistryEntry):
    size: int = 0


@pytest.fixture
def things():
    reg = Registry("things", Thing)
    reg.register(Thing(name="alpha", description="first", aliases=("a",)))
    reg.register(Thing(name="alphabet", description="second"))
    reg.register(Thing(name="beta", description="third", size=2))
    return reg


def test_lookup_by_name_alias_case_and_dash(things):
    assert things.get("alpha").description == "first"
    assert things.get("a").name == "alpha"
    assert things.get("  ALPHA ").name == "alpha"
    reg = Registry("things", Thing)
    reg.register(Thing(name="fashion_mnist", description="x"))
    assert reg.get("Fashion-MNIST").name == "fashion_mnist"


def test_unknown_name_lists_close_matches(things):
    with pytest.raises(UnknownNameError) as info:
        things.get("alpah")
    message = str(info.value)
    assert message.startswith("unknown thing 'alpah'; did you mean 'alpha'")
    assert "(lit-optim list things)" in message
    # A KeyError whose str() is not wrapped in quotes.
    assert isinstance(info.value, KeyError) and not message.startswith('"')


def test_unknown_name_without_close_match_lists_everything(things):
    with pytest.raises(UnknownNameError, match="choose one of: alpha, alphabet, beta"):
        things.get("zzzzzz")


def test_alias_suggests_its_entry(things):
    with pytest.raises(UnknownNameError, match="did you mean 'alpha'"):
        things.get("aa")


def test_taken_name_is_an_error_unless_override(things):
    with pytest.raises(ValueError, match="'beta' is already taken by 'beta'; pass override=True"):
        things.register(Thing(name="beta", description="again"))
    things.register(Thing(name="beta", description="replaced", size=3), override=True)
    assert things.get("beta").size == 3
    assert things.names() == ["alpha", "alphabet", "beta"]


def test_alias_cannot_take_another_name_even_with_override(things):
    with pytest.raises(ValueError, match="alias cannot replace"):
        things.register(Thing(name="gamma", description="x", aliases=("beta",)), override=True)
    with pytest.raises(ValueError, match="'a' is already taken by 'alpha'"):
        things.register(Thing(name="delta", description="x", aliases=("a",)))
    assert "gamma" not in things and "delta" not in things


@pytest.mark.parametrize("bad", ["Upper", "with space", "1st", "dash-name", ""])
def test_names_must_be_lowercase_identifiers(things, bad):
    with pytest.raises(ValueError, match="must be lowercase"):
        things.register(Thing(name=bad, description="x"))


def test_wrong_entry_type_is_rejected(things):
    with pytest.raises(TypeError, match="things entries must be Thing"):
        things.register(RegistryEntry(name="plain", description="x"))


def test_unregister(things):
    things.unregister("alpha")
    assert "alpha" not in things and "a" not in things
    with pytest.raises(UnknownNameError):
        things.unregister("alpha")


def test_import_object():
    assert import_object("math.sqrt")(9.0) == 3.0
    with pytest.raises(ValueError, match="cannot import 'math.nope'"):
        import_object("math.nope")


# --- entry-point plugins --------------------------------------------------------------------
PLUGIN_THING = Thing(name="plugged", description="from a plugin", size=7)


def plugin_many():
    return [Thing(name="p_one", description="1"), Thing(name="p_two", description="2")]


def _fake_entry_points(monkeypatch, group, specs):
    eps = [metadata.EntryPoint(name=n, value=v, group=group) for n, v in specs]

    def entry_points(*, group: str):
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr("lit_optim.catalog.registry.metadata.entry_points", entry_points)


def test_plugins_load_lazily_on_unknown_name(monkeypatch, things):
    _fake_entry_points(
        monkeypatch,
        "lit_optim.things",
        [
            ("plugged", f"{__name__}:PLUGIN_THING"),
            ("many", f"{__name__}:plugin_many"),
        ],
    )
    assert things.get("alpha").name == "alpha"  # built-in: no plugin import needed
    assert not things._plugins_loaded
    assert things.get("plugged").size == 7
    assert things.get("p_two").description == "2"
    assert things.names()[-3:] == ["plugged", "p_one", "p_two"]


def test_broken_or_clashing_plugin_is_skipped_with_warning(monkeypatch, things):
    _fake_entry_points(
        monkeypatch,
        "lit_optim.things",
        [
            ("broken", "no_such_module_xyz:thing"),
            ("clash", f"{__name__}:CLASHING"),
            ("plugged", f"{__name__}:PLUGIN_THING"),
        ],
    )
    with pytest.warns(UserWarning) as record:
        names = things.names()
    messages = " | ".join(str(w.message) for w in record)
    assert "skipped thing plugin 'broken'" in messages
    assert "skipped thing plugin 'clash'" in messages and "already taken" in messages
    assert "plugged" in names
    assert things.get("beta").description == "third"  # the built-in won the clash


CLASHING = Thing(name="beta", description="impostor")


def test_builtin_registries_use_the_documented_groups():
    assert [r.group for r in (OPTIMIZERS, SCHEDULERS, MODELS, DATASETS)] == [
        "lit_optim.optimizers",
        "lit_optim.schedulers",
        "lit_optim.models",
        "lit_optim.datasets",
    ]


def test_builtin_entries_have_descriptions():
    for registry in (OPTIMIZERS, SCHEDULERS, MODELS, DATASETS):
        for entry in registry:
            assert entry.description and entry.name == entry.name.lower()

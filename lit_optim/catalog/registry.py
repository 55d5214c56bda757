"""One generic registry, used for every kind of plugin (optimizers, schedulers, models, datasets).

A name typed in a recipe, on the command line or in an Optuna search space resolves here, so
the same vocabulary appears everywhere (``lit-optim list`` prints it). Entries are frozen
dataclasses that carry the metadata the rest of the package needs; see ``optimizers.py`` and
``schedulers.py`` for the kinds.

Other installed packages add entries through an entry-point group per kind
(``lit_optim.optimizers``, ``lit_optim.schedulers``, ``lit_optim.models``, ``lit_optim.datasets``).
An entry point may name an entry, an iterable of entries, or a zero-argument callable that
returns either. Plugins are imported lazily: only when a name is not among the built-ins, or
when the whole catalogue is listed, so a plain run never pays for them.
"""

from __future__ import annotations

import difflib
import importlib
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from lit_optim.catalog.errors import ConfigError, UnknownNameError

__all__ = ["Registry", "RegistryEntry", "did_you_mean", "import_object"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, kw_only=True)
class RegistryEntry:
    """Fields every entry has. Kinds subclass it with their own metadata."""

    name: str
    description: str
    aliases: tuple[str, ...] = ()


E = TypeVar("E", bound=RegistryEntry)


def normalize(name: str) -> str:
    """``Fashion-MNIST`` and ``fashion_mnist`` are the same name."""
    return name.strip().lower().replace("-", "_")


def did_you_mean(name: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str:
    """'did you mean 'a', 'b'?' for the close matches of ``name``, or '' if there are none."""
    close = difflib.get_close_matches(name, list(candidates), n=5, cutoff=cutoff)
    return f"did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def import_object(spec: str | Callable[..., Any]) -> Callable[..., Any]:
    """Resolve ``"package.module.Attr"`` on first use; callables pass through.

    Entries may name their factory as a string so that registering them imports nothing.
    """
    if not isinstance(spec, str):
        return spec
    module_name, _, attr = spec.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"cannot import {spec!r}: {err}") from err


class Registry(Generic[E]):
    """Entries of one kind, by lowercase name and alias.

    Args:
        kind: plural noun used in messages and in ``lit-optim list KIND``.
        entry_type: the dataclass every entry must be an instance of.
        group: the entry-point group plugins of other packages register under.
    """

    def __init__(self, kind: str, entry_type: type[E], *, group: str | None = None) -> None:
        self.kind = kind
        self.entry_type = entry_type
        self.group = group if group is not None else f"lit_optim.{kind}"
        self._entries: dict[str, E] = {}
        self._aliases: dict[str, str] = {}
        self._plugins_loaded = False

    # -- registering -------------------------------------------------------------------------
    def register(self, entry: E, *, override: bool = False) -> E:
        """Add ``entry``. A taken name is an error unless ``override=True`` replaces that entry."""
        if not isinstance(entry, self.entry_type):
            raise TypeError(
                f"{self.kind} entries must be {self.entry_type.__name__}, "
                f"got {type(entry).__name__}"
            )
        for key in (entry.name, *entry.aliases):
            if not _NAME.fullmatch(key):
                raise ValueError(
                    f"{self.kind[:-1]} name {key!r} must be lowercase letters, digits and '_', "
                    "starting with a letter"
                )
        taken = [(key, self._owner(key)) for key in (entry.name, *entry.aliases)]
        for key, owner in taken:
            if owner is None or (override and owner == entry.name):
                continue
            hint = (
                "pass override=True to replace it"
                if key == entry.name == owner
                else "an alias cannot replace another entry's name or alias"
            )
            raise ValueError(f"{self.kind[:-1]} name {key!r} is already taken by {owner!r}; {hint}")
        self.unregister(entry.name, missing_ok=True)
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name
        return entry

    def unregister(self, name: str, *, missing_ok: bool = False) -> None:
        entry = self._entries.pop(normalize(name), None)
        if entry is None:
            if missing_ok:
                return
            raise self._unknown(name)
        for alias in entry.aliases:
            self._aliases.pop(alias, None)

    def _owner(self, key: str) -> str | None:
        if key in self._entries:
            return key
        return self._aliases.get(key)

    # -- looking up --------------------------------------------------------------------------
    def get(self, name: str) -> E:
        """The entry called ``name`` (or one of its aliases); case and '-' vs '_' don't matter."""
        if not isinstance(name, str):
            raise ConfigError(f"{self.kind[:-1]} name must be a string, got {name!r}")
        key = normalize(name)
        owner = self._owner(key)
        if owner is None and not self._plugins_loaded:
            self.load_plugins()
            owner = self._owner(key)
        if owner is None:
            raise self._unknown(name)
        return self._entries[owner]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except UnknownNameError:
            return False
        return True

    def names(self) -> list[str]:
        """Canonical names, built-ins first in registration order, then plugins."""
        self.load_plugins()
        return list(self._entries)

    def __iter__(self) -> Iterator[E]:
        self.load_plugins()
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._entries)

    def _unknown(self, name: str) -> UnknownNameError:
        known = [*self._entries, *self._aliases]
        close = difflib.get_close_matches(normalize(name), known, n=5, cutoff=0.6)
        # An alias suggests the name it stands for; keep the order difflib ranked them in.
        hint = did_you_mean(
            normalize(name), dict.fromkeys(self._aliases.get(c, c) for c in close), cutoff=0.0
        ) or "choose one of: " + ", ".join(self._entries)
        return UnknownNameError(
            f"unknown {self.kind[:-1]} {name!r}; {hint} (lit-optim list {self.kind})"
        )

    # -- plugins -----------------------------------------------------------------------------
    def load_plugins(self) -> None:
        """Import the entry points of ``self.group`` once.

        A broken or clashing plugin is skipped with a warning rather than raised: one bad
        third-party package must not stop every run that does not even use it.
        """
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=self.group):
            try:
                loaded = ep.load()
                if callable(loaded) and not isinstance(loaded, RegistryEntry):
                    loaded = loaded()
                entries = [loaded] if isinstance(loaded, RegistryEntry) else list(loaded)
                for entry in entries:  # a plugin's entries: register checks their type
                    self.register(entry)  # type: ignore[arg-type]
            except Exception as err:  # noqa: BLE001 - any plugin failure is reported the same way
                warnings.warn(
                    f"skipped {self.kind[:-1]} plugin {ep.name!r} ({ep.value}): {err}",
                    stacklevel=2,
                )

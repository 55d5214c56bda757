"""Check a plugin's keyword arguments against the signature of the callable that takes them.

A recipe's ``optimizer_kwargs`` / ``scheduler_kwargs`` / ``network_kwargs`` are free-form dicts.
A misspelt or misplaced key must fail before training with the name of the key and of the
plugin, never be silently dropped (torch would raise a bare TypeError much later).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.registry import did_you_mean

__all__ = ["accepted_kwargs", "check_kwargs", "plain_data"]


def accepted_kwargs(fn: Callable[..., Any], *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """Keyword parameters of ``fn`` (a class means its ``__init__``) and their defaults.

    Parameters without a default map to ``inspect.Parameter.empty``.
    """
    skip = set(exclude)
    params = inspect.signature(fn).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip
    }


def check_kwargs(
    kwargs: Mapping[str, Any],
    fn: Callable[..., Any],
    *,
    what: str,
    exclude: Iterable[str] = (),
    reserved: Mapping[str, str] | None = None,
) -> None:
    """Raise ConfigError if ``kwargs`` has a key ``fn`` does not take.

    Args:
        what: how to name the plugin in the message, e.g. ``"optimizer 'adam'"``.
        exclude: parameters that lit-optim fills in itself (``params``, ``optimizer`` …).
        reserved: keys that must be set elsewhere, mapped to where (``lr`` → ``model.lr``).
    """
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{what}: keyword arguments must be a mapping, got {kwargs!r}")
    for key, place in (reserved or {}).items():
        if key in kwargs:
            raise ConfigError(f"{what}: set {key!r} with {place}, not in its kwargs")
    accepted = accepted_kwargs(fn, exclude=exclude)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    unknown = [k for k in kwargs if k not in accepted]
    if unknown and not takes_any:
        takes = ", ".join(accepted) or "no keyword arguments"
        hints = [hint for key in unknown if (hint := did_you_mean(str(key), accepted))]
        raise ConfigError(
            f"{what} does not take {', '.join(repr(k) for k in unknown)}"
            f"{'; ' + ' '.join(hints) if hints else ''}; it takes: {takes}"
        )


def plain_data(value: Any) -> Any:
    """``value`` with every tuple turned into a list, recursively: hyperparameters stored in a
    checkpoint and in ``hparams.yaml`` then read back with ``yaml.safe_load`` (Lightning writes
    them with ``yaml.dump``, which tags a tuple ``!!python/tuple``)."""
    if isinstance(value, Mapping):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    return value

"""What ``lit-optim list`` prints: every registered name, its description and its kwargs."""

from __future__ import annotations

import inspect

from lit_optim.catalog.kwargs import accepted_kwargs
from lit_optim.catalog.optimizers import OPTIMIZERS
from lit_optim.catalog.registry import Registry
from lit_optim.catalog.schedulers import SCHEDULERS
from lit_optim.data import DATASETS
from lit_optim.training.models import MODELS

__all__ = ["KINDS", "format_catalog"]

KINDS: dict[str, Registry] = {
    "optimizers": OPTIMIZERS,
    "schedulers": SCHEDULERS,
    "models": MODELS,
    "datasets": DATASETS,
}

# Arguments lit-optim passes itself, per kind; the rest is what a recipe's *_kwargs may set.
_FILLED_IN = {
    "optimizers": ("params", "lr", "weight_decay"),
    "schedulers": ("optimizer", "total_steps", "last_epoch", "verbose"),
    "models": ("input_shape", "num_classes"),
    "datasets": ("data_dir", "download"),
}


def _kwargs_line(kind: str, entry) -> str:
    params = accepted_kwargs(entry.resolve(), exclude=_FILLED_IN[kind])
    defaults = getattr(entry, "defaults", {})
    shown = []
    for name, default in params.items():
        default = defaults.get(name, default)
        shown.append(name if default is inspect.Parameter.empty else f"{name}={default!r}")
    if getattr(entry, "needs_monitor", False):
        shown.insert(0, "monitor='val_loss'")
    if kind == "optimizers" and entry.check is not None:
        shown.append("**kwargs of the base optimizer")
    if kind == "schedulers" and not entry.own_warmup:
        per_epoch = entry.interval == "epoch" and not entry.needs_monitor
        shown.append(
            ("warmup_epochs" if per_epoch else "warmup_steps | warmup_epochs")
            + ", warmup_start_factor=0.001"
        )
    return ", ".join(shown) or "-"


def format_catalog(kind: str | None = None) -> str:
    blocks = []
    for name in [kind] if kind else list(KINDS):
        registry = KINDS[name]
        entries = list(registry)
        width = max(len(e.name) for e in entries)
        lines = [f"{name}:"]
        for entry in entries:
            alias = f" (alias: {', '.join(entry.aliases)})" if entry.aliases else ""
            lines.append(f"  {entry.name:<{width}}  {entry.description}{alias}")
            lines.append(f"  {'':<{width}}  kwargs: {_kwargs_line(name, entry)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)

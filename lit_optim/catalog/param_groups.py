"""Parameter groups: per-module lr and weight decay, and no decay on biases and norm weights.

``param_groups`` is a list of dicts, each with ``params``: a glob over parameter names as
``named_parameters()`` gives them (``net.0.*``), plus any option the optimizer takes per group
(``lr``, ``weight_decay``, ``momentum`` …). A parameter joins the first group whose pattern
matches it; the rest form the default group, with the task's ``lr`` and ``weight_decay``.

Biases and normalization scales (every parameter with fewer than 2 dimensions) get weight
decay 0 unless ``decay_bias_and_norm`` is set: shrinking them towards zero only fights the
normalization and the offsets, and does not regularize the function's complexity.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from lit_optim.catalog.checks import check_number
from lit_optim.catalog.errors import ConfigError

__all__ = ["build_param_groups", "check_param_group_specs", "takes_decay"]


def takes_decay(ndim: int, decay_bias_and_norm: bool = False) -> bool:
    """Does a parameter of ``ndim`` dimensions take weight decay? The one rule (see the module
    doc): weights do; biases and norm scales (ndim < 2) only with ``decay_bias_and_norm``."""
    return decay_bias_and_norm or ndim >= 2


def check_param_group_specs(specs: Sequence[Mapping[str, Any]], accepted: set[str]) -> None:
    """Validate the user's group specs: each has a ``params`` glob and known options."""
    if not isinstance(specs, Sequence) or isinstance(specs, (str, bytes)):
        raise ConfigError(f"param_groups must be a list of dicts, got {specs!r}")
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or not isinstance(spec.get("params"), str):
            raise ConfigError(
                f"param_groups[{i}] needs 'params': a glob over parameter names such as "
                f"'net.0.*', got {spec!r}"
            )
        unknown = sorted(set(spec) - {"params"} - accepted)
        if unknown:
            raise ConfigError(
                f"param_groups[{i}] sets {', '.join(map(repr, unknown))}, which the optimizer "
                f"does not take per group; it takes: {', '.join(sorted(accepted))}"
            )
        if "lr" in spec:
            check_number(f"param_groups[{i}].lr", spec["lr"], low=0, low_open=True)
        if "weight_decay" in spec:
            check_number(f"param_groups[{i}].weight_decay", spec["weight_decay"], low=0)


def build_param_groups(
    module: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    specs: Sequence[Mapping[str, Any]] = (),
    decay_bias_and_norm: bool = False,
    lr_factor: float = 1.0,
) -> list[dict[str, Any]]:
    """Optimizer param groups for ``module``'s trainable parameters.

    Args:
        lr_factor: multiplies every group's lr (the batch-size scaling rule).
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    buckets: list[list[tuple[str, nn.Parameter]]] = [[] for _ in range(len(specs) + 1)]
    for name, param in named:
        index = next(
            (i for i, spec in enumerate(specs) if fnmatch.fnmatchcase(name, spec["params"])),
            len(specs),
        )
        buckets[index].append((name, param))
    for i, spec in enumerate(specs):
        if not buckets[i]:
            names = ", ".join(n for n, _ in named[:12]) + (" …" if len(named) > 12 else "")
            raise ConfigError(
                f"param_groups[{i}] pattern {spec['params']!r} matches no parameter not already "
                f"taken by an earlier group; parameter names: {names}"
            )
    groups = []
    for i, members in enumerate(buckets):
        if not members:
            continue
        options = {k: v for k, v in (specs[i].items() if i < len(specs) else ()) if k != "params"}
        group_lr = options.pop("lr", lr) * lr_factor
        group_wd = options.pop("weight_decay", weight_decay)
        if group_wd:
            split = [
                ([p for _, p in members if takes_decay(p.ndim, decay_bias_and_norm)], group_wd),
                ([p for _, p in members if not takes_decay(p.ndim, decay_bias_and_norm)], 0.0),
            ]
        else:
            # Nothing to exempt: one group, not two alike. An optimizer's step runs its Python
            # once per group, a few % of a small network's step (bench/README.md, costs).
            split = [([p for _, p in members], 0.0)]
        for params, wd in split:
            if params:
                groups.append({"params": params, "lr": group_lr, "weight_decay": wd, **options})
    return groups

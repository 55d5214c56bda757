"""Layering: lower layers never import higher ones. Checked in a fresh interpreter, since this
test process has imported everything already."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in sys.modules if m.startswith('lit_optim')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(("statement", "forbidden"), [
    ("import lit_optim.callbacks", {"lit_optim.training.task", "lit_optim.training.models", "lit_optim.data"}),
    ("from lit_optim import create_optimizer, create_scheduler",
     {"lit_optim.training.task", "lit_optim.training.models", "lit_optim.data", "lit_optim.cli.main"}),
    ("import lit_optim.catalog.optimizers, lit_optim.catalog.schedulers, lit_optim.training.models, lit_optim.data",
     {"lit_optim.training.task", "lit_optim.catalog.factory", "lit_optim.cli.main"}),
    ("import lit_optim", {"lit_optim.training.task", "lit_optim.catalog.optimizers"}),
    # the population's building blocks sit with the plugins: nothing above them
    ("import lit_optim.population.rules, lit_optim.population.stacked",
     {"lit_optim.training.task", "lit_optim.catalog.factory", "lit_optim.cli.main", "lit_optim.population.task"}),
])
def test_lower_layers_do_not_import_higher_ones(statement, forbidden):
    assert not _loaded_after(statement) & forbidden

"""Population trials: N trials of one structure trained as one vectorized model.

``ModulePopulation`` trains N instances of any LightningModule through torch.func;
``PopulationTask`` is the batched-matmul path of the project's own ClassificationTask. Both
apply ``PopulationUpdate`` (torch.optim's arithmetic with per-member hyperparameters). The
modules import Lightning, so they load on first use (PEP 562): the update rules alone do not.
``take_snapshot`` and ``ResumeFrom`` save a population between epochs and resume it.
"""

from typing import TYPE_CHECKING

from lit_optim.catalog.lazy import lazy_exports
from lit_optim.population.rules import POPULATION_OPTIMIZERS, PopulationUpdate
from lit_optim.population.stacked import StackedNetwork

_LAZY = {
    "ModulePopulation": "lit_optim.population.module_population",
    "Population": "lit_optim.population.interface",
    "NotVmappable": "lit_optim.population.stacked",
    "PopulationTask": "lit_optim.population.task",
    "ResumeFrom": "lit_optim.population.snapshot",
    "take_snapshot": "lit_optim.population.snapshot",
}

# The same names for editors and type checkers, which cannot follow the table above (as
# optuna/__init__.py pairs its lazy imports with these).
if TYPE_CHECKING:  # `name as name`: a re-export
    from lit_optim.population.interface import Population as Population
    from lit_optim.population.module_population import ModulePopulation as ModulePopulation
    from lit_optim.population.snapshot import ResumeFrom as ResumeFrom
    from lit_optim.population.snapshot import take_snapshot as take_snapshot
    from lit_optim.population.stacked import NotVmappable as NotVmappable
    from lit_optim.population.task import PopulationTask as PopulationTask

__all__ = [
    "POPULATION_OPTIMIZERS",
    "ModulePopulation",
    "NotVmappable",
    "Population",
    "PopulationTask",
    "PopulationUpdate",
    "ResumeFrom",
    "StackedNetwork",
    "take_snapshot",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

"""Population trials: N trials of one structure trained as one vectorized model.

``ModulePopulation`` trains N instances of any LightningModule through torch.func;
``PopulationTask`` is the batched-matmul path of the project's own ClassificationTask. Both
apply ``PopulationUpdate`` (torch.optim's arithmetic with per-member hyperparameters). The
modules import Lightning, so they load on first use (PEP 562): the update rules alone do not.
"""

from lit_optim.catalog.lazy import lazy_exports
from lit_optim.population.rules import POPULATION_OPTIMIZERS, PopulationUpdate
from lit_optim.population.stacked import StackedNetwork

_LAZY = {
    "ModulePopulation": "lit_optim.population.module_population",
    "Population": "lit_optim.population.interface",
    "NotVmappable": "lit_optim.population.stacked",
    "PopulationTask": "lit_optim.population.task",
}

__all__ = [
    "POPULATION_OPTIMIZERS",
    "ModulePopulation",
    "NotVmappable",
    "Population",
    "PopulationTask",
    "PopulationUpdate",
    "StackedNetwork",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

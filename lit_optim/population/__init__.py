"""Population trials: N trials of one structure trained as one vectorized model (issue:
population trials). This package starts with the update rules; the population module and
``lit-tune run --population`` build on them."""

from lit_optim.population.rules import POPULATION_OPTIMIZERS, PopulationUpdate
from lit_optim.population.stacked import StackedNetwork

__all__ = ["POPULATION_OPTIMIZERS", "PopulationUpdate", "StackedNetwork"]

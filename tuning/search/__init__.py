"""What a trial is made of: the search space, the recipe it fills in and the checks before
trial 0."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lit_optim.catalog import lazy_exports

# what the other packages use: public name -> the module that defines it, imported on
# first use (PEP 562)
_EXPORTS = {
    "LoggedProbe": "tuning.search.preflight",
    "MetricCheck": "tuning.search.preflight",
    "MetricNotLoggedError": "tuning.search.preflight",
    "SearchSpace": "tuning.search.space",
    "apply_overrides": "tuning.search.recipe",
    "build_trial_objects": "tuning.search.preflight",
    "check_before_trial_0": "tuning.search.preflight",
    "load_recipe": "tuning.search.recipe",
    "load_space": "tuning.search.space",
    "load_space_dict": "tuning.search.space",
    "parse_recipe": "tuning.search.preflight",
    "parse_space": "tuning.search.space",
    "resolve_direction": "tuning.search.preflight",
    "write_recipe": "tuning.search.recipe",
}

if TYPE_CHECKING:  # `name as name`: a re-export (editors and type checkers resolve it)
    from tuning.search.preflight import LoggedProbe as LoggedProbe
    from tuning.search.preflight import MetricCheck as MetricCheck
    from tuning.search.preflight import MetricNotLoggedError as MetricNotLoggedError
    from tuning.search.preflight import build_trial_objects as build_trial_objects
    from tuning.search.preflight import check_before_trial_0 as check_before_trial_0
    from tuning.search.preflight import parse_recipe as parse_recipe
    from tuning.search.preflight import resolve_direction as resolve_direction
    from tuning.search.recipe import apply_overrides as apply_overrides
    from tuning.search.recipe import load_recipe as load_recipe
    from tuning.search.recipe import write_recipe as write_recipe
    from tuning.search.space import SearchSpace as SearchSpace
    from tuning.search.space import load_space as load_space
    from tuning.search.space import load_space_dict as load_space_dict
    from tuning.search.space import parse_space as parse_space

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

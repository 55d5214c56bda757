"""The optimization lab: convex problems with known optima, to compare optimizers exactly."""

from lit_optim.catalog.lazy import lazy_exports

# the convex problems and bounds:
# public name -> the module that defines it, imported on first use
_EXPORTS = {
    "ConvexProblem": "lit_optim.lab.convex",
    "gd_bound": "lit_optim.lab.convex",
    "hessian_max_eigenvalue": "lit_optim.lab.convex",
    "logreg": "lit_optim.lab.convex",
    "nesterov_bound": "lit_optim.lab.convex",
    "quadratic": "lit_optim.lab.convex",
    "run_lecture_nesterov": "lit_optim.lab.convex",
    "run_optimizer": "lit_optim.lab.convex",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

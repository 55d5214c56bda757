"""The optimization lab: convex problems with known optima, to compare optimizers exactly."""

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:  # `name as name`: a re-export (editors and type checkers resolve it)
    from lit_optim.lab.convex import ConvexProblem as ConvexProblem
    from lit_optim.lab.convex import gd_bound as gd_bound
    from lit_optim.lab.convex import hessian_max_eigenvalue as hessian_max_eigenvalue
    from lit_optim.lab.convex import logreg as logreg
    from lit_optim.lab.convex import nesterov_bound as nesterov_bound
    from lit_optim.lab.convex import quadratic as quadratic
    from lit_optim.lab.convex import run_lecture_nesterov as run_lecture_nesterov
    from lit_optim.lab.convex import run_optimizer as run_optimizer

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

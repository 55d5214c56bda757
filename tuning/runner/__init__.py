"""The study loop: the objective (recipe + trial -> Trainer.fit -> metric), workers, populations
of trials, and the signals that stop them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lit_optim.catalog import lazy_exports

# what the other packages use: public name -> the module that defines it, imported on
# first use (PEP 562)
_EXPORTS = {
    "ALGORITHMS": "tuning.runner.algorithms",
    "Interrupted": "tuning.runner.errors",
    "MAX_FAILURES": "tuning.runner.algorithms",
    "PRUNERS": "tuning.runner.algorithms",
    "SAMPLERS": "tuning.runner.algorithms",
    "StudyRequest": "tuning.runner.study",
    "check_population": "tuning.runner.population",
    "choose_workers": "tuning.runner.processes",
    "export_best": "tuning.runner.study",
    "load_study": "tuning.runner.study",
    "quiet_lightning": "tuning.runner.trainable",
    "run_study": "tuning.runner.study",
    "trial_trainer_args": "tuning.runner.trainable",
}

if TYPE_CHECKING:  # `name as name`: a re-export (editors and type checkers resolve it)
    from tuning.runner.algorithms import ALGORITHMS as ALGORITHMS
    from tuning.runner.algorithms import MAX_FAILURES as MAX_FAILURES
    from tuning.runner.algorithms import PRUNERS as PRUNERS
    from tuning.runner.algorithms import SAMPLERS as SAMPLERS
    from tuning.runner.errors import Interrupted as Interrupted
    from tuning.runner.population import check_population as check_population
    from tuning.runner.processes import choose_workers as choose_workers
    from tuning.runner.study import StudyRequest as StudyRequest
    from tuning.runner.study import export_best as export_best
    from tuning.runner.study import load_study as load_study
    from tuning.runner.study import run_study as run_study
    from tuning.runner.trainable import quiet_lightning as quiet_lightning
    from tuning.runner.trainable import trial_trainer_args as trial_trainer_args

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

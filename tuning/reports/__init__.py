"""What a study leaves: reports of one study and fair comparisons between optimizers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lit_optim.catalog import lazy_exports

# what the other packages use: public name -> the module that defines it, imported on
# first use (PEP 562)
_EXPORTS = {
    "list_studies": "tuning.reports.study_report",
    "run_compare": "tuning.reports.compare",
    "summary_table": "tuning.reports.study_report",
    "write_report": "tuning.reports.study_report",
}

if TYPE_CHECKING:  # `name as name`: a re-export (editors and type checkers resolve it)
    from tuning.reports.compare import run_compare as run_compare
    from tuning.reports.study_report import list_studies as list_studies
    from tuning.reports.study_report import summary_table as summary_table
    from tuning.reports.study_report import write_report as write_report

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

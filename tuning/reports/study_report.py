"""Study reports: optimization history, parameter importances, lr × weight_decay contour and
learning curves (intermediate values), as PNG (matplotlib) and HTML (plotly); for a PBT study
its lineage (``tuning.reports.lineage``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import optuna
from optuna.trial import TrialState

from lit_optim import ConfigError

__all__ = ["list_studies", "summary_table", "write_report"]


def summary_table(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    lines = [f"study {study.study_name}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n)]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        return "\n".join(lines + ["no completed trial yet"])
    pruned = sorted(
        max(t.intermediate_values) + 1
        for t in trials
        if t.state == TrialState.PRUNED and t.intermediate_values
    )
    if pruned:  # how early the pruner cut, to judge its warmup
        lines.append(f"pruned {len(pruned)} trials, after epochs {', '.join(map(str, pruned))}")
    best = study.best_trial
    metric = study.user_attrs.get("metric", "value")
    lines.append(f"best trial {best.number}: {metric} = {best.value:.6f}")
    width = max(len(k) for k in best.params) if best.params else 0
    lines += [f"  {k:<{width}}  {v!r}" for k, v in best.params.items()]
    return "\n".join(lines)


def list_studies(storage_url: str | None, run_dir: Path) -> str:
    """One line per study: name, trials by state, best value, metric and direction; of one
    storage, or of every study lit-tune made under ``run_dir`` (run's and compare's)."""
    from tuning.storage.backends import open_readonly

    if storage_url is None and not run_dir.is_dir():
        raise ConfigError(
            f"--run-dir {run_dir} does not exist; pass the folder lit-tune run "
            "wrote its studies in, or --storage"
        )
    if storage_url is not None:
        urls = [storage_url]
    else:
        # lit-tune run's runs/<study>/study.db or journal.log, and compare's
        # runs/<name>/studies.db (one study per optimizer).
        urls = [
            f"sqlite:///{p.absolute()}"
            for p in sorted([*run_dir.glob("*/study.db"), *run_dir.glob("*/studies.db")])
        ] + [str(p.absolute()) for p in sorted(run_dir.glob("*/journal.log"))]
    lines = []
    for url in urls:
        storage = open_readonly(url)
        for summary in optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            head, *rest = summary_table(study).splitlines()
            best = next((line for line in rest if line.startswith("best")), "no completed trial")
            lines.append(f"{head}; {best} ({study.direction.name.lower()})  [{url}]")
    return "\n".join(lines) or f"no studies in {storage_url or str(run_dir) + '/'}"


def write_report(study: optuna.Study, out_dir: Path) -> list[Path]:
    """Write the plots that apply to this study; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from optuna import visualization as vis
    from optuna.visualization import matplotlib as mvis

    out_dir.mkdir(parents=True, exist_ok=True)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    params = set().union(*(t.params for t in complete)) if complete else set()
    # name -> (plotly figure, matplotlib axes, their keyword arguments)
    plots: dict[str, tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]] = {
        "history": (vis.plot_optimization_history, mvis.plot_optimization_history, {})
    }
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        plots["learning_curves"] = (vis.plot_intermediate_values, mvis.plot_intermediate_values, {})
    if len(complete) >= 2 and len(params) >= 2:
        plots["importances"] = (vis.plot_param_importances, mvis.plot_param_importances, {})
    if len(complete) >= 2 and {"model.lr", "model.weight_decay"} <= params:
        plots["contour_lr_weight_decay"] = (
            vis.plot_contour,
            mvis.plot_contour,
            {"params": ["model.lr", "model.weight_decay"]},
        )
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
        for name, (html_fn, png_fn, kwargs) in plots.items():
            html_fn(study, **kwargs).write_html(out_dir / f"{name}.html", include_plotlyjs="cdn")
            ax = png_fn(study, **kwargs)
            fig = cast(Figure, (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure())
            fig.set_size_inches(9, 5.5)
            fig.tight_layout()
            fig.savefig(out_dir / f"{name}.png", dpi=100)
            plt.close(fig)
            written += [out_dir / f"{name}.html", out_dir / f"{name}.png"]
    from tuning.reports.lineage import plot_lineage

    lineage = plot_lineage(
        study.get_trials(deepcopy=False),
        out_dir / "pbt_lineage.png",
        study.user_attrs.get("metric", "value"),
    )
    written += [lineage] if lineage is not None else []
    (out_dir / "summary.txt").write_text(summary_table(study) + "\n")
    return written + [out_dir / "summary.txt"]

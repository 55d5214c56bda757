"""The comparison report: report.md (table and ranking), learning curves with seed bands,
lr sensitivity, as PNG (matplotlib) and HTML (plotly)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lit_optim.lab import ConvexProblem

__all__ = ["write_compare_report", "write_convex_report"]


def _fmt(stat: dict[str, float] | None, digits: int = 4) -> str:
    if stat is None:
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _table(results: dict[str, Any]) -> str:
    metric, test, target = results["metric"], results["test_metric"], results["target"]
    columns = [f"final {metric}", f"best {metric}"] + ([test] if test else []) + ["seconds"]
    columns += [f"epochs to {target:g}"] if target is not None else []
    columns += [f"defaults {results['rank_metric']}", "best params"]
    lines = [
        "| rank | optimizer | " + " | ".join(columns) + " |",
        "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    rank_key = "test" if test else "final"
    for rank, label in enumerate(results["ranking"], start=1):
        e = results["entries"][label]
        t = e["tuned"]
        params = ", ".join(
            f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
            for k, v in e["best_params"].items()
        )
        cells = [_fmt(t["final"]), _fmt(t["best"])] + ([_fmt(t["test"])] if test else [])
        cells += [_fmt(t["seconds"], 2)]
        cells += [_fmt(t["epochs_to_target"], 1)] if target is not None else []
        cells += [_fmt(e["defaults"][rank_key]), params]
        lines.append(f"| {rank} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _band(series: list[list[tuple[int, float]]]):
    """Mean and min/max over seeds of curves given as (x, y) lists, on the shared x values."""
    xs = sorted(set.intersection(*(set(x for x, _ in s) for s in series)))
    by_seed = [dict(s) for s in series]
    ys = [[d[x] for d in by_seed] for x in xs]
    return xs, [statistics.fmean(v) for v in ys], [min(v) for v in ys], [max(v) for v in ys]


def _save(fig, pfig, out: Path, stem: str) -> None:
    """The matplotlib figure as PNG, the plotly one as HTML, side by side."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / f"{stem}.png", dpi=100)
    plt.close(fig)
    pfig.write_html(out / f"{stem}.html", include_plotlyjs="cdn")


def write_compare_report(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    out.mkdir(parents=True, exist_ok=True)
    overrides = "".join(
        f" --{path} {value}" for path, value in results.get("overrides", {}).items()
    )
    md = [
        "# Optimizer comparison\n",
        f"Recipe `{results['recipe']}`{f' with `{overrides.strip()}`' if overrides else ''}; "
        f"{results['budget']} tuning trials per optimizer; best "
        f"configuration retrained over {results['seeds']} seeds (mean ± std over seeds).\n",
        _table(results),
        "",
        f"Ranking by mean {results['rank_metric']} "
        f"({'higher' if results['direction'] == 'max' else 'lower'} is better): "
        + " > ".join(results["ranking"])
        + "\n",
        "![learning curves](learning_curves.png)\n",
        "![lr sensitivity](lr_sensitivity.png)\n",
    ]
    (out / "report.md").write_text("\n".join(md))

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(13, 5))
    metric = results["metric"]
    pfig = make_subplots(
        rows=1, cols=2, subplot_titles=("train loss per step", f"{metric} per epoch")
    )
    for label in results["ranking"]:
        runs = results["entries"][label]["tuned_runs"]
        for ax, key, col in ((ax_loss, "train_loss_steps", 1), (ax_acc, "metric_epochs", 2)):
            xs, mean, low, high = _band([[tuple(p) for p in r[key]] for r in runs])
            (line,) = ax.plot(xs, mean, label=label)
            ax.fill_between(xs, low, high, alpha=0.2, color=line.get_color())
            pfig.add_trace(
                go.Scatter(x=xs, y=mean, name=label, legendgroup=label, showlegend=col == 1),
                row=1,
                col=col,
            )
    if all(y > 0 for line in ax_loss.get_lines() for y in line.get_ydata()):
        ax_loss.set_yscale("log")  # a user's loss may be negative (a log-likelihood)
    ax_loss.set_xlabel("step")
    ax_loss.set_title("train loss (seed band: min-max)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_title(metric)
    ax_acc.legend(fontsize=8)
    _save(fig, pfig, out, "learning_curves")

    fig, ax = plt.subplots(figsize=(8, 5))
    sfig = go.Figure()
    for label in results["ranking"]:
        points = sorted(
            (t["lr"], t["value"])
            for t in results["entries"][label]["trials"]
            if t["lr"] is not None and t["value"] is not None and math.isfinite(t["value"])
        )
        if points:
            ax.plot(*zip(*points), marker="o", label=label)
            sfig.add_trace(
                go.Scatter(
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    mode="lines+markers",
                    name=label,
                )
            )
    ax.set_xscale("log")
    ax.set_xlabel("lr")
    ax.set_ylabel(f"trial's {metric}")
    ax.set_title("lr sensitivity: a flatter curve tolerates a wider range of lr")
    ax.legend(fontsize=8)
    sfig.update_xaxes(type="log", title="lr")
    sfig.update_yaxes(title=f"trial's {metric}")
    _save(fig, sfig, out, "lr_sensitivity")
    names = [
        "report.md",
        "learning_curves.png",
        "learning_curves.html",
        "lr_sensitivity.png",
        "lr_sensitivity.html",
        "results.json",
    ]
    return [out / n for n in names]


def write_convex_report(out: Path, problem_name: str, steps: int = 300) -> list[Path]:
    """F(θ_n) − F* on a log scale for GD (step 1/L), heavy ball and torch's SGD-nesterov (a
    constant β tuned to κ), and the lectures' accelerated method (β_n = n/(n+3)), against the
    lectures' bounds: (1 − 1/κ)^n for GD, 2L‖θ_0 − θ*‖²/(n+1)² for the accelerated method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    from lit_optim.lab import (
        gd_bound,
        logreg,
        nesterov_bound,
        quadratic,
        run_lecture_nesterov,
        run_optimizer,
    )

    problems: dict[str, Callable[[], ConvexProblem]] = {"quadratic": quadratic, "logreg": logreg}
    problem = problems[problem_name]()
    beta = (math.sqrt(problem.kappa) - 1) / (math.sqrt(problem.kappa) + 1)
    curves = {
        "GD (lr 1/L)": run_optimizer(problem, "sgd", lr=1 / problem.L, steps=steps),
        f"heavy ball (β {beta:.3f})": run_optimizer(
            problem, "momentum", lr=1 / problem.L, steps=steps, momentum=beta
        ),
        f"torch SGD-nesterov (constant β {beta:.3f})": run_optimizer(
            problem, "nesterov", lr=1 / problem.L, steps=steps, momentum=beta
        ),
        "lecture Nesterov (β_n = n/(n+3))": run_lecture_nesterov(problem, 1 / problem.L, steps),
    }
    gap0 = curves["GD (lr 1/L)"][0]
    bounds = {
        "GD bound (1 − 1/κ)^n": gd_bound(problem, gap0, steps),
        "accelerated bound 2L‖θ0−θ*‖²/(n+1)²": nesterov_bound(problem, steps),
    }
    fig, ax = plt.subplots(figsize=(8, 5))
    pfig = go.Figure()
    for name, ys in {**curves, **bounds}.items():
        ys = [max(y, 1e-300) for y in ys]
        style = "--" if "bound" in name else "-"
        ax.plot(range(len(ys)), ys, style, label=name)
        pfig.add_trace(
            go.Scatter(
                x=list(range(len(ys))),
                y=ys,
                name=name,
                line={"dash": "dash"} if "bound" in name else {},
            )
        )
    ax.set_yscale("log")
    ax.set_xlabel("iteration n")
    ax.set_ylabel("F(θ_n) − F*")
    ax.set_title(f"{problem_name}: κ = {problem.kappa:.3g}")
    ax.legend(fontsize=8)
    pfig.update_yaxes(type="log", title="F(θ_n) − F*")
    _save(fig, pfig, out, f"convex_{problem_name}")
    return [out / f"convex_{problem_name}.png", out / f"convex_{problem_name}.html"]

"""The learning-rate range test (Smith 2017) on any recipe, through Lightning's ``Tuner.lr_find``.

Lightning runs it: the lr grows exponentially from ``min_lr`` to ``max_lr`` over
``num_training`` steps on the module's own optimizer, the smoothed loss is recorded, the run
stops once that loss exceeds 4× its best, and the weights and optimizer state are restored
afterwards (the range test leaves no training behind). What is ours: the checks before it
starts, the divergence point (the lr where Lightning stopped, or none below ``max_lr``), the
search range it implies, and the curve as PNG and HTML with the suggestion marked.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import lightning as L

from lit_optim.catalog.checks import check_count, check_number
from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.trainer_info import check_trains_real_steps

__all__ = ["RangeTest", "check_range_args", "check_takes_lr", "run_range_test", "write_curve"]

# Where the range test stops (Lightning's lr_find early_stop_threshold, its own rule for
# "diverged"): the smoothed loss above this many times its best. Not a run's divergence
# (lit_optim.callbacks.DIVERGENCE_FACTOR, 1000x): a range test looks for where the loss starts
# to rise, far below that.
RANGE_STOP_FACTOR = 4.0


@dataclass
class RangeTest:
    """A range test's curve and what it says.

    ``suggestion``: Lightning's, the lr at the steepest descent of the smoothed loss.
    ``divergence``: the lr at which the loss passed ``RANGE_STOP_FACTOR``× its best, or None
    if it never did up to ``max_lr``. ``search_range``: [suggestion / 10, divergence (or
    max_lr)], a log range for a search that starts where the loss falls fastest.
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float | None
    divergence: float | None
    min_lr: float
    max_lr: float
    num_training: int

    @property
    def search_range(self) -> tuple[float, float] | None:
        if self.suggestion is None:
            return None
        return self.suggestion / 10, self.divergence or self.max_lr


def check_range_args(min_lr: float, max_lr: float, num_training: int) -> None:
    check_number("min_lr", min_lr, low=0, low_open=True)
    check_number("max_lr", max_lr, low=0, low_open=True)
    if min_lr >= max_lr:
        raise ConfigError(f"the range must grow: min_lr {min_lr:g} >= max_lr {max_lr:g}")
    check_count("num_training", num_training)
    if num_training < 10:
        raise ConfigError(
            f"num_training must be >= 10 (the suggestion skips the first 10 "
            f"points), got {num_training}"
        )


def check_takes_lr(model: L.LightningModule) -> str:
    """The module's learning-rate argument (``lr`` or ``learning_rate``): a range test's
    answer is only usable if the module builds its optimizer from it."""
    params = inspect.signature(type(model)).parameters
    for name in ("lr", "learning_rate"):
        if name in params:
            return name
    raise ConfigError(
        f"{type(model).__module__}.{type(model).__qualname__} takes no lr (or learning_rate) "
        "argument, so a suggested lr could not be set; give the module an lr that its "
        "configure_optimizers uses"
    )


def run_range_test(
    model: L.LightningModule,
    datamodule: L.LightningDataModule | None,
    trainer: L.Trainer,
    *,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
    num_training: int = 100,
) -> RangeTest:
    """The range test on ``trainer``, which must allow ``num_training`` steps (``max_steps``
    at least that, or ``max_epochs=-1``); the module's weights are as before afterwards."""
    from lightning.pytorch.tuner import Tuner

    check_range_args(min_lr, max_lr, num_training)
    check_takes_lr(model)
    check_trains_real_steps(trainer, "the lr range test")
    # Lightning keeps the weights to restore in <default_root_dir>/.lr_find_*.ckpt while it
    # runs (the CLI points that at a temporary folder) and deletes the file afterwards.
    finder = Tuner(trainer).lr_find(
        model,
        datamodule=datamodule,
        min_lr=min_lr,
        max_lr=max_lr,
        num_training=num_training,
        early_stop_threshold=RANGE_STOP_FACTOR,
        update_attr=False,
    )
    assert finder is not None  # None only under fast_dev_run: refused above
    lrs = [float(x) for x in finder.results["lr"]]
    losses = [float(x) for x in finder.results["loss"]]
    suggestion = finder.suggestion() if len(lrs) > 11 else None
    stopped_early = len(lrs) < num_training
    return RangeTest(
        lrs=lrs,
        losses=losses,
        suggestion=suggestion,
        divergence=lrs[-1] if stopped_early and lrs else None,
        min_lr=min_lr,
        max_lr=max_lr,
        num_training=num_training,
    )


def write_curve(result: RangeTest, out_dir: Path, title: str) -> list[Path]:
    """``lr_find.png`` / ``.html`` (loss against lr on a log axis, suggestion and divergence
    marked) and ``lr_find.json`` (the numbers). The PNG carries what its axes show in its
    metadata, so a test can read the plotted data back instead of pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    out_dir.mkdir(parents=True, exist_ok=True)
    finite = [(x, y) for x, y in zip(result.lrs, result.losses) if math.isfinite(y)]
    xs, ys = [x for x, _ in finite], [y for _, y in finite]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(xs, ys, label="smoothed training loss")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(title)
    pfig = go.Figure(go.Scatter(x=xs, y=ys, name="smoothed training loss"))
    marks = {"suggestion": result.suggestion, "divergence": result.divergence}
    for (name, lr), color in zip(marks.items(), ("tab:green", "tab:red")):
        if lr is not None:
            ax.axvline(lr, color=color, linestyle="--", label=f"{name} {lr:.3g}")
            pfig.add_vline(
                x=lr,
                line_dash="dash",
                line_color=color.split(":")[-1],
                annotation_text=f"{name} {lr:.3g}",
            )
    ax.legend()
    pfig.update_xaxes(type="log", title="learning rate")
    pfig.update_yaxes(title="loss")
    pfig.update_layout(title=title)
    curve: Any = ax.lines[0]  # matplotlib types a line's data loosely: numbers here
    plotted = {
        "xscale": ax.get_xscale(),
        "x": [float(v) for v in curve.get_xdata()],
        "y": [float(v) for v in curve.get_ydata()],
        "marks": {
            str(line.get_label()).split()[0]: float(cast(Any, line).get_xdata()[0])
            for line in ax.lines[1:]
        },
    }
    png, html, numbers = (out_dir / f"lr_find.{ext}" for ext in ("png", "html", "json"))
    fig.savefig(png, dpi=120, bbox_inches="tight", metadata={"lit-optim": json.dumps(plotted)})
    plt.close(fig)
    pfig.write_html(html, include_plotlyjs="cdn")
    numbers.write_text(
        json.dumps({**asdict(result), "search_range": result.search_range}, indent=1)
    )
    return [png, html, numbers]

"""The lineage of a PBT study (``lit-tune run --algorithm pbt``) as a picture: one row per
slot of each population, one bar per trial from the epoch it took the slot to the epoch it
ended, coloured by its last value, and an arrow for each exploit from the slot copied to the
slot that took the copy. Optuna draws nothing like it (it has no PBT); Ray Tune writes the
lineage as a log of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

__all__ = ["Segment", "lineage_segments", "plot_lineage"]


@dataclass(frozen=True)
class Segment:
    trial: int
    population: int  # its population's first trial
    slot: int
    start: int  # the epoch it took the slot (0 for the first members)
    end: int  # the epoch after its last report
    value: float | None
    parent: int | None  # the trial whose state it took


def lineage_segments(trials: list[FrozenTrial]) -> list[Segment]:
    """The segments of every trial that trained in a population of a PBT study, by trial
    number (none for a study without PBT)."""
    if not any("pbt" in t.user_attrs for t in trials):
        return []
    out = []
    for trial in trials:
        where = trial.user_attrs.get("population")
        if where is None or not trial.intermediate_values:
            continue
        record: dict[str, Any] = trial.user_attrs.get("pbt", {})
        steps = trial.intermediate_values
        out.append(
            Segment(
                trial.number,
                where["first_trial"],
                record.get("slot", where.get("member", 0)),
                record.get("epoch", 0),
                max(steps) + 1,
                steps[max(steps)],
                record.get("parent"),
            )
        )
    return out


def plot_lineage(trials: list[FrozenTrial], path: Path, metric: str) -> Path | None:
    """``path`` (PNG) with the lineage of the study's PBT populations; None if it has none."""
    segments = lineage_segments(trials)
    if not segments:
        return None
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    populations = sorted({s.population for s in segments})
    rows: dict[tuple[int, int], int] = {}
    for population in populations:  # populations one above the other
        for slot in sorted({s.slot for s in segments if s.population == population}):
            rows[population, slot] = len(rows)
    values = [s.value for s in segments if s.value is not None]
    norm = Normalize(min(values), max(values)) if values else Normalize(0, 1)
    colours = colormaps["viridis"]
    by_trial = {s.trial: s for s in segments}
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.35 * len(rows) + 1.5)))
    for s in segments:
        row = rows[s.population, s.slot]
        ax.barh(
            row,
            s.end - s.start,
            left=s.start,
            height=0.6,
            color=colours(norm(s.value)) if s.value is not None else "lightgrey",
        )
        ax.text(s.start + 0.1, row, str(s.trial), va="center", fontsize=7, color="white")
        parent = by_trial.get(s.parent) if s.parent is not None else None
        if parent is not None:
            ax.annotate(
                "",
                xy=(s.start, row),
                xytext=(s.start, rows[parent.population, parent.slot]),
                arrowprops={"arrowstyle": "->", "color": "crimson", "lw": 1},
            )
    ax.set_yticks(list(rows.values()), [f"pop {p} slot {s}" for p, s in rows])
    ax.set_xlabel("epoch")
    ax.invert_yaxis()
    ax.set_title(
        "PBT lineage: each bar a trial in its slot, each arrow an exploit (copied from → to)"
    )
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=colours), ax=ax, label=metric)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

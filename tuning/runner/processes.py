"""``lit-tune run --n-workers``: how many worker processes run the study.

One process trains a population on the CPU with Python between every step: on 2 cores its
second thread adds little (32 digits members: 4,416 epochs in 60 s with two threads, 3,424
with one), where a second process, one thread each, trains its own populations beside it
(8,352 epochs; 18,400 against 8,768 in 120 s, `bench/anytime.py`). ``auto`` therefore starts one
process per core on a CPU, one per GPU on GPUs, where the study is long enough to pay for
each process's start (imports, its own probe: a few seconds) and where the storage takes
several processes; else one. It says what it chose in one line; an integer sets it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MIN_TRIALS_PER_WORKER", "choose_workers"]

# A worker process pays for its start (imports and set-up: bench/README.md, costs) before its
# first trial; below this budget per extra process one process finishes first.
MIN_TRIALS_PER_WORKER = 100


def choose_workers(
    n_workers: int | str,
    *,
    storage: str | None,
    run_dir: Path,
    study: str,
    n_trials: int,
    accelerator: str,
    timeout: float | None = None,
) -> tuple[int, str | None]:
    """(worker processes, the line that says why ``auto`` chose them: None for a number)."""
    if n_workers != "auto":
        return int(n_workers), None
    sqlite = (storage or "").startswith("sqlite") or (
        storage is None and (run_dir / study / "study.db").exists()
    )
    if sqlite:  # one writer: a SQLite study stays with one process
        return 1, None
    devices, kind = _devices(accelerator)
    if devices < 2:
        return 1, None
    long_enough = n_trials >= MIN_TRIALS_PER_WORKER * devices or (timeout or 0) >= 60
    if not long_enough:
        return 1, None
    where = "a journal file, runs/<study>/journal.log" if storage is None else "the given storage"
    return devices, (
        f"workers auto: {devices} processes, one per {kind}, each training its own "
        f"populations on one study ({where}); --n-workers 1 runs one"
    )


def _devices(accelerator: str) -> tuple[int, str]:
    """How many processes the machine runs side by side, and of what: GPUs, else cores."""
    if accelerator in ("auto", "gpu", "cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count(), "GPU"
        if accelerator != "auto":
            return 1, "GPU"
    return os.cpu_count() or 1, "core"

"""Where a study lives: a SQLite file by default, a journal file for several local workers,
or any Optuna storage URL (PostgreSQL when several machines share a study)."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from lit_optim import ConfigError

__all__ = ["default_storage_url", "open_storage"]

# Heartbeats let a restarted study mark trials of a killed worker as failed: a RUNNING trial
# whose heartbeat is older than the grace period belongs to a dead process.
HEARTBEAT_S = 10


def default_storage_url(run_dir: Path, study: str, n_workers: int, *, create: bool) -> str:
    """``runs/<study>/study.db`` (or ``journal.log`` for several workers, or whichever of the
    two exists). With ``create=False`` a missing study is an error naming the studies there."""
    folder = run_dir / study
    journal, sqlite = folder / "journal.log", folder / "study.db"
    if not create:
        if journal.exists() and not sqlite.exists():
            return f"journal:{journal}"
        if not sqlite.exists():
            found = sorted(p.parent.name for p in run_dir.glob("*/study.db")) + sorted(
                p.parent.name for p in run_dir.glob("*/journal.log"))
            raise ConfigError(f"no study {study!r} under {run_dir}/; studies there: "
                              f"{', '.join(found) or 'none'} (or pass --storage URL)")
        return f"sqlite:///{sqlite}"
    # The folder is made by run_study once every check has passed: bad input creates nothing.
    return f"journal:{journal}" if n_workers > 1 else f"sqlite:///{sqlite}"


def open_storage(url: str, *, n_workers: int = 1, heartbeat_s: float = HEARTBEAT_S,
                 create: bool = False) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: ``sqlite:///…``, ``postgresql://…`` (any SQLAlchemy URL)
    or ``journal:PATH`` (Optuna's journal file, safe for several processes on one machine).
    ``create`` makes a SQLite file's folder (run_study, after its checks)."""
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///") and create:
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite") and n_workers > 1:
        raise ConfigError(
            f"SQLite cannot take {n_workers} worker processes: it locks the whole file on every "
            "write, so workers time out or fail trials. Drop --storage to use a journal file "
            "(runs/<study>/journal.log), pass --storage journal:PATH, or use a PostgreSQL URL"
        )
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, heartbeat_interval=max(1, round(heartbeat_s)),
                              grace_period=max(2, round(3 * heartbeat_s)),
                              engine_kwargs={"pool_pre_ping": True})
    except Exception as err:  # noqa: BLE001 - any driver/connection failure reads the same
        raise ConfigError(f"cannot open storage {url!r}: {type(err).__name__}: {err}") from None

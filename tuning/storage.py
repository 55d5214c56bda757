"""Where a study lives: a SQLite file by default, a journal file for several local workers,
or any Optuna storage URL (PostgreSQL when several machines share a study)."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from lit_optim import ConfigError

__all__ = ["default_storage_url", "journal_path", "open_storage"]

# Heartbeats let a restarted study mark trials of a killed worker as failed: a RUNNING trial
# whose heartbeat is older than the grace period belongs to a dead process.
HEARTBEAT_S = 10


def default_storage_url(run_dir: Path, study: str, n_workers: int, *, create: bool) -> str:
    """Where ``runs/<study>/`` keeps its study: ``study.db`` (SQLite) for one worker,
    ``journal.log`` (Optuna's journal file) for several.

    A run directory has one storage: the one that exists is reused (a journal serves one
    worker too), and what it cannot do is refused with the alternative, never answered with a
    second study of the same name beside it. With ``create=False`` a missing study is an
    error naming the studies there. Journal files are given as absolute bare paths, the form
    ``optuna studies --storage`` and ``optuna-dashboard`` open.
    """
    folder = run_dir / study
    journal, sqlite = (folder / "journal.log").absolute(), folder / "study.db"
    if journal.exists() and sqlite.exists():
        raise ConfigError(f"{folder}/ holds both study.db and journal.log; pass --storage with "
                          f"the one to use (sqlite:///{sqlite} or {journal})")
    if journal.exists():
        return str(journal)
    if sqlite.exists():
        if create and n_workers > 1:
            raise ConfigError(
                f"study {study!r} lives in {sqlite} (SQLite), which cannot take {n_workers} "
                "worker processes; resume it with --n-workers 1, or start a new --study for "
                "several workers (a journal file), or use --storage postgresql://…")
        return f"sqlite:///{sqlite}"
    if not create:
        found = sorted(p.parent.name for p in run_dir.glob("*/study.db")) + sorted(
            p.parent.name for p in run_dir.glob("*/journal.log"))
        raise ConfigError(f"no study {study!r} under {run_dir}/; studies there: "
                          f"{', '.join(found) or 'none'} (or pass --storage URL)")
    # The folder is made by run_study once every check has passed: bad input creates nothing.
    return str(journal) if n_workers > 1 else f"sqlite:///{sqlite}"


def journal_path(url: str) -> Path | None:
    """The journal file a storage string names: ``journal:PATH`` (lit-tune's older form) or a
    bare path (what Optuna's CLI and optuna-dashboard take); None for a database URL."""
    if url.startswith("journal:"):
        return Path(url[len("journal:"):]).expanduser()
    if "://" not in url:
        return Path(url).expanduser()
    return None


def open_storage(url: str, *, n_workers: int = 1, heartbeat_s: float = HEARTBEAT_S,
                 create: bool = False) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: ``sqlite:///…``, ``postgresql://…`` (any SQLAlchemy URL)
    or a journal file path (``PATH`` or ``journal:PATH``: Optuna's journal file, safe for
    several processes on one machine).
    ``create`` makes a SQLite file's folder (run_study, after its checks)."""
    path = journal_path(url)
    if path is not None and path.suffix in (".db", ".sqlite", ".sqlite3"):
        raise ConfigError(f"--storage {url} looks like a SQLite file; pass sqlite:///{path}")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path.absolute())))
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
    except ImportError:  # Optuna's "install appropriate one": the database driver is missing
        raise ConfigError(f"cannot open storage {url!r}: its database driver is not installed; "
                          "for postgresql:// URLs: pip install 'lit-optim[postgres]'") from None
    except Exception as err:  # noqa: BLE001 - any driver/connection failure reads the same
        raise ConfigError(f"cannot open storage {url!r}: {type(err).__name__}: {err}") from None

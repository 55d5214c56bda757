"""Where a study lives: a SQLite file by default, a journal file for several local workers,
or any Optuna storage URL (PostgreSQL when several machines share a study)."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from lit_optim import ConfigError, LitOptimError
from lit_optim.catalog import chained_error, disk_fault, disk_fault_words, error_chain

__all__ = [
    "HEARTBEAT_S",
    "StorageFault",
    "check_writable",
    "default_storage_url",
    "journal_path",
    "open_readonly",
    "open_storage",
    "settle_sqlite",
    "storage_fault",
]

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
    # Absolute: the URL printed at the end opens from any folder (optuna-dashboard, optuna).
    journal, sqlite = (folder / "journal.log").absolute(), (folder / "study.db").absolute()
    if journal.exists() and sqlite.exists():
        raise ConfigError(
            f"{folder}/ holds both study.db and journal.log; pass --storage with "
            f"the one to use (sqlite:///{sqlite} or {journal})"
        )
    if journal.exists():
        return str(journal)
    if sqlite.exists():
        if create and n_workers > 1:
            raise ConfigError(
                f"study {study!r} lives in {sqlite} (SQLite), which cannot take {n_workers} "
                "worker processes; resume it with --n-workers 1, or start a new --study for "
                "several workers (a journal file), or use --storage postgresql://…"
            )
        return f"sqlite:///{sqlite}"
    if not create:
        found = sorted(p.parent.name for p in run_dir.glob("*/study.db")) + sorted(
            p.parent.name for p in run_dir.glob("*/journal.log")
        )
        raise ConfigError(
            f"no study {study!r} under {run_dir}/; studies there: "
            f"{', '.join(found) or 'none'} (or pass --storage URL)"
        )
    # The folder is made by run_study once every check has passed: bad input creates nothing.
    return str(journal) if n_workers > 1 else f"sqlite:///{sqlite}"


def check_writable(run_dir: Path) -> None:
    """Refuse a run directory that cannot be written before any study is opened in it, so a
    read-only folder fails in one line and not half way into the first trial."""
    existing = _nearest_existing(Path(run_dir).absolute())
    if not existing.is_dir():
        raise ConfigError(
            f"run dir {run_dir}: {existing} is a file, not a folder; pass "
            "--run-dir a folder (it is made if missing)"
        )
    why = _unwritable(existing)
    if why is not None:
        raise ConfigError(
            f"run dir {run_dir}: {existing} {why}; pass --run-dir a folder you can write"
        )


def _nearest_existing(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists (what a mkdir of it would write in)."""
    while not path.exists():
        path = path.parent
    return path


def _unwritable(folder: Path) -> str | None:
    """Why no file can be made in ``folder``, in words, or None. access(2) answers for this
    process: EROFS on a read-only mount even for root, who otherwise writes whatever the file
    modes say."""
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return "is on a read-only file system"
    return "is not writable by this user"


def journal_path(url: str) -> Path | None:
    """The journal file a storage string names: ``journal:PATH`` (lit-tune's older form) or a
    bare path (what Optuna's CLI and optuna-dashboard take); None for a database URL."""
    if url.startswith("journal:"):
        return Path(url[len("journal:") :]).expanduser()
    if "://" not in url:
        return Path(url).expanduser()
    return None


LOCK_GRACE_S = 30  # Optuna's own grace period for the journal's symlink lock


def _break_stale_lock(journal: Path) -> None:
    """A lock symlink left by a killed writer: Optuna releases it after its grace period only if
    the link resolves, so a dangling one (or one older than the grace period) would hang every
    writer forever. Remove it, with a warning."""

    lock = journal.with_name(journal.name + ".lock")
    if not lock.is_symlink():
        return
    age = time.time() - lock.lstat().st_mtime
    if lock.exists() and age < LOCK_GRACE_S:
        return  # a live writer's lock
    why = "dangling" if not lock.exists() else f"{age:.0f} s old"
    warnings.warn(f"removed the stale journal lock {lock} ({why})", stacklevel=3)
    lock.unlink(missing_ok=True)


def _drop_partial_last_record(journal: Path) -> None:
    """A journal whose last record was cut (a full disk, a kill mid-write) cannot be read, and
    the next append would glue a record onto the fragment. Keep a backup, drop the fragment,
    and say what was dropped; every complete record stays."""

    if not journal.is_file() or journal.stat().st_size == 0:
        return
    data = journal.read_bytes()
    head, _, last = data.rpartition(b"\n")
    if not last:
        return  # ends with a newline: complete
    try:
        json.loads(last)
        return  # a complete record that only lacks its newline
    except ValueError:
        pass
    backup = journal.with_name(journal.name + ".bak")
    shutil.copyfile(journal, backup)
    journal.write_bytes(head + b"\n" if head else b"")
    warnings.warn(
        f"{journal}: dropped a cut last record ({len(last)} bytes: "
        f"{last[:60]!r}…); the file as it was is in {backup}",
        stacklevel=3,
    )


def _check_sqlite_file(path: Path) -> None:
    """An empty or foreign file where study.db should be: refuse rather than let SQLite start a
    new study over the old trials' folders (a 0-byte file opens as an empty database)."""
    if not path.exists():
        return
    if path.stat().st_size == 0:
        raise ConfigError(
            f"{path} is empty (0 bytes), not a study; move it away or restore it "
            "from a backup (a new study would overwrite the trial folders beside it)"
        )
    with open(path, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise ConfigError(f"{path} is not a SQLite database; move it away or pass --storage")
    tables = _sqlite_tables(path)
    if tables and not {"studies", "version_info"} <= set(tables):
        # Someone's own database: Optuna would add its tables beside theirs.
        shown = ", ".join(sorted(tables)[:5]) + (" …" if len(tables) > 5 else "")
        raise ConfigError(
            f"{path} is a SQLite database but not an Optuna study (its tables: "
            f"{shown}); nothing was written to it: pass --storage a new file or "
            "a study's"
        )


def _sqlite_tables(path: Path) -> list[str]:
    """The tables of a SQLite file, read through a read-only connection."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        db.close()
    except sqlite3.Error as err:
        raise ConfigError(f"{path} cannot be read as a SQLite database: {err}") from None
    return [name for (name,) in rows]


# PostgreSQL's codes for "already exists": unique_violation, duplicate_object, duplicate_table.
_ALREADY_EXISTS = {"23505", "42710", "42P07"}


def _lost_schema_race(err: Exception) -> bool:
    orig = getattr(err, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in _ALREADY_EXISTS or type(orig).__name__ in (
        "UniqueViolation",
        "DuplicateObject",
        "DuplicateTable",
    )


# This process's SQLite engines, readers too: settle_sqlite closes their pooled connections
# (a later use reopens them), since a file's journal mode changes only with no other open.
_SQLITE_ENGINES: list = []


def settle_sqlite(url: str) -> None:
    """Back to SQLite's default journal once a run is over: the WAL checkpointed into the
    file, no ``-wal``/``-shm`` beside it. Why: a WAL-mode file cannot be opened where those
    cannot be created (a study copied to read-only media). If another process still has the
    study open the file stays in WAL mode, readable as usual, and its own run settles it."""
    import sqlite3

    while _SQLITE_ENGINES:  # a reader's idle connection too kept a WAL file "locked"
        _SQLITE_ENGINES.pop().dispose()
    if not url.startswith("sqlite:///") or not Path(url[len("sqlite:///") :]).is_file():
        return
    try:
        with sqlite3.connect(url[len("sqlite:///") :], timeout=1) as connection:
            connection.execute("PRAGMA journal_mode=DELETE")
        connection.close()
    except sqlite3.Error:
        pass


def _write_ahead_log(storage: RDBStorage) -> None:
    """SQLite's write-ahead log with ``synchronous=NORMAL`` on every connection of the study.

    Why: in SQLite's default mode every one of a trial's ~40 writes (params, one report per
    epoch, attributes, the final state) waits on two fsyncs; in WAL mode a commit is one
    append and the syncs come at checkpoints. A killed process (SIGKILL, OOM, Ctrl-C) loses
    no committed write in either mode, and WAL cannot be corrupted by a power cut either, it
    may only lose the last commits (https://sqlite.org/wal.html). ``bench/tune_throughput.py``
    measures the gain. optuna-dashboard and the optuna CLI read a WAL file as usual while a
    run goes on; ``settle_sqlite`` puts the default journal back when it ends."""
    import sqlalchemy

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        except Exception:  # noqa: BLE001 - a read-only file: leave its mode as it is
            pass
        finally:
            cursor.close()

    sqlalchemy.event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # the connections made while Optuna built its schema: reopen


def open_readonly(url: str) -> optuna.storages.BaseStorage:
    """An existing study storage, for commands that only read (``best``, ``report``,
    ``studies``): nothing is created, repaired or written. A journal file is read as it is; a
    SQLite file is opened read-only (a missing one is an error, not a new empty database);
    a server URL is opened as usual."""
    path = journal_path(url)
    if path is not None:
        if not path.is_file():
            raise ConfigError(
                f"no journal file {path}; pass --storage the study's (lit-tune studies lists them)"
            )
        return JournalStorage(JournalFileBackend(str(path.absolute())))
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///file:"):
        file = Path(url[len("sqlite:///") :])
        if not file.is_file():
            raise ConfigError(
                f"no study database {file}; pass --storage the study's (lit-tune "
                "studies lists them)"
            )
        _check_sqlite_file(file)
        url = f"sqlite:///file:{file.absolute()}?mode=ro&uri=true"
    return open_storage(url)


def open_storage(
    url: str,
    *,
    n_workers: int = 1,
    heartbeat_s: float = HEARTBEAT_S,
    create: bool = False,
    writer: bool = False,
) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: ``sqlite:///…``, ``postgresql://…`` (any SQLAlchemy URL)
    or a journal file path (``PATH`` or ``journal:PATH``: Optuna's journal file, safe for
    several processes on one machine).
    ``create`` makes a SQLite file's folder (run_study, after its checks). ``writer``: the
    study is being run; a SQLite file is then written through its write-ahead log until
    ``settle_sqlite`` (readers such as ``best`` and ``report`` leave the file's mode alone)."""
    path = journal_path(url)
    if path is not None and path.suffix in (".db", ".sqlite", ".sqlite3"):
        raise ConfigError(f"--storage {url} looks like a SQLite file; pass sqlite:///{path}")
    if path is not None:
        path = path.absolute()  # a relative lock symlink would dangle and never be released
        path.parent.mkdir(parents=True, exist_ok=True)
        _break_stale_lock(path)
        _drop_partial_last_record(path)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///file:"):
        _check_sqlite_file(Path(url[len("sqlite:///") :]))
    made = None
    if url.startswith("sqlite:///") and create:
        folder = Path(url[len("sqlite:///") :]).parent
        problem = _sqlite_folder_problem(Path(url[len("sqlite:///") :]))
        if problem is not None and "does not exist" not in problem:
            raise ConfigError(f"cannot open storage {url!r}: {problem}")
        if not folder.exists():
            made = folder
        folder.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite") and n_workers > 1:
        raise ConfigError(
            f"SQLite cannot take {n_workers} worker processes: it locks the whole file on every "
            "write, so workers time out or fail trials. Drop --storage to use a journal file "
            "(runs/<study>/journal.log), pass --storage PATH/journal.log, or use a PostgreSQL URL"
        )

    import sqlalchemy.exc

    sqlite = url.startswith("sqlite")
    try:
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    storage = RDBStorage(
                        url,
                        heartbeat_interval=max(1, round(heartbeat_s)),
                        grace_period=max(2, round(3 * heartbeat_s)),
                        # a server connection can drop; a file's cannot
                        engine_kwargs={} if sqlite else {"pool_pre_ping": True},
                    )
                if sqlite:
                    _SQLITE_ENGINES.append(storage.engine)
                if sqlite and writer:
                    _write_ahead_log(storage)
                return storage
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
                # Several first starts on an empty database race to create Optuna's schema
                # (UniqueViolation or DuplicateObject on CREATE TYPE, DuplicateTable): the
                # losers find it made and open it.
                if attempt == 4 or not _lost_schema_race(err):
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable: the last attempt returns or raises")
    except ImportError:  # Optuna's "install appropriate one": the database driver is missing
        raise ConfigError(
            f"cannot open storage {url!r}: its database driver is not installed; "
            "for postgresql:// URLs: pip install 'lit-optim[postgres]'"
        ) from None
    except sqlalchemy.exc.NoSuchModuleError:
        scheme = url.split("://", 1)[0]
        raise ConfigError(
            f"--storage {url}: unknown storage scheme {scheme!r}; use "
            "sqlite:///FILE, postgresql://USER@HOST/DB or a journal file path"
        ) from None
    except Exception as err:  # noqa: BLE001 - any driver/connection failure reads the same
        detail = getattr(err, "orig", None) or err  # the driver's words, not SQLAlchemy's SQL
        # SQLite's "unable to open database file" in words (read before a failed first start
        # removes the folder it made); any other failure (a full disk …) in the driver's.
        why = (
            _sqlite_folder_problem(Path(url[len("sqlite:///") :]))
            if sqlite and "unable to open database file" in str(detail)
            else None
        )
        if made is not None:  # a failed first start leaves nothing behind
            for leftover in made.glob("study.db*"):
                leftover.unlink()
            if not any(made.iterdir()):
                made.rmdir()
        raise ConfigError(
            f"cannot open storage {url!r}: {why or f'{type(detail).__name__}: {detail}'}"
        ) from None


def _sqlite_folder_problem(path: Path) -> str | None:
    """What SQLite's "unable to open database file" means here, in words: the file's folder
    is missing, not a folder, or not writable (SQLite writes its journal beside the file)."""
    folder = path.absolute().parent
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if existing != folder:
        return f"its folder {folder} does not exist"
    why = _unwritable(folder)
    if why is not None:
        return (
            f"its folder {folder} {why} (SQLite writes its journal beside the file); "
            "pass a storage in a folder you can write"
        )
    return None


class StorageFault(LitOptimError):
    """A write of the study (its storage, or a file in its run folder) failed for a reason
    outside the trials: a full disk, a failing device. The study stops; the
    trials it interrupted are failed for rerun (not counted), so the same command, run again
    once the fault is fixed, finishes the budget."""


# SQLite's words for a fault of the disk, not of the study (sqlite3.OperationalError).
_SQLITE_DISK_WORDS = ("database or disk is full", "disk I/O error")


def storage_fault(err: BaseException) -> StorageFault | None:
    """``err`` as a ``StorageFault`` where a write of the study failed for a reason outside the
    trial that was running (see ``disk_fault``), else None."""
    disk = disk_fault(err)
    if disk is not None:
        reason = disk_fault_words(disk)
    else:
        internal = chained_error(err, optuna.exceptions.StorageInternalError)
        sqlite = next(
            (e for e in error_chain(err) if any(w in str(e) for w in _SQLITE_DISK_WORDS)), None
        )
        if internal is None and sqlite is None:
            return None
        if sqlite is not None:
            cause: BaseException = sqlite
        else:
            assert internal is not None  # one of the two, checked above
            cause = internal.__cause__ or internal
        words = str(getattr(cause, "orig", None) or cause).strip().splitlines() or [
            type(cause).__name__
        ]
        reason = " ".join(words[0].split())
    return StorageFault(
        f"a write failed ({reason}); every trial finished before it is kept, and "
        "those it stopped run again: free the space (or fix the storage) and run "
        "the same command again"
    )

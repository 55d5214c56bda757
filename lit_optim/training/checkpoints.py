"""Checkpoints as the CLI writes and reads them.

Written atomically beside their target (``SameFolderCheckpointIO``); named on the command
line as a file, ``last`` or ``best`` (``resolve_checkpoint``), checked to be a checkpoint before
Lightning reads it; and what a checkpoint's hyperparameters replace on resume is named
(``overridden_settings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lit_optim.catalog.errors import ConfigError
from lit_optim.catalog.kwargs import plain_data

__all__ = [
    "SameFolderCheckpointIO",
    "checkpoint_folders",
    "overridden_settings",
    "read_checkpoint",
    "resolve_checkpoint",
]

# What torch.save writes: a zip archive (the default since torch 1.6) or a legacy pickle.
_TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80\x02", b"\x80\x04", b"\x80\x05")


class SameFolderCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into ``<target>.tmp-<pid>`` beside the target, then an atomic rename.

    Lightning's own atomic save goes through an fsspec transaction whose temp file lives in
    ``$TMPDIR``: a process killed while writing leaves it there, unseen and never removed.
    Beside the target it is in plain sight, and the next save into that folder removes the
    temp files of processes that are gone. Remote URLs (``s3://``…) keep Lightning's path.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(
                "SameFolderCheckpointIO takes no storage_options "
                f"(got {storage_options!r}); they are for remote file systems"
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphaned_temps(path.parent)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _remove_orphaned_temps(folder: Path) -> None:
    for tmp in folder.glob("*.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def checkpoint_folders(trainer_config: Mapping[str, Any]) -> list[Path]:
    """Where the runs of a recipe keep their checkpoints, from its (parsed) trainer config:
    each ModelCheckpoint's ``dirpath``, the logger's ``<root>/version_*/checkpoints`` (the
    default), and ``<default_root_dir>/checkpoints`` (no logger)."""
    root = Path(_get(trainer_config, "default_root_dir") or ".")
    folders = []
    for cb in _get(trainer_config, "callbacks") or []:
        dirpath = (
            _get(_get(cb, "init_args") or {}, "dirpath")
            if _get(cb, "class_path")
            else getattr(cb, "dirpath", None)
        )
        if dirpath:
            folders.append(Path(dirpath))
    logger = _get(trainer_config, "logger")
    loggers = logger if isinstance(logger, (list, tuple)) else [logger]
    for lg in loggers:
        if lg is False:
            continue
        args = (_get(lg, "init_args") or {}) if lg not in (None, True) else {}
        save_dir = _get(args, "save_dir") or root
        name = _get(args, "name")
        logs = Path(save_dir) / (name if name is not None else "lightning_logs")
        folders += sorted(logs.glob("*/checkpoints"))
    folders.append(root / "checkpoints")
    return folders


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    getter = getattr(obj, "get", None)
    return getter(key) if callable(getter) else getattr(obj, key, None)


def resolve_checkpoint(value: str | os.PathLike | None, folders: list[Path]) -> str | None:
    """``--ckpt_path`` as a file to load: ``last`` is the newest ``last*.ckpt`` in ``folders``
    (Lightning itself only finds one written by the same process), ``best`` the best
    checkpoint recorded in it; a path must be a checkpoint file. Anything else Lightning
    understands (``hpc``, ``registry``…) is passed on."""
    if value is None or str(value) in ("hpc", "registry") or str(value).startswith("registry:"):
        return None if value is None else str(value)
    if str(value) in ("last", "best"):
        lasts = [p for folder in folders for p in folder.glob("last*.ckpt") if p.is_file()]
        if not lasts:
            raise ConfigError(
                f"--ckpt_path {value}: no last.ckpt in {', '.join(map(str, folders))}; give a "
                "checkpoint file (a fit of this recipe saves last.ckpt in its checkpoints folder)"
            )
        last = max(lasts, key=lambda p: p.stat().st_mtime)
        if str(value) == "last":
            return str(last)
        best = _best_path(read_checkpoint(last))
        if not best or not Path(best).is_file():
            raise ConfigError(
                f"--ckpt_path best: {last} records no best checkpoint that still "
                f"exists (got {best!r}); give a checkpoint file"
            )
        return best
    path = Path(value)
    if not path.is_file():
        raise ConfigError(
            f"--ckpt_path {value}: no such file"
            if not path.exists()
            else f"--ckpt_path {value}: is not a file"
        )
    with open(path, "rb") as f:
        start = f.read(4)
    if not start.startswith(_TORCH_FILE_STARTS):
        raise ConfigError(
            f"--ckpt_path {value}: not a checkpoint (torch.save writes a zip or "
            "pickle file; this one starts differently)"
        )
    return str(path)


def read_checkpoint(path: str | os.PathLike, *, weights_only: bool | None = None) -> dict:
    """The checkpoint's contents, memory-mapped, with a one-line error for a damaged file."""
    try:
        return torch.load(
            path,
            map_location="cpu",
            mmap=True,
            weights_only=True if weights_only is None else weights_only,
        )
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same mistake
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"--ckpt_path {path}: cannot be read as a checkpoint ({first})") from err


def _best_path(checkpoint: Mapping[str, Any]) -> str | None:
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if isinstance(state, Mapping) and state.get("best_model_path"):  # a ModelCheckpoint's
            return state["best_model_path"]
    return None


def overridden_settings(saved: Mapping[str, Any] | None, asked: Mapping[str, Any]) -> list[str]:
    """``"key: asked → checkpoint"`` for each model setting a checkpoint's hyperparameters
    replace (LightningCLI puts them over the parsed config, so the checkpoint's optimizer,
    lr and schedule win over the command line's)."""
    if not isinstance(saved, Mapping):
        return []
    saved = plain_data({k: v for k, v in saved.items() if not str(k).startswith("_")})
    asked = plain_data(dict(asked))
    # None asks for nothing: input_shape / num_classes are filled in from the data later.
    return [
        f"{k}: {asked[k]!r} → {saved[k]!r}"
        for k in sorted(saved)
        if asked.get(k) is not None and asked[k] != saved[k]
    ]

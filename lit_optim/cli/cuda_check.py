"""Undo Lightning's NVML-based CUDA check where it is pure waste.

Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that
``torch.cuda.is_available()`` asks NVML instead of initialising CUDA (which would break a
later fork). torch.optim asks ``is_available()`` at every optimizer step (its CUDA-graph
capture check). Where NVML cannot be loaded, as with a CUDA build of torch on a machine
without the NVIDIA driver (laptops, CI), every ask is a failed ``dlopen`` of libnvidia-ml
followed by the very ``cudaGetDeviceCount`` that torch's default check makes: the flag
changes nothing but the cost (a digits study ran 10% faster without it: bench/README.md,
costs). There torch's default is restored. Where
NVML loads, the flag does its job and stays; a value the user set is kept.
"""

from __future__ import annotations

import ctypes
import os
from functools import lru_cache
from pathlib import Path

__all__ = ["FLAG", "cuda_check_value", "launch_value", "restore_cuda_check"]

FLAG = "PYTORCH_NVML_BASED_CUDA_CHECK"


@lru_cache(1)
def nvml_loads() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def cuda_check_value(given: str | None, nvml_available: bool) -> str | None:
    """The flag's value to set after Lightning's import (None: leave Lightning's)."""
    if given is not None:
        return given  # the user's choice (or a parent process's), whatever Lightning set
    return None if nvml_available else "0"


def launch_value() -> str | None:
    """The flag in the environment this process was started with (Linux: /proc/self/environ,
    which ``os.environ`` assignments do not change); "1" where that cannot be read, so that
    Lightning's value stays."""
    try:
        entries = Path("/proc/self/environ").read_bytes().split(b"\0")
    except OSError:
        return "1"
    prefix = FLAG.encode() + b"="
    found = [e[len(prefix) :].decode() for e in entries if e.startswith(prefix)]
    return found[-1] if found else None


def restore_cuda_check(given: str | None) -> None:
    """``given``: the flag as it was before Lightning was imported (``lit_optim`` keeps it), or
    ``"lightning"`` when Lightning was imported first: then the process's launch environment
    tells whether the user set it."""
    if given == "lightning":
        given = launch_value()
    value = cuda_check_value(given, nvml_loads())
    if value is not None:
        os.environ[FLAG] = value

"""``convspec bench`` environment: versions, BLAS kernel and threads, load, where caches live."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from conformance.bench.options import ENVIRONMENT_VARIABLES


def environment_info() -> dict[str, Any]:
    """Where the numbers come from: versions, BLAS, thread and OpenBLAS variables, load."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "env": {name: os.environ.get(name) for name in ENVIRONMENT_VARIABLES},
        "blas": _blas_info(),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the loaded BLAS (kernel architecture, threads), if it is installed."""
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        return []
    found: list[dict[str, Any]] = []
    for pool in threadpoolctl.threadpool_info():
        keys = ("internal_api", "version", "architecture", "num_threads", "prefix", "filepath")
        found.append({key: pool.get(key) for key in keys})
    return found


def _blas_summary(environment: dict[str, Any]) -> str:
    pools = [p for p in environment["blas"] if p.get("internal_api") in ("openblas", "mkl", "blis")]
    # NumPy's own BLAS first (SciPy and PyTorch may load others).
    pools.sort(key=lambda p: "numpy" not in str(p.get("filepath") or ""))
    if not pools:
        return "BLAS: unknown (install threadpoolctl to see it)"
    pool = pools[0]
    return f"{pool['internal_api']} {pool['version']} {pool.get('architecture') or ''} kernel, {pool['num_threads']} threads"


def _load(environment: dict[str, Any]) -> str:
    load = environment["load_average_1min"]
    return "unknown" if load is None else f"{load:.2f}"


def _openblas_vars(environment: dict[str, Any]) -> str:
    env = environment["env"]
    set_vars = [f"{name}={env[name]}" for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if env.get(name)]
    return ", ".join(set_vars) if set_vars else "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"


def user_cache_dir() -> Path:
    """Where convspec keeps per-user caches: ``$CONVSPEC_CACHE_DIR``, else the platform's user cache directory.

    ``$XDG_CACHE_HOME/convspec`` (default ``~/.cache/convspec``) on Linux,
    ``~/Library/Caches/convspec`` on macOS, ``%LOCALAPPDATA%\\convspec`` on Windows.
    """
    override = os.environ.get("CONVSPEC_CACHE_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "convspec"


def machine_key(environment: dict[str, Any]) -> str:
    """What a matmul rate depends on: the CPU, its count, NumPy and its BLAS (kernel, threads, variables)."""
    env = environment["env"]
    variables = ",".join(f"{name}={env[name]}" for name in ENVIRONMENT_VARIABLES if env.get(name))
    return " | ".join([
        str(environment["processor"]), f"{environment['cpu_count']} CPUs", str(environment["machine"]),
        f"NumPy {environment['numpy']}", _blas_summary(environment), variables or "no thread/kernel variables",
    ])

"""Where compiled kernels are kept between runs: a directory under the user's cache directory.

The directory is ``$CONVSPEC_CACHE_DIR`` when set, otherwise ``convspec`` under
``$XDG_CACHE_HOME``, or under ``~/.cache`` when that is unset (the XDG base
directory convention). Each framework adapter that can reuse compiled code
keeps its own subdirectory: JAX writes XLA's persistent compilation cache to
``jax/``. Setting ``CONVSPEC_NO_CACHE=1`` (what ``convspec check --no-cache``
does) turns it off; environment variables reach the worker process the
backend runs in, which is why the switch is one.

>>> str(cache_dir("jax", {"XDG_CACHE_HOME": "/var/cache/me"}))
'/var/cache/me/convspec/jax'
>>> cache_dir("jax", {"CONVSPEC_NO_CACHE": "1"}) is None
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: Set to 1 to keep compiled code only for the run that compiled it.
NO_CACHE_ENV = "CONVSPEC_NO_CACHE"
#: Overrides the cache directory.
CACHE_DIR_ENV = "CONVSPEC_CACHE_DIR"


def cache_dir(name: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The cache directory of ``name`` (e.g. ``"jax"``), or None when caching is disabled."""
    if environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    root = environ.get(CACHE_DIR_ENV)
    if not root:
        base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(base) / "convspec")
    return Path(root) / name


def disable_cache() -> None:
    """Turn the cache off for this process and the worker processes it starts."""
    os.environ[NO_CACHE_ENV] = "1"


__all__ = ["CACHE_DIR_ENV", "NO_CACHE_ENV", "cache_dir", "disable_cache"]

"""How many BLAS threads the reference's matrix products use: one, unless asked otherwise.

Measured on a 2-core machine shared with other work (docs/performance.md, "The
reference under 1 and 2 BLAS threads and under load"): with OpenBLAS's default of
one thread per core, a neighbour busy on one core made the reference's
convolutions several times slower, far beyond losing half the cores, because
OpenBLAS's threads wait for each other on every product (a (64 x 25088) . (25088 x
256) product took 513 ms on two threads and 18 ms on one). On one thread a busy
neighbour costs it (almost) nothing, and the reference's time is the same from run
to run; what one thread gives up is the second core of an idle machine on large
products. The reference is a specification first: its time should not depend on
what else runs on the machine.

``CONVSPEC_REFERENCE_BLAS_THREADS`` (read at each call) overrides the default:
a positive number of threads, or ``default`` to leave the BLAS library's own setting
alone. The limit is set with threadpoolctl for the duration of a reference call and
restored after it (BLAS thread counts are per process: calls from several Python
threads at once share the setting). Without threadpoolctl the library's own setting
applies.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ParamSpec, TypeVar

#: The environment variable that overrides :data:`DEFAULT_THREADS`.
THREADS_VARIABLE = "CONVSPEC_REFERENCE_BLAS_THREADS"
DEFAULT_THREADS = 1

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def _controller() -> Any:
    """threadpoolctl's controller of the BLAS libraries loaded now (NumPy's among them), or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def requested_threads() -> int | None:
    """The BLAS thread count reference calls run with (None: the library's own setting)."""
    value = os.environ.get(THREADS_VARIABLE, "").strip().lower()
    if not value:
        return DEFAULT_THREADS
    if value == "default":
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise ValueError(f"{THREADS_VARIABLE}={value!r}: give a positive number of threads or 'default'")


def blas_threads() -> AbstractContextManager[Any]:
    """A context in which NumPy's BLAS uses :func:`requested_threads` threads."""
    threads = requested_threads()
    controller = _controller()
    if threads is None or controller is None:
        return nullcontext()
    return controller.limit(limits=threads, user_api="blas")  # type: ignore[no-any-return]


def with_blas_threads(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` inside :func:`blas_threads`."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with blas_threads():
            return function(*args, **kwargs)

    return wrapper

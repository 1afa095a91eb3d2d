"""Compile-friendly generation: a small, fixed pool of shapes per operation, dtype and rule variant.

A backend that compiles a kernel for every new combination of shapes and
parameters (``jax.jit``, XLA, TVM, tinygrad) pays a compilation, often 0.1 s
or more, for every generated case; the values are nearly free. When it
declares ``Capabilities(compiles_per_shape=True)`` the problem strategies
(:func:`conformance.strategies.problems`) draw from this pool instead of
building a new shape each time, and the values, the value kind and dY vary
from example to example. Each pooled shape then compiles once per run, and
every rule that asks for the same operation and dtype draws from the same
pool, so a shape compiled for ``forward-values`` is reused by
``finite-differences``, ``adjoint``, ``nan-propagation``, ``tie-routing``...

The pool is built by the same builders as the Hypothesis strategies, with the
choices taken from a generator seeded by the run's ``--seed``:

* entry 0 is the minimal problem: every size, kernel, stride, dilation and
  channel count one, no padding, no bias;
* the others cycle through the declared spatial ranks and alternate the
  small and the large size class, so every rank is covered in both;
* an integer choice is one of its bounds a third of the time and, in wide
  ranges, often a power of two or one off it (4 ± 1, ..., 64 ± 1: where
  blocked and vectorised kernels change code path); uniform otherwise;
* pooled problems have a batch of at least one: the ``empty-batch`` rule
  builds N = 0 itself, as ``empty-windows`` builds windows entirely in padding.

The pool is sorted from the smallest problem up, so Hypothesis shrinks a
failure towards the smallest pooled shape that still fails.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from conformance.strategies import Problem, build_problem
from spec import Capabilities, OpName

_T = TypeVar("_T")

#: Problems per (operation, dtype, rule variant), by profile.
POOL_SIZES: dict[str, int] = {"quick": 4, "ci": 8, "thorough": 32}
#: Powers of two, whose neighbours are where blocked and vectorised kernels change code path.
_BLOCKS = (4, 8, 16, 32, 64)


@dataclass(frozen=True)
class PoolSettings:
    """The run's seed and the number of problems per pool."""

    seed: int = 0
    size: int = POOL_SIZES["ci"]


_DEFAULT = PoolSettings()  # frozen: safe to share as the ContextVar's default
_SETTINGS: ContextVar[PoolSettings] = ContextVar("convspec_shape_pool", default=_DEFAULT)


def use_pool_settings(seed: int, size: int) -> Token[PoolSettings]:
    """Draw the pools from ``seed``, ``size`` problems each, until :func:`restore_pool_settings`."""
    return _SETTINGS.set(PoolSettings(seed, size))


def restore_pool_settings(token: Token[PoolSettings]) -> None:
    """The settings before the matching :func:`use_pool_settings`."""
    _SETTINGS.reset(token)


@contextmanager
def pool_settings(seed: int, size: int) -> Iterator[None]:
    """Draw the pools of the rules run inside this block from ``seed``, ``size`` problems each."""
    token = use_pool_settings(seed, size)
    try:
        yield
    finally:
        restore_pool_settings(token)


class _Least:
    """Choices of the minimal problem: every integer its lower bound, every boolean False, every option the first."""

    def integer(self, low: int, high: int) -> int:
        return low

    def boolean(self) -> bool:
        return False

    def choice(self, options: Sequence[_T]) -> _T:
        return options[0]

    def same_or_integer(self, value: int, low: int, high: int) -> int:
        return value


class _Seeded:
    """Choices from a seeded generator, biased towards bounds and powers of two ± 1."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        if high <= low:
            return low
        u = float(self._rng.random())
        if u < 0.2:
            return low
        if u < 0.33:
            return high
        near = [v for b in _BLOCKS for v in (b - 1, b, b + 1) if low <= v <= high]
        if u < 0.6 and high - low >= 6 and near:
            return near[int(self._rng.integers(len(near)))]
        return int(self._rng.integers(low, high + 1))

    def boolean(self) -> bool:
        return bool(self._rng.random() < 0.5)

    def choice(self, options: Sequence[_T]) -> _T:
        return options[int(self._rng.integers(len(options)))]

    def same_or_integer(self, value: int, low: int, high: int) -> int:
        return value if self._rng.random() < 0.5 else self.integer(low, high)


def pooled(op: OpName, caps: Capabilities, dtype: str, kwargs: dict[str, Any]) -> list[Problem]:
    """The pool of ``op`` in ``dtype`` narrowed by the strategy's ``kwargs``, for the current settings."""
    settings = _SETTINGS.get()
    return list(_pool(op, caps, dtype, tuple(sorted(kwargs.items())), settings.seed, settings.size))


def _size(problem: Problem) -> int:
    return math.prod(problem.x_shape) + (math.prod(problem.w_shape) if problem.w_shape is not None else 0)


@functools.lru_cache(maxsize=512)
def _pool(op: OpName, caps: Capabilities, dtype: str, kwargs: tuple[tuple[str, Any], ...], seed: int,
          size: int) -> tuple[Problem, ...]:
    narrowing = dict(kwargs)
    ranks = [0] if op == "linear" else [narrowing["rank"]] if "rank" in narrowing else sorted(caps.spatial_ranks)
    found = {(least := build_problem(_Least(), op, caps, dtype, **narrowing)).describe(): least}
    stream = zlib.crc32(f"{op}/{dtype}/{kwargs!r}".encode())
    for index in range(1, 4 * size):  # duplicates are dropped; a few spare attempts fill the pool
        if len(found) >= size:
            break
        slot = index - 1
        extra: dict[str, Any] = {"large": (slot // len(ranks)) % 2 == 1}
        if op != "linear" and "rank" not in narrowing:
            extra["rank"] = ranks[slot % len(ranks)]
        rng = np.random.default_rng([seed & 0xFFFFFFFF, stream, index])
        problem = build_problem(_Seeded(rng), op, caps, dtype, **narrowing, **extra)
        found.setdefault(problem.describe(), problem)
    return tuple(sorted(found.values(), key=_size))


__all__ = ["POOL_SIZES", "PoolSettings", "pool_settings", "pooled", "restore_pool_settings", "use_pool_settings"]

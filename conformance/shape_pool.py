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
* of 96 candidates, the pool keeps those that cover the most edge cases not
  yet covered (:func:`features`: per axis a kernel, stride or dilation above
  one, padding before, after or uneven, a single output, strides longer than
  the window, overlapping windows, sizes next to a power of two, prime sizes; windows
  entirely in padding; groups, with several channels each; ceil mode adding a window, with each
  ``count_include_pad``; a bias; square and non-square linear layers). Six
  problems chosen from 96 cover as many of these as eight chosen from 48 did,
  with a quarter fewer compilations; in ``quick`` and ``ci`` an operation with
  few edge cases (a linear layer, global pooling) stops at four once they are
  all covered;
* half a max-pooling pool has no dilation: a backend may lack the backward
  of a dilated max pool (JAX does), and would otherwise check its backward on
  the minimal problem alone;
* a narrowed variant's pool (``ceil_mode=True``, single-channel 2-D) holds half as many
  problems: it serves one rule, and its shapes are compilations of their own;
* pooled problems have a batch of at least one: the ``empty-batch`` rule
  builds N = 0 itself, as ``empty-windows`` builds windows entirely in padding.

Rules that build shapes of their own from pooled ones (an empty batch, an
invalid call, a window entirely in padding, a dimension shorter than the
kernel) compile each of them too, so they draw on fewer (``few``, see
:func:`pooled`: the pool's minimal problem and those covering the most edge
cases), and a rule's own change to a pooled problem is made once per pooled
problem with seeded choices (:func:`derived`), not per example. Fixed pools of
rules (the large shapes) are sampled by :func:`rotation`.

The pool is sorted from the smallest problem up, so Hypothesis shrinks a
failure towards the smallest pooled shape that still fails.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

import spec
from conformance.strategies import Problem, Variant, build_problem
from spec import Capabilities, OpName

_T = TypeVar("_T")

#: Problems per (operation, dtype, rule variant), by profile.
POOL_SIZES: dict[str, int] = {"quick": 4, "ci": 6, "thorough": 32}
#: Powers of two, whose neighbours are where blocked and vectorised kernels change code path.
_BLOCKS = (4, 8, 16, 32, 64)
#: A pool stops growing once this many problems cover every edge case its candidates have (a linear layer's few)...
_ENOUGH = 4
#: ... unless it may hold more than this many (thorough's): there more shapes are wanted for their own sake.
_VARIETY = 8
#: Candidates drawn for a pool (at least six per entry); the pool keeps those that cover the most edge cases.
_CANDIDATES = 96


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


def pooled(op: OpName, caps: Capabilities, dtype: str, kwargs: dict[str, Any], few: int = 1) -> list[Problem]:
    """The pool of ``op`` in ``dtype`` narrowed by the strategy's ``kwargs``, for the current settings.

    With ``few`` > 1, a part of it: ``len(pool) // few`` problems (at least two), the minimal one and
    those covering the most edge cases, for rules whose every case is a shape the others never call.
    """
    settings = _SETTINGS.get()
    # Capabilities may hold a dict (not hashable): the cache is keyed by its repr.
    key = (op, repr(caps), dtype, repr(sorted(kwargs.items())), settings.seed, settings.size)
    if key not in _POOLS:
        # A narrowed variant (ceil mode only, single-channel 2-D) serves one rule, and each of its shapes is
        # a compilation the main pool does not share: half as many (its features are fewer to cover).
        size = settings.size if not kwargs else max(2, settings.size // 2)
        _POOLS[key] = _pool(op, caps, dtype, tuple(sorted(kwargs.items())), settings.seed, size)
    pool = list(_POOLS[key])
    if few <= 1 or len(pool) <= 2:
        return pool
    return sorted(_select(pool, max(2, len(pool) // few)), key=_size)


def derived(name: str, base: Sequence[Problem], variant: Variant) -> list[Problem]:
    """``variant`` of each problem of ``base``, its choices seeded by the run's seed, ``name`` and the slot.

    A rule that changes the problems it draws (a dimension shorter than the kernel, a window in padding)
    then calls as many shapes as the pool has, whatever its number of examples. ``variant`` gets the slot
    (0, 1, ...) to alternate what it builds; drawn by Hypothesis, it gets None and draws that too.
    """
    settings = _SETTINGS.get()
    out = []
    for slot, problem in enumerate(base):
        stream = zlib.crc32(f"{name}/{problem.describe()}".encode())
        out.append(variant(_Seeded(np.random.default_rng([settings.seed & 0xFFFFFFFF, stream, slot])), problem, slot))
    return out


def rotation(problems: Sequence[_T], key: str, share: int = 8) -> list[_T]:
    """``size // share`` consecutive items of a fixed list (at least one, so one in ``ci``), from where the
    run's seed and ``key`` point: another seed, or another dtype or operation in ``key``, starts elsewhere.

    For a rule's fixed problems (the large shapes), each a compilation of its own and the costliest ones.
    """
    settings = _SETTINGS.get()
    count = min(len(problems), max(1, settings.size // share))
    start = (settings.seed + zlib.crc32(key.encode())) % len(problems)
    return [problems[(start + k) % len(problems)] for k in range(count)]


def _size(problem: Problem) -> int:
    return math.prod(problem.x_shape) + (math.prod(problem.w_shape) if problem.w_shape is not None else 0)


def _prime(n: int) -> bool:
    """A prime of at least 5: a size no tile, vector width or unrolling divides."""
    return n >= 5 and all(n % k for k in range(2, math.isqrt(n) + 1))


def features(problem: Problem) -> set[tuple[Any, ...]]:
    """The edge cases a problem exercises, per axis where it matters: what the pool tries to cover.

    >>> from conformance.strategies import Problem
    >>> sorted(features(Problem("linear", "float64", (2, 8), (8, 8), True)))
    [('batch>1',), ('bias',), ('square',), ('width', 'block')]
    """
    out: set[tuple[Any, ...]] = set()
    if problem.x_shape[0] > 1:
        out.add(("batch>1",))
    if problem.bias:
        out.add(("bias",))
    record = problem.operation
    if record.windowing == "none":
        assert problem.w_shape is not None
        n_out, n_in = problem.w_shape
        out.add(("square",) if n_out == n_in else ("wide",) if n_out > n_in else ("narrow",))
        for n in (n_in, n_out):
            if n > 1 and any(abs(n - b) <= 1 for b in _BLOCKS):
                out.add(("width", "block"))
            elif n > 16:
                out.add(("width", "odd"))
            if _prime(n):
                out.add(("width", "prime"))
        return out
    p, rank = problem.params, problem.spatial_rank
    out.add(("rank", rank))
    if record.windowing == "adaptive":
        out |= {("channels>1",)} if problem.x_shape[1] > 1 else set()
        for axis, (n, o) in enumerate(zip(problem.x_shape[2:], p["output_size"])):
            flags = {"global": o == 1, "identity": o == n, "beyond-input": o > n, "uneven": o < n and n % o != 0,
                     "wide": n > 8}
            out |= {(name, axis) for name, on in flags.items() if on}
        return out
    kernel = p["kernel_size"] if "kernel_size" in p else problem.w_shape[2:] if problem.w_shape else ()
    sizes = problem.output_shape()[2:]
    for axis, (n, k, s, d, (lo, hi), o) in enumerate(zip(problem.x_shape[2:], kernel, p["stride"], p["dilation"],
                                                        p["padding"], sizes)):
        flags = {"kernel>1": k > 1, "stride>1": s > 1, "dilation>1": d > 1, "pad-before": lo > 0, "pad-after": hi > 0,
                 "asymmetric": lo != hi, "one-output": o == 1, "stride>kernel": s > k, "overlap": s < (k - 1) * d + 1,
                 "wide": n > 8, "near-block": any(abs(n - b) <= 1 for b in _BLOCKS[1:]), "prime": _prime(n)}
        out |= {(name, axis) for name, on in flags.items() if on}
        if "output_padding" in p and p["output_padding"][axis] > 0:
            out.add(("output-padding", axis))
        if any(all(not 0 <= i * s + j * d - lo < n for j in range(k)) for i in range(o)):
            out.add(("empty-window",))
    if record.has_weights:
        assert problem.w_shape is not None
        groups = p["groups"]
        out |= {("groups>1",)} if groups > 1 else set()
        out |= {("w.shape[1]>1",)} if problem.w_shape[1] > 1 else set()
        out |= {("w.shape[0]/groups>1",)} if problem.w_shape[0] // groups > 1 else set()
        if groups > 1 and problem.w_shape[1] > 1 and problem.w_shape[0] // groups > 1:
            out.add(("groups of several channels",))  # where mixing up channels of different groups shows
        return out
    if problem.x_shape[1] > 1:
        out.add(("channels>1",))
    include = p.get("count_include_pad")
    out.add(("ceil_mode", p["ceil_mode"], include))
    if p["ceil_mode"]:
        floor = spec.pool_output_shape(np.empty(problem.x_shape), **{**{k: v for k, v in p.items()
                                                                          if k != "count_include_pad"}, "ceil_mode": False})
        if floor != problem.output_shape():  # ceil mode adds a last window overhanging the padded input
            out.add(("ceil-window", include))
    return out


def _select(candidates: list[Problem], size: int, chosen: Sequence[Problem] = ()) -> list[Problem]:
    """``size`` problems: ``chosen`` (else the first candidate), then greedily those covering the most features
    not yet covered."""
    picked = list(chosen) or [candidates[0]]
    covered = set().union(*(features(c) for c in picked))
    rest = [c for c in candidates if c not in picked]
    while rest and len(picked) < size:
        gains = [len(features(c) - covered) for c in rest]
        best = max(range(len(rest)), key=lambda i: (gains[i], -i))  # ties: the earlier candidate
        if gains[best] == 0 and len(picked) >= _ENOUGH and size <= _VARIETY:
            break  # a problem that covers nothing new would only be another compilation
        covered |= features(rest[best])
        picked.append(rest.pop(best))
    return picked


_POOLS: dict[tuple[Any, ...], tuple[Problem, ...]] = {}


def _pool(op: OpName, caps: Capabilities, dtype: str, kwargs: tuple[tuple[str, Any], ...], seed: int,
          size: int) -> tuple[Problem, ...]:
    narrowing = dict(kwargs)
    spatial = spec.OPERATIONS[op].windowing != "none"
    ranks = [0] if not spatial else [narrowing["rank"]] if "rank" in narrowing else sorted(caps.spatial_ranks)
    found = {(least := build_problem(_Least(), op, caps, dtype, **narrowing)).describe(): least}
    stream = zlib.crc32(f"{op}/{dtype}/{kwargs!r}".encode())
    for index in range(1, max(_CANDIDATES, 6 * size)):
        slot = index - 1
        extra: dict[str, Any] = {"large": (slot // len(ranks)) % 2 == 1}
        if spatial and "rank" not in narrowing:
            extra["rank"] = ranks[slot % len(ranks)]
        rng = np.random.default_rng([seed & 0xFFFFFFFF, stream, index])
        problem = build_problem(_Seeded(rng), op, caps, dtype, **narrowing, **extra)
        found.setdefault(problem.describe(), problem)
    candidates = list(found.values())
    chosen: list[Problem] = []
    if spec.OPERATIONS[op].selects and spec.OPERATIONS[op].dilation_field is not None:
        # A backend may lack the backward of a dilated max pool (JAX has no VJP for it): half the pool has
        # no dilation, so that its backward is still checked on several shapes, not on the minimal one alone.
        chosen = _select([c for c in candidates if set(c.params["dilation"]) == {1}], (size + 1) // 2)
    return tuple(sorted(_select(candidates, size, chosen), key=_size))


__all__ = ["POOL_SIZES", "PoolSettings", "derived", "features", "pool_settings", "pooled", "restore_pool_settings",
           "rotation", "use_pool_settings"]

"""Hypothesis strategies for valid configurations and their input values.

Configurations are *built* valid (sizes are drawn after the parameters they
must fit), never filtered, so there are no health-check failures. Values are
drawn from a NumPy generator seeded by Hypothesis, by *kind*: shrinking moves
the shapes down and the kind towards small integers, so the minimal failing
case is small and readable.

Every strategy takes the backend's :class:`spec.Capabilities` and generates
only inside them. Batches have N >= 1: the empty batch (N = 0) is the
``empty-batch`` rule's alone, so a general bug never shrinks to an empty-batch
case; the smallest spatial rank comes first, so shrinking moves towards it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

import numpy as np
from hypothesis import strategies as st

import spec
import spec.accuracy
from spec import OPERATIONS, Capabilities, Operation, OpName, Padding

_T = TypeVar("_T")
ValueKind: TypeAlias = Literal["positive", "integers", "floats", "wide", "distinct", "negative"]
#: Kinds used for ordinary value checks; shrinking prefers the first, so a bug that shows on small positive
#: integers is reported on them.
ORDINARY_KINDS: tuple[ValueKind, ...] = ("positive", "integers", "floats", "wide")


@dataclass(frozen=True)
class Problem:
    """One operation call: shapes and explicit parameters (no values yet)."""

    op: OpName
    dtype: str
    x_shape: tuple[int, ...]
    #: Weight shape (conv, linear) or None (pooling).
    w_shape: tuple[int, ...] | None = None
    bias: bool = False
    #: The protocol keyword arguments (stride, padding, ...), already explicit.
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def operation(self) -> Operation:
        """The operation's record in the registry (spec.operations)."""
        return OPERATIONS[self.op]

    @property
    def call(self) -> tuple[Any, ...]:
        """The parameters as the operation's typed model (``spec.ConvParams``, ``spec.PoolParams``, ...)."""
        return self.operation.call(self.params)

    @property
    def spatial_rank(self) -> int:
        return len(self.x_shape) - 2

    def describe(self) -> str:
        """One line naming the shapes and parameters, for reports."""
        parts = [f"{self.op}", f"dtype={self.dtype}", f"x{self.x_shape}"]
        if self.w_shape is not None:
            parts.append(f"w{self.w_shape}")
        if self.operation.has_bias:
            parts.append(f"bias={self.bias}")
        parts += [f"{k}={v}" for k, v in self.params.items()]
        return " ".join(parts)

    def output_shape(self) -> tuple[int, ...]:
        """The output shape the spec prescribes."""
        x = np.empty(self.x_shape, dtype=self.dtype)
        w = None if self.w_shape is None else np.empty(self.w_shape, dtype=self.dtype)
        return self.operation.output_shape(x, w, None, **self.params)

    def bias_shape(self) -> tuple[int, ...]:
        """The shape of ``b``: one entry per output channel (out_features for linear)."""
        return (self.output_shape()[1],)

    def result_dtype(self) -> str:
        """The dtype of the forward result: the input's, or the operation's own (int64 indices)."""
        return self.operation.result_dtype or self.dtype


@dataclass(frozen=True)
class Inputs:
    """The arrays of one call; ``dy`` is the upstream gradient for backward."""

    x: np.ndarray[Any, Any]
    w: np.ndarray[Any, Any] | None
    b: np.ndarray[Any, Any] | None
    dy: np.ndarray[Any, Any]
    kind: ValueKind

    def named(self) -> dict[str, np.ndarray[Any, Any]]:
        out = {"x": self.x, "dy": self.dy}
        if self.w is not None:
            out["w"] = self.w
        if self.b is not None:
            out["b"] = self.b
        return out


@dataclass(frozen=True)
class Case:
    """A problem with its values: what one rule example checks."""

    problem: Problem
    inputs: Inputs


# --------------------------------------------------------------------------- shapes

class Choices(Protocol):
    """Where the shape builders get their choices: a Hypothesis draw, or a seeded generator (the shape pool)."""

    def integer(self, low: int, high: int) -> int: ...

    def boolean(self) -> bool: ...

    def choice(self, options: Sequence[_T]) -> _T: ...

    def same_or_integer(self, value: int, low: int, high: int) -> int:
        """``value``, or an integer in [low, high]."""
        ...


class _Drawn:
    """Choices drawn by Hypothesis, so that they shrink."""

    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def integer(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))

    def boolean(self) -> bool:
        return self._draw(st.booleans())

    def choice(self, options: Sequence[_T]) -> _T:
        return self._draw(st.sampled_from(options))

    def same_or_integer(self, value: int, low: int, high: int) -> int:
        return self._draw(st.one_of(st.just(value), st.integers(low, high)))


def _sizes_for(choose: Choices, need: int, extra: int) -> int:
    """A spatial size of at least ``need`` (and at least 1)."""
    return choose.integer(max(1, need), max(1, need) + extra)


@dataclass(frozen=True)
class Limits:
    """Upper bounds of one size class; strategies draw each dimension up to these."""

    channels: int
    groups: int
    kernel: int
    stride: int
    dilation: int
    pad: int
    extra: int
    batch: int
    #: The larger class (which may also draw a long weight-gradient reduction).
    large: bool = False


def size_limits(choose: Choices, rank: int, large: bool | None = None) -> Limits:
    """Small cases mostly; sometimes larger ones, where blocked and tiled kernels break.

    The class is drawn as a boolean (unless ``large`` is given), so shrinking always falls back to small.
    """
    large = choose.boolean() if large is None else large
    if rank == 3:
        return Limits(2, 2, 2, 3, 2, 2, 3, 3) if not large else Limits(3, 3, 3, 3, 3, 2, 6, 3, large=True)
    if not large:
        return Limits(3, 3, 3, 3, 2, 2, 5, 3)
    return Limits(6, 4, 5, 4, 3, 3, 40 if rank == 1 else 20, 5, large=True)


#: The shortest and longest weight-gradient reductions (N * prod(out) terms) of the long-reduction class.
LONG_REDUCTION = (1024, 4096)
#: Reductions up to this length are checkable in every accumulation precision the suite meets by default.
UNLIMITED_TERMS = 100_000


@functools.cache
def _checkable(dtype: str, accumulation: str) -> int:
    return spec.accuracy.checkable_terms(dtype, accumulation)


def reduction_limit(caps: Capabilities, dtype: str) -> int | None:
    """The longest reduction (K terms) whose accuracy bound can still tell a wrong result, or None if unlimited.

    Only a backend declaring a narrow accumulation (float16 or bfloat16 sums) has one: see
    spec.accuracy.checkable_terms. Problems of such a backend keep every K within it, dW's
    ``N * prod(out)`` included.
    """
    limit = _checkable(dtype, caps.accumulation_for(dtype))
    return None if limit >= UNLIMITED_TERMS else limit


def _kernel(choose: Choices, rank: int, most: int, limit: int | None) -> tuple[int, ...]:
    """Kernel sizes up to ``most`` per dim, with a product of at most ``limit`` taps."""
    kernel: list[int] = []
    for _ in range(rank):
        top = most if limit is None else max(1, min(most, limit // math.prod(kernel)))
        kernel.append(choose.integer(1, top))
    return tuple(kernel)


def _largest_input(most_out: int, k: int, d: int, lo: int, hi: int, s: int) -> int:
    """The largest input size whose output size (floor mode) is at most ``most_out``."""
    return (most_out - 1) * s + s - 1 + d * (k - 1) + 1 - lo - hi


def _build_conv(choose: Choices, caps: Capabilities, dtype: str, *, rank: int | None = None,
                max_batch: int | None = None, single_channel: bool = False, large: bool | None = None) -> Problem:
    """With a reduction limit (a declared narrow accumulation), every sum stays within it: the forward's
    ``C_in / groups * prod(kernel)``, dx's ``C_out / groups * prod(kernel)`` and dW's ``N * prod(out)``."""
    rank = rank if rank is not None else choose.choice(sorted(caps.spatial_ranks))
    lim = size_limits(choose, rank, large)
    limit = reduction_limit(caps, dtype)
    if single_channel:
        groups, c_in, c_out = 1, 1, 1
    else:
        groups = choose.integer(1, lim.groups) if caps.groups else 1
        c_in = groups * choose.integer(1, lim.channels)
        c_out = groups * choose.integer(1, lim.channels)
    kernel = _kernel(choose, rank, lim.kernel, limit)
    if limit is not None and not single_channel:
        per_group = max(1, limit // math.prod(kernel))
        c_in, c_out = groups * min(c_in // groups, per_group), groups * min(c_out // groups, per_group)
    stride = tuple(choose.integer(1, lim.stride) for _ in range(rank))
    dilation = tuple(choose.integer(1, lim.dilation) if caps.dilation else 1 for _ in range(rank))
    padding = _choose_padding(choose, caps, kernel, limit=None, most=lim.pad)
    batch_top = lim.batch if max_batch is None else max_batch
    if limit is None:
        spatial = tuple(
            _sizes_for(choose, d * (k - 1) + 1 - lo - hi, lim.extra)
            for k, d, (lo, hi) in zip(kernel, dilation, padding)
        )
        batch = choose.integer(1, batch_top)
        # A long reduction, where split-K and blocked accumulations break: dW sums 1024 to 4096 terms. Decided
        # after the sizes, by the last choice of an integer: shrinking (towards 0, and dropping the choices after
        # it) then leaves long reductions for the small sizes already drawn.
        if lim.large and choose.integer(0, 3) == 3:
            side = math.ceil((choose.integer(*LONG_REDUCTION) / batch) ** (1 / rank))
            stride = (1,) * rank
            spatial = tuple(max(1, side + d * (k - 1) - lo - hi) for k, d, (lo, hi) in zip(kernel, dilation, padding))
    else:  # dW sums N * prod(out) terms: the batch, then each side within what the others leave
        needs = [max(1, d * (k - 1) + 1 - lo - hi) for k, d, (lo, hi) in zip(kernel, dilation, padding)]
        outs = [spec.output_size(n, k, stride=s, padding=pads, dilation=d)
                for n, k, s, pads, d in zip(needs, kernel, stride, padding, dilation)]
        batch = choose.integer(1, max(1, min(batch_top, limit // math.prod(outs))))
        sizes: list[int] = []
        for i, (k, d, (lo, hi), s) in enumerate(zip(kernel, dilation, padding, stride)):
            others = max(batch, 1) * math.prod(outs[:i]) * math.prod(outs[i + 1:])
            top = max(needs[i], min(needs[i] + lim.extra, _largest_input(max(1, limit // others), k, d, lo, hi, s)))
            sizes.append(choose.integer(needs[i], top))
            outs[i] = spec.output_size(sizes[-1], k, stride=s, padding=(lo, hi), dilation=d)
        spatial = tuple(sizes)
    return Problem(
        "conv", dtype, (batch, c_in, *spatial), (c_out, c_in // groups, *kernel), choose.boolean(),
        {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups},
    )


def _choose_padding(choose: Choices, caps: Capabilities, kernel: tuple[int, ...],
                    limit: tuple[int | None, ...] | None, most: int = 2, *, pool: bool = False) -> Padding:
    """Pairs up to ``most`` per side, or, where ``limit`` (per dim) bounds them, up to ``min(most + 1, limit)``."""
    asymmetric = caps.asymmetric_pool_padding if pool else caps.asymmetric_padding
    pairs = []
    for bound in (limit if limit is not None else (None,) * len(kernel)):
        top = most if bound is None else min(most + 1, bound)
        lo = choose.integer(0, top)
        hi = choose.integer(0, top) if asymmetric else lo
        pairs.append((lo, hi))
    return tuple(pairs)


def _build_conv_transpose(choose: Choices, caps: Capabilities, dtype: str, **kwargs: Any) -> Problem:
    """The adjoint of a generated convolution: its y is this x, its x's size this output's.

    A transposed convolution with weight w (C_in, C_out / groups, *K) is the adjoint of the convolution
    with the same w from C_out to C_in channels. So the convolution's builder draws the shapes (within a
    reduction limit its forward, dx and dW sums are this one's dx, forward and dW sums), and
    ``output_padding`` is what gives back the convolution's input size: in [0, stride), and, when the
    dilation is larger, sometimes up to ``max(stride, dilation) - 1``. Without ``caps.output_padding`` it is 0.
    """
    conv = _build_conv(choose, caps, dtype, **kwargs)
    assert conv.w_shape is not None
    stride, padding, dilation = conv.params["stride"], conv.params["padding"], conv.params["dilation"]
    out = conv.output_shape()
    extra: list[int] = []
    pairs: list[tuple[int, int]] = []
    for target, n, k, s, pads, d in zip(conv.x_shape[2:], out[2:], conv.w_shape[2:], stride, padding, dilation):
        e = target - spec.conv_transpose_output_size(n, k, stride=s, padding=pads, dilation=d)
        if not caps.output_padding:
            # Without output_padding the smallest size must be >= 1 itself: no padding always gives that.
            pairs.append(pads if e < target else (0, 0))
            extra.append(0)
            continue
        pairs.append(pads)
        extra.append(choose.same_or_integer(e, max(0, e - target + 1), d - 1) if d > s else e)
    padding = tuple(pairs)
    params = {"stride": stride, "padding": padding, "output_padding": tuple(extra), "dilation": dilation,
              "groups": conv.params["groups"]}
    problem = Problem("conv_transpose", dtype, out, conv.w_shape, conv.bias, params)
    limit = reduction_limit(caps, dtype)
    if problem.bias and limit is not None and problem.operation.terms(out, conv.w_shape, params).db > limit:
        problem = replace(problem, bias=False)  # db sums N * prod(S_out): past the limit no bound could tell
    return problem


def _build_pool(choose: Choices, caps: Capabilities, dtype: str, op: OpName, *, rank: int | None = None,
                max_batch: int | None = None, ceil_mode: bool | None = None, large: bool | None = None) -> Problem:
    record = OPERATIONS[op]
    rank = rank if rank is not None else choose.choice(sorted(caps.spatial_ranks))
    lim = size_limits(choose, rank, large)
    kernel = _kernel(choose, rank, lim.kernel, reduction_limit(caps, dtype))
    stride = tuple(choose.integer(1, lim.stride) for _ in range(rank))
    dilated = record.dilation_field is not None and bool(getattr(caps, record.dilation_field))
    dilation = tuple(choose.integer(1, lim.dilation) if dilated else 1 for _ in range(rank))
    limit = tuple(spec.pool_padding_limit(caps.pool_padding, k, d) for k, d in zip(kernel, dilation))
    padding = _choose_padding(choose, caps, kernel, limit, most=lim.pad, pool=True)
    spatial = tuple(
        _sizes_for(choose, d * (k - 1) + 1 - lo - hi, lim.extra)
        for k, d, (lo, hi) in zip(kernel, dilation, padding)
    )
    if ceil_mode is None:
        ceil_mode = choose.boolean() if caps.ceil_mode else False
    params: dict[str, Any] = {
        "kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation, "ceil_mode": ceil_mode,
    }
    if "count_include_pad" in record.param_names:
        params["count_include_pad"] = choose.choice(sorted(caps.count_include_pad, reverse=True))
    channels = choose.integer(1, lim.channels)
    batch = choose.integer(1, lim.batch if max_batch is None else max_batch)
    return Problem(op, dtype, (batch, channels, *spatial), None, False, params)


def _build_adaptive(choose: Choices, caps: Capabilities, dtype: str, op: OpName, *, rank: int | None = None,
                    max_batch: int | None = None, large: bool | None = None) -> Problem:
    """Input sizes first, then output sizes from 1 (global pooling, where shrinking goes) to beyond the input.

    With a reduction limit, the input plane (global pooling's window) stays within it.
    """
    rank = rank if rank is not None else choose.choice(sorted(caps.spatial_ranks))
    lim = size_limits(choose, rank, large)
    limit = reduction_limit(caps, dtype)
    spatial: list[int] = []
    for _ in range(rank):
        top = lim.extra + 2 if limit is None else max(1, min(lim.extra + 2, limit // math.prod(spatial)))
        spatial.append(choose.integer(1, top))
    output = tuple(1 if caps.adaptive_output_size == "global" else choose.integer(1, n + 2) for n in spatial)
    channels = choose.integer(1, lim.channels)
    batch = choose.integer(1, lim.batch if max_batch is None else max_batch)
    return Problem(op, dtype, (batch, channels, *spatial), None, False, {"output_size": output})


def _build_linear(choose: Choices, caps: Capabilities, dtype: str, *, max_batch: int | None = None,
                  large: bool | None = None) -> Problem:
    limit = reduction_limit(caps, dtype) or 70
    top = min(70, limit) if (choose.boolean() if large is None else large) else min(8, limit)
    n_in = choose.integer(1, top)
    n_out = choose.same_or_integer(n_in, 1, top)
    batch = choose.integer(1, min(4 if max_batch is None else max_batch, limit))
    return Problem("linear", dtype, (batch, n_in), (n_out, n_in), choose.boolean(), {})


#: How each operation's problems are built (every operation of the registry has one: a test checks it).
#: Keyword arguments each accepts: ``rank``, ``max_batch``, ``large``; ``single_channel`` (conv and
#: conv_transpose); ``ceil_mode`` (pooling with a kernel).
BUILDERS: dict[OpName, Callable[..., Problem]] = {
    "conv": lambda choose, caps, dtype, op, **kw: _build_conv(choose, caps, dtype, **kw),
    "conv_transpose": lambda choose, caps, dtype, op, **kw: _build_conv_transpose(choose, caps, dtype, **kw),
    "max_pool": _build_pool,
    "max_pool_indices": _build_pool,
    "avg_pool": _build_pool,
    "adaptive_avg_pool": _build_adaptive,
    "adaptive_max_pool": _build_adaptive,
    "linear": lambda choose, caps, dtype, op, **kw: _build_linear(choose, caps, dtype, **kw),
}


def build_problem(choose: Choices, op: OpName, caps: Capabilities, dtype: str, **kwargs: Any) -> Problem:
    """A valid problem of ``op`` from ``choose``'s choices (the keyword arguments as for :func:`problems`)."""
    return BUILDERS[op](choose, caps, dtype, op, **kwargs)


@st.composite
def _drawn_problems(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str, kwargs: dict[str, Any]) -> Problem:
    return build_problem(_Drawn(draw), op, caps, dtype, **kwargs)


def problems(op: OpName, caps: Capabilities, dtype: str, *, few: int = 1, **kwargs: Any) -> st.SearchStrategy[Problem]:
    """Valid problems of any operation inside ``caps``, built valid (sizes drawn after the parameters they fit).

    Keyword arguments narrow them: ``rank``, ``max_batch``, and ``single_channel`` (conv, conv_transpose) or
    ``ceil_mode`` (pooling with a kernel); see :data:`BUILDERS`.
    For a backend that declares ``compiles_per_shape``, the problems come from a small fixed pool instead
    (:func:`conformance.shape_pool.pooled`), so that each shape compiles once while values vary; with
    ``few`` > 1 from a part of it (a ``few``-th, at least two problems), for a rule that derives shapes
    no other rule calls (an empty batch, invalid calls). ``few`` changes nothing for other backends.
    """
    if caps.compiles_per_shape:
        from conformance.shape_pool import pooled

        return st.sampled_from(pooled(op, caps, dtype, kwargs, few))
    return _drawn_problems(op, caps, dtype, kwargs)


#: A rule's own change to a drawn problem: (choices, problem, slot) -> problem. The slot is None when
#: Hypothesis draws the choices, and the problem's place in its pool when they are seeded (see
#: :func:`conformance.shape_pool.derived`), so that a variant can alternate what it builds.
Variant: TypeAlias = Callable[[Choices, Problem, int | None], Problem]


@st.composite
def _drawn_variants(draw: st.DrawFn, base: st.SearchStrategy[Problem], variant: Variant) -> Problem:
    return variant(_Drawn(draw), draw(base), None)


def variant_problems(op: OpName, caps: Capabilities, dtype: str, variant: Variant, *, name: str, few: int = 1,
                     **kwargs: Any) -> st.SearchStrategy[Problem]:
    """``variant`` of problems of ``op`` (as :func:`problems` draws them with ``few`` and ``kwargs``).

    For a backend that compiles per shape, the variant is made once per pooled problem with seeded
    choices (``name`` seeds them), so the rule calls no more shapes than the pool holds; otherwise
    Hypothesis draws its choices, and they shrink.
    """
    if caps.compiles_per_shape:
        from conformance.shape_pool import derived, pooled

        return st.sampled_from(derived(name, pooled(op, caps, dtype, kwargs, few), variant))
    return _drawn_variants(problems(op, caps, dtype, **kwargs), variant)


def conv_problems(caps: Capabilities, dtype: str, **kwargs: Any) -> st.SearchStrategy[Problem]:
    """Valid convolution problems inside ``caps``: rank, groups, kernel, stride, dilation, padding."""
    return problems("conv", caps, dtype, **kwargs)


def pool_problems(caps: Capabilities, dtype: str, op: OpName, **kwargs: Any) -> st.SearchStrategy[Problem]:
    """Valid max or average pooling problems inside ``caps``."""
    return problems(op, caps, dtype, **kwargs)


def linear_problems(caps: Capabilities, dtype: str, **kwargs: Any) -> st.SearchStrategy[Problem]:
    """Linear problems: square and non-square weights, bias or not; sometimes wide enough for blocked GEMMs."""
    return problems("linear", caps, dtype, **kwargs)


# --------------------------------------------------------------------------- values

def _value_scale(dtype: str, problem: Problem, kind: ValueKind) -> float:
    """A power of two keeping every exact output well inside float16's range (65504).

    The largest output is at most K * max|x| * max|w|; values are about 3 (``wide``: 3 * 2**3) at most.
    """
    if dtype != "float16":
        return 1.0
    terms = problem.operation.terms(problem.x_shape, problem.w_shape, problem.params).forward
    peak = 4.0 * (8.0 if kind == "wide" else 1.0)
    worst = terms * peak * peak
    return float(2.0 ** -max(0, math.ceil(math.log2(worst / 8192.0)) // 2 + 1)) if worst > 8192 else 1.0


def _distinct_in_8_bits(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Map integers (as floats) one-to-one onto numbers exact in 8 significant bits, keeping the sign.

    |v| < 128 stays; above, |v| = 128 q + r becomes (128 + r) * 2**(q - 1): octave q holds 128 values.
    """
    magnitude = np.abs(values)
    q, r = np.divmod(magnitude, 128)
    spread = np.where(q == 0, magnitude, (128 + r) * np.exp2(q - 1))
    return np.asarray(np.sign(values) * spread, dtype=np.float64)


def make_values(shape: tuple[int, ...], kind: ValueKind, dtype: str, rng: np.random.Generator,
                scale: float = 1.0) -> np.ndarray[Any, Any]:
    """An array of one value kind, exactly representable in ``dtype``.

    * ``positive``: small positive integers in [1, 3]: the most readable minimal cases;
    * ``integers``: small integers in [-3, 3]: exact arithmetic, many ties;
    * ``floats``: standard normal;
    * ``wide``: standard normal times 2**U(-e, e), magnitudes over several decades
      (e = 3 for float16, 8 otherwise);
    * ``distinct``: values one apart, all different within each (sample, channel) plane (no ties);
    * ``negative``: all values in [-4, -0.5] (where a 0-padded max pool shows).
    """
    size = math.prod(shape)
    if kind == "positive":
        values = rng.integers(1, 4, size=shape).astype(np.float64)
    elif kind == "integers":
        values = rng.integers(-3, 4, size=shape).astype(np.float64)
    elif kind == "floats":
        values = rng.standard_normal(shape)
    elif kind == "wide":
        e = 3 if dtype == "float16" else 8
        values = rng.standard_normal(shape) * np.exp2(rng.uniform(-e, e, size=shape))
    elif kind == "distinct":
        # Distinct within every (sample, channel) plane, where all of a window lies; planes stay
        # below 2048 elements, so the values are exact integers even in float16.
        plane = math.prod(shape[2:]) if len(shape) > 2 else size
        ranks = np.argsort(rng.random((size // max(plane, 1), plane)), axis=-1) if size else np.zeros(0)
        values = (ranks - plane / 2).astype(np.float64).reshape(shape)
        if dtype == "bfloat16":  # 8 significant bits: integers above 256 collide; spread them over octaves
            values = _distinct_in_8_bits((ranks - plane // 2).astype(np.float64).reshape(shape))
    else:
        values = -rng.uniform(0.5, 4.0, size=shape)
    return (values * scale).astype(dtype)


def make_inputs(problem: Problem, kind: ValueKind, seed: int, *, dy_kind: ValueKind | None = None) -> Inputs:
    """Deterministic input arrays for ``problem``: the same seed gives the same arrays."""
    rng = np.random.default_rng(seed)
    scale = _value_scale(problem.dtype, problem, kind)
    x = make_values(problem.x_shape, kind, problem.dtype, rng, scale)
    w = None if problem.w_shape is None else make_values(problem.w_shape, kind if kind != "distinct" else "floats",
                                                         problem.dtype, rng, scale)
    b_kind: ValueKind = kind if kind in ("positive", "integers") else "floats"
    b = make_values(problem.bias_shape(), b_kind, problem.dtype, rng) if (
        problem.bias and problem.operation.has_bias) else None
    dy_values: ValueKind = dy_kind or ("positive" if kind == "positive" else "integers" if kind in (
        "integers", "distinct", "negative") else "floats")
    dy = make_values(problem.output_shape(), dy_values, problem.dtype, rng)
    return Inputs(x, w, b, dy, kind)


def cases(op: OpName, caps: Capabilities, dtype: str, *, kinds: tuple[ValueKind, ...] = ORDINARY_KINDS,
          **problem_kwargs: Any) -> st.SearchStrategy[Case]:
    """Problems with values: the strategy most rules draw from."""
    return st.builds(
        lambda p, k, s: Case(p, make_inputs(p, k, s)),
        problems(op, caps, dtype, **problem_kwargs),
        st.sampled_from(kinds),
        st.integers(0, 2**32 - 1),
    )


def with_dtype(problem: Problem, dtype: str) -> Problem:
    """The same problem in another dtype."""
    return replace(problem, dtype=dtype)

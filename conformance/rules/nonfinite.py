"""Rules for non-finite values: NaN and infinities in x, and results beyond the dtype's range.

* ``nan-propagation`` (forward): the NaN/inf pattern of y is IEEE's. Zero weights are generated
  next to the injected values, so a backend that skips zero weights (NaN × 0 → 0) is caught.
* ``nonfinite-backward``: the backward called on the same inputs must not raise and must return
  arrays of the right shapes and dtype; what the spec constrains at such inputs is checked too.
* ``overflow``: an exact result beyond the dtype's largest finite value must be ±inf.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference
from conformance.compare import Bound, Violation, backward_bounds, compare, expected_backward, expected_forward, forward_bound
from conformance.context import Context, derive
from conformance.diagnose import missing_nan_summary
from conformance.rules.base import FLOAT_RESULT, WITH_BACKWARD, ops_where, rule, weight_out_axis
from conformance.strategies import Case, cases, make_values
from spec import Capabilities, OpName
from spec.accuracy import dtype_info

F64 = np.float64


def _zero_weights(w: np.ndarray[Any, Any], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """All weights zero, about half of them, or none: 0 × NaN must still be NaN (IEEE)."""
    mode = int(rng.integers(0, 3))
    if mode == 0:
        return w
    if mode == 1:
        return np.zeros_like(w)
    return np.where(rng.random(w.shape) < 0.5, np.zeros_like(w), w)


def inject_nonfinite(case: Case, seed: int) -> Case:
    """NaN (always one) and ±inf in x; for conv and linear, zero weights next to them."""
    rng = np.random.default_rng(seed)
    x = case.inputs.x.copy()
    if x.size:
        flat = x.reshape(-1)
        # The first value is always NaN: dropping NaN (fmax, nanmax, `a > b` comparisons) is the common bug.
        for k in range(int(rng.integers(1, 4))):
            flat[int(rng.integers(0, x.size))] = np.nan if k == 0 else rng.choice([np.nan, np.inf, -np.inf])
    if case.inputs.w is None:
        return derive(case, x=x)
    return derive(case, x=x, w=_zero_weights(case.inputs.w, rng))


def nonfinite_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return st.builds(inject_nonfinite, cases(op, caps, dtype), st.integers(0, 2**32 - 1))


def nonfinite_applies(op: OpName, caps: Capabilities) -> str | None:
    return None if caps.nonfinite else "backend declares no non-finite inputs"


def _fast(ctx: Context, case: Case) -> bool:
    """A fast algorithm (Winograd, FFT) is declared for the operations the accuracy class covers."""
    return ctx.backend.capabilities.accuracy == "fast" and "accuracy" in case.problem.operation.capabilities


def _check_pattern(ctx: Context, rule: str, name: str, got: np.ndarray[Any, Any], want: np.ndarray[Any, Any],
                   bound: Bound, case: Case) -> None:
    """IEEE propagation: a NaN the exact result has is never lost; then values within the bound."""
    got64 = np.asarray(got, dtype=F64)
    fast = _fast(ctx, case)
    lost = np.isnan(want) & ~np.isnan(got64)
    if fast:  # a fast algorithm may smear a non-finite value over its slice; it may not lose one
        lost = ~np.isfinite(want) & np.isfinite(got64)
    if lost.any():
        where = tuple(int(k) for k in np.argwhere(lost)[0])
        if name == "y" and np.isnan(want[where]):  # name the cause: dropped, empty window or misplaced windows
            summary = missing_nan_summary(case, got64, want, where)
        else:
            summary = (f"a NaN or infinity in x was dropped: {name}{list(where)} = {float(got64[where])!r}, "
                       f"but should be {float(want[where])!r}")
        raise Violation(rule, summary, case, [f"{int(lost.sum())} of {got64.size} elements affected"])
    if not fast:
        compare(rule, name, got64, want, bound, case, [])


def _direct(ctx: Context) -> Capabilities:
    """The direct class with the backend's declared accumulation (a fast algorithm's normwise bound is not used here)."""
    return Capabilities(accumulation=ctx.backend.capabilities.accumulation)


def check_nonfinite(ctx: Context, case: Case) -> None:
    """NaN and infinities in x: the forward output's NaN/inf pattern matches the reference's (NaN never dropped)."""
    y = ctx.forward("nan-propagation", case)
    bound = Bound(np.zeros(())) if case.problem.operation.selects else forward_bound(case, _direct(ctx))
    _check_pattern(ctx, "nan-propagation", "y", y, expected_forward(case), bound, case)


def _read_by_nan_windows(case: Case) -> np.ndarray[Any, Any]:
    """The elements of x that some max-pool window holding a NaN reads (MAXPOOL-C12 leaves them free)."""
    p = case.problem
    x64 = np.asarray(case.inputs.x, dtype=F64)
    nan_windows = np.isnan(getattr(reference, p.operation.forward)(x64, **p.params)).astype(F64)
    # Average pooling's backward over the same windows spreads a positive share of each marked window over
    # the real elements it reads.
    zeros = np.zeros_like(x64)
    if p.operation.windowing == "adaptive":
        spread = reference.adaptive_avg_pool_backward(zeros, nan_windows, **p.params)
    else:
        spread = reference.avg_pool_backward(zeros, nan_windows, **p.params, count_include_pad=True)
    return np.asarray(spread > 0)


def check_nonfinite_backward(ctx: Context, case: Case) -> None:
    """Backward at NaN/inf inputs: no exception, the right shapes; constrained values as the spec says.

    With weights: dx and db do not read x and keep their bounds; dw propagates like the forward.
    Average pooling: dx does not read x. Max pooling (operations that select): dx is free only at elements
    read by a window holding a NaN.
    """
    p = case.problem
    grads = ctx.backward("nonfinite-backward", case)
    want = expected_backward(case)
    bounds = backward_bounds(case, ctx.backend.capabilities)
    for name, got in grads.items():
        expected = want[name]
        if p.operation.selects:
            free = _read_by_nan_windows(case)
            got = np.where(free, expected, np.asarray(got, dtype=F64))
        if name == "dw":
            _check_pattern(ctx, "nonfinite-backward", name, got, expected, bounds[name], case)
        else:
            compare("nonfinite-backward", name, got, expected, bounds[name], case, [])


# --------------------------------------------------------------------------- overflow

def overflow_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    """Inputs whose every product exceeds the dtype's range: all same-signed per output channel."""

    def enlarge(case: Case, seed: int) -> Case:
        rng = np.random.default_rng(seed)
        info = dtype_info(dtype)
        low = float(2.0 ** ((info.maxexp + 1) // 2))  # low * low > the largest finite value
        x = (rng.integers(2, 4, size=case.inputs.x.shape) * (low / 2)).astype(dtype)
        assert case.inputs.w is not None
        axis = weight_out_axis(case.problem.operation)  # one sign per output channel (within a group)
        shape = case.inputs.w.shape
        sign = np.where(rng.random(shape[axis]) < 0.5, -1.0, 1.0)
        magnitude = rng.integers(2, 4, size=shape) * (low / 2)
        w = (magnitude * sign.reshape(tuple(-1 if k == axis else 1 for k in range(len(shape))))).astype(dtype)
        b = None if case.inputs.b is None else make_values(case.inputs.b.shape, "integers", dtype, rng)
        return derive(case, x=x, w=w, b=b)

    return st.builds(enlarge, cases(op, caps, dtype, kinds=("integers",)), st.integers(0, 2**32 - 1))


def expected_rounded(case: Case) -> np.ndarray[Any, Any]:
    """The exact forward result, with ±inf where rounding it to the dtype overflows."""
    exact = expected_forward(case)
    with np.errstate(over="ignore"):
        rounded = exact.astype(case.problem.dtype).astype(F64)
    return np.where(np.isinf(rounded), rounded, exact)


def check_overflow(ctx: Context, case: Case) -> None:
    """An exact result beyond the dtype's largest finite value must be ±inf with its sign (IEEE overflow)."""
    y = np.asarray(ctx.forward("overflow", case), dtype=F64)
    want = expected_rounded(case)
    if _fast(ctx, case):  # a fast algorithm may turn inf into NaN over a slice; it may not return a finite value
        lost = ~np.isfinite(want) & np.isfinite(y)
        if lost.any():
            where = tuple(int(k) for k in np.argwhere(lost)[0])
            raise Violation("overflow", f"an overflowing result is finite: y{list(where)} = {y[where]!r}, but should "
                            f"be {want[where]!r}", case, [f"{int(lost.sum())} of {y.size} outputs affected"])
        return
    compare("overflow", "y", y, want, forward_bound(case, _direct(ctx)), case, [])


NAN_PROPAGATION = rule("nan-propagation", "NaN and infinities propagate to every output whose window holds them",
                       FLOAT_RESULT, ("forward",), nonfinite_cases, check_nonfinite, weight=0.5,
                       applies=nonfinite_applies)
NONFINITE_BACKWARD = rule("nonfinite-backward",
                          "backward at NaN/inf inputs returns arrays of the right shape and does not raise",
                          WITH_BACKWARD, ("backward",), nonfinite_cases, check_nonfinite_backward, weight=0.25,
                          applies=nonfinite_applies)
OVERFLOW = rule("overflow", "a result beyond the dtype's range is +-inf with the exact result's sign",
                ops_where(lambda r: r.has_weights), ("forward",), overflow_cases, check_overflow, weight=0.2)

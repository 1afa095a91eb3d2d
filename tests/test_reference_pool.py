"""reference.pool (max and average) against a nested-loop implementation, finite differences and the spec's edge cases."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import reference
import reference.windows as win
import spec
from reference import pool as pool_module
from spec import PoolParams

FAST = settings(max_examples=60, deadline=None, database=None)
F64 = NDArray[np.float64]


# ---- a slow, obviously correct pooling -------------------------------------------------------------------


def window_starts(n: int, k: int, s: int, padding: tuple[int, int], d: int, ceil_mode: bool) -> list[int]:
    """Window starts in padded coordinates: those that fit, plus PyTorch's ceil-mode rule (MAXPOOL-C5)."""
    lo, hi = padding
    length, extent = n + lo + hi, d * (k - 1) + 1
    limit = length - extent + (s if ceil_mode else 1)
    starts = list(range(0, max(limit, 0), s))
    if starts and starts[-1] + extent > length and starts[-1] >= n + lo:
        starts.pop()  # the extra ceil window may not start in the after-padding
    return starts


class Tap(NamedTuple):
    at: tuple[int, ...]      # input index read (may lie outside the input)
    real: bool               # inside the input
    in_padded: bool          # inside the padded input (not the ceil-mode overhang)


def windows(spatial: tuple[int, ...], p: PoolParams) -> Iterator[tuple[tuple[int, ...], list[Tap]]]:
    """Every output position with its taps, the kernel offsets in row-major order."""
    starts = [window_starts(n, k, s, pad, d, p.ceil_mode)
              for n, k, s, pad, d in zip(spatial, p.kernel_size, p.stride, p.padding, p.dilation)]
    for position in np.ndindex(*(len(st_) for st_ in starts)):
        taps = []
        for offset in np.ndindex(*p.kernel_size):
            at = tuple(st_[o] + j * d - lo
                          for st_, o, j, d, (lo, _) in zip(starts, position, offset, p.dilation, p.padding))
            real = all(0 <= i < n for i, n in zip(at, spatial))
            in_padded = all(-lo <= i < n + hi for i, n, (lo, hi) in zip(at, spatial, p.padding))
            taps.append(Tap(at, real, in_padded))
        yield tuple(position), taps


def loop_out_shape(x: F64, p: PoolParams) -> tuple[int, ...]:
    return (*x.shape[:2], *(len(window_starts(n, k, s, pad, d, p.ceil_mode))
                            for n, k, s, pad, d in zip(x.shape[2:], p.kernel_size, p.stride, p.padding, p.dilation)))


def loop_max_pool(x: F64, p: PoolParams) -> F64:
    """The largest real element of each window; NaN if the window holds one; -inf if it holds none."""
    y = np.full(loop_out_shape(x, p), -np.inf)
    for position, taps in windows(x.shape[2:], p):
        for n, c in np.ndindex(*x.shape[:2]):
            values = [float(x[(n, c, *t.at)]) for t in taps if t.real]
            if any(math.isnan(v) for v in values):
                y[(n, c, *position)] = math.nan
            elif values:
                y[(n, c, *position)] = max(values)
    return y


def loop_max_pool_backward(x: F64, dy: F64, p: PoolParams) -> F64:
    dx = np.zeros_like(x)
    for position, taps in windows(x.shape[2:], p):
        for n, c in np.ndindex(*x.shape[:2]):
            best: tuple[int, ...] | None = None
            for t in taps:
                if t.real and (best is None or x[(n, c, *t.at)] > x[(n, c, *best)]):
                    best = t.at
            if best is not None:
                dx[(n, c, *best)] += dy[(n, c, *position)]
    return dx


def divisor(taps: list[Tap], count_include_pad: bool) -> int:
    return sum(1 for t in taps if (t.in_padded if count_include_pad else t.real))


def loop_avg_pool(x: F64, p: PoolParams) -> F64:
    y = np.zeros(loop_out_shape(x, p))
    for position, taps in windows(x.shape[2:], p):
        count = divisor(taps, p.count_include_pad)
        for n, c in np.ndindex(*x.shape[:2]):
            total = sum(float(x[(n, c, *t.at)]) for t in taps if t.real)
            y[(n, c, *position)] = total / count if count else math.nan   # no real element: 0 / 0
    return y


def loop_avg_pool_backward(x: F64, dy: F64, p: PoolParams) -> F64:
    dx = np.zeros_like(x)
    for position, taps in windows(x.shape[2:], p):
        count = divisor(taps, p.count_include_pad)
        for n, c in np.ndindex(*x.shape[:2]):
            for t in taps:
                if t.real:
                    dx[(n, c, *t.at)] += dy[(n, c, *position)] / count
    return dx


# ---- random configurations -------------------------------------------------------------------------------


class PoolCase(NamedTuple):
    x: F64
    params: PoolParams

    def snippet(self, op: str = "max_pool_forward") -> str:
        kwargs = self.params.max_pool_kwargs() if op.startswith("max") else self.params._asdict()
        return f"reference.{op}(x{self.x.shape}, **{kwargs})"


@st.composite
def pool_cases(draw: st.DrawFn, *, values: str = "ties", min_batch: int = 0, max_pad: int = 2) -> PoolCase:
    """Tiny poolings in 1, 2 or 3 dims, padding up to ``max_pad`` (beyond half the kernel too).

    values: "ties" small integers (many tied maxima), "distinct" a permutation (no ties, gaps of 1),
    "negative" all < 0, "normal" standard normal.
    """
    ndim = draw(st.integers(1, 3))
    max_k = 3 if ndim < 3 else 2
    kernel, stride, dilation, padding, spatial = [], [], [], [], []
    for _ in range(ndim):
        k, s, d = draw(st.integers(1, max_k)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
        lo, hi = draw(st.integers(0, max_pad)), draw(st.integers(0, max_pad))
        smallest = max(1, d * (k - 1) + 1 - lo - hi)
        kernel.append(k)
        stride.append(s)
        dilation.append(d)
        padding.append((lo, hi))
        spatial.append(draw(st.integers(smallest, smallest + (3 if ndim < 3 else 2))))
    shape = (draw(st.integers(min_batch, 2)), draw(st.integers(1, 2)), *spatial)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    size = math.prod(shape)
    x: F64
    if values == "ties":
        x = rng.integers(-3, 4, size=shape).astype(np.float64)
    elif values == "distinct":
        x = (rng.permutation(size) - size // 2).astype(np.float64).reshape(shape)
    elif values == "negative":
        x = -rng.integers(1, 10, size=shape).astype(np.float64)
    else:
        x = rng.standard_normal(shape)
    params = spec.pool_params(tuple(spatial), tuple(kernel), stride=tuple(stride), padding=padding,
                              dilation=tuple(dilation), ceil_mode=draw(st.booleans()),
                              count_include_pad=draw(st.booleans()))
    return PoolCase(x, params)


def assert_same(actual: NDArray[Any], expected: NDArray[Any], what: str, snippet: str) -> None:
    """Equal, NaN where expected is NaN, with the first bad index named."""
    __tracebackhide__ = True
    assert actual.shape == expected.shape, f"{what}.shape={actual.shape}, but should be {expected.shape} [{snippet}]"
    if not np.array_equal(actual, expected, equal_nan=True):
        bad = tuple(int(i) for i in np.argwhere(~((actual == expected) | (np.isnan(actual) & np.isnan(expected))))[0])
        raise AssertionError(f"{what}[{bad}]={actual[bad]}, but should be {expected[bad]} [{snippet}]")


def dy_for(shape: tuple[int, ...], seed: int = 0) -> F64:
    return np.random.default_rng(seed).integers(1, 5, size=shape).astype(np.float64)


# ---- max pooling -----------------------------------------------------------------------------------------


@FAST
@given(pool_cases())
def test_max_pool_forward_matches_loop(case: PoolCase) -> None:
    y = reference.max_pool_forward(case.x, **case.params.max_pool_kwargs())
    assert_same(y, loop_max_pool(case.x, case.params), "y", case.snippet())


@FAST
@given(pool_cases())
def test_max_pool_backward_matches_loop(case: PoolCase) -> None:
    """Small integer inputs: many ties, all routed to the first maximum (MAXPOOL-C10), empty windows nowhere."""
    dy = dy_for(loop_out_shape(case.x, case.params))
    dx = reference.max_pool_backward(case.x, dy, **case.params.max_pool_kwargs())
    assert_same(dx, loop_max_pool_backward(case.x, dy, case.params), "dx", case.snippet("max_pool_backward"))


@FAST
@given(pool_cases(values="negative"))
def test_max_pool_pads_with_minus_inf(case: PoolCase) -> None:
    """All inputs negative: no output may be 0 (a 0-filled pad); -inf exactly where the window is empty."""
    y = reference.max_pool_forward(case.x, **case.params.max_pool_kwargs())
    empty = np.zeros(y.shape[2:], dtype=bool)
    for position, taps in windows(case.x.shape[2:], case.params):
        empty[position] = not any(t.real for t in taps)
    assert np.all(y < 0), f"y has a value >= 0 [{case.snippet()}]"
    assert np.array_equal(np.isneginf(y), np.broadcast_to(empty, y.shape)), case.snippet()


@FAST
@given(pool_cases(min_batch=1), st.data())
def test_nan_propagates_to_every_window_that_reads_it(case: PoolCase, data: st.DataObject) -> None:
    x = case.x.copy()
    where = data.draw(st.tuples(*(st.integers(0, n - 1) for n in x.shape)))
    x[where] = np.nan
    expected = np.zeros(loop_out_shape(x, case.params)[2:], dtype=bool)
    for position, taps in windows(x.shape[2:], case.params):
        expected[position] = any(t.real and t.at == where[2:] for t in taps)
    y = reference.max_pool_forward(x, **case.params.max_pool_kwargs())
    assert np.array_equal(np.isnan(y[where[:2]]), expected), case.snippet()
    others = np.ones(y.shape[:2], dtype=bool)
    others[where[:2]] = False
    assert not np.any(np.isnan(y[others]))
    avg = reference.avg_pool_forward(x, **case.params._asdict())
    assert np.all(np.isnan(avg[where[:2]])[expected]), "a NaN must reach the average of every window reading it"


def test_nan_examples() -> None:
    x = np.array([[[1.0, np.nan, 3.0, 4.0]]])
    p = spec.pool_params((4,), 2)
    y = reference.max_pool_forward(x, **p.max_pool_kwargs())
    assert np.isnan(y[0, 0, 0]) and y[0, 0, 1] == 4.0
    all_nan = np.full((1, 1, 2), np.nan)
    assert np.isnan(reference.max_pool_forward(all_nan, **spec.pool_params((2,), 2).max_pool_kwargs())).all()


def test_ties_go_to_the_first_maximum_in_row_major_order() -> None:
    x = np.array([[1.0, 4.0], [4.0, 2.0]]).reshape(1, 1, 2, 2)
    dx = reference.max_pool_backward(x, np.ones((1, 1, 1, 1)), **spec.pool_params((2, 2), 2).max_pool_kwargs())
    assert dx[0, 0].tolist() == [[0.0, 1.0], [0.0, 0.0]]      # (0, 1) before (1, 0)
    x = np.full((1, 1, 3, 3), 7.0)
    dx = reference.max_pool_backward(x, np.ones((1, 1, 2, 2)), **spec.pool_params((3, 3), 2, stride=1).max_pool_kwargs())
    assert dx[0, 0].tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    x = np.array([[[0.0, -0.0]]])                              # signed zeros tie as well
    dx = reference.max_pool_backward(x, np.ones((1, 1, 1)), **spec.pool_params((2,), 2).max_pool_kwargs())
    assert dx.tolist() == [[[1.0, 0.0]]]


def test_real_minus_inf_gets_the_gradient_padding_never_does() -> None:
    x = np.array([[[-np.inf, -np.inf]]])
    p = spec.pool_params((2,), 2, stride=1, padding=1)
    assert reference.max_pool_forward(x, **p.max_pool_kwargs()).tolist() == [[[-np.inf] * 3]]
    dx = reference.max_pool_backward(x, np.array([[[1.0, 10.0, 100.0]]]), **p.max_pool_kwargs())
    assert dx.tolist() == [[[11.0, 100.0]]]


@pytest.mark.parametrize(
    ("x", "kwargs"),
    [
        ([7.0], {"kernel_size": 2, "stride": 1, "padding": 1, "dilation": 2}),   # dilation skips the only element
        ([1.0, 2.0], {"kernel_size": 1, "stride": 2, "padding": 1}),              # a window entirely in padding
    ],
)
def test_empty_windows(x: list[float], kwargs: dict[str, Any]) -> None:
    xa = np.array(x).reshape(1, 1, -1)
    p = spec.pool_params(xa.shape[2:], **kwargs)
    y = reference.max_pool_forward(xa, **p.max_pool_kwargs())
    empty = np.isneginf(y)
    assert empty[0, 0, 0], y
    dy = np.ones_like(y)
    dy_only_empty = np.where(empty, 1.0, 0.0)
    assert not np.any(reference.max_pool_backward(xa, dy_only_empty, **p.max_pool_kwargs()))
    with_pad = reference.avg_pool_forward(xa, **p._replace(count_include_pad=True)._asdict())
    without = reference.avg_pool_forward(xa, **p._replace(count_include_pad=False)._asdict())
    assert np.all(with_pad[empty] == 0.0) and np.all(np.isnan(without[empty]))
    for include in (True, False):
        dx = reference.avg_pool_backward(xa, dy_only_empty, **p._replace(count_include_pad=include)._asdict())
        assert not np.any(dx) and not np.any(np.isnan(dx))
    assert np.all(np.isfinite(reference.avg_pool_backward(xa, dy, **p._replace(count_include_pad=False)._asdict())))


def numerical_gradient(f: Any, a: F64, dy: F64, eps: float) -> F64:
    """d<dy, f(a)>/da by central differences; outputs that are not finite (empty windows) are constant and skipped."""
    keep = np.isfinite(f(a))
    weights = np.where(keep, dy, 0.0)
    grad = np.zeros_like(a)
    for index in np.ndindex(*a.shape):
        plus, minus = a.copy(), a.copy()
        plus[index] += eps
        minus[index] -= eps
        with np.errstate(invalid="ignore"):     # -inf - -inf at empty windows, masked out
            change = np.where(keep, f(plus) - f(minus), 0.0)
        grad[index] = float(np.sum(weights * change)) / (2 * eps)
    return grad


@FAST
@given(pool_cases(values="distinct", min_batch=1), st.integers(0, 2**32 - 1))
def test_max_pool_gradient_matches_finite_differences(case: PoolCase, seed: int) -> None:
    """Distinct integers 1 apart and eps = 0.25: no maximum changes, so differences are exact."""
    kwargs = case.params.max_pool_kwargs()
    dy = np.random.default_rng(seed).standard_normal(loop_out_shape(case.x, case.params))
    dx = reference.max_pool_backward(case.x, dy, **kwargs)
    numeric = numerical_gradient(lambda a: reference.max_pool_forward(a, **kwargs), case.x, dy, 0.25)
    np.testing.assert_allclose(dx, numeric, rtol=1e-12, atol=1e-12, err_msg=case.snippet("max_pool_backward"))


# ---- average pooling -------------------------------------------------------------------------------------


@FAST
@given(pool_cases())
def test_avg_pool_forward_matches_loop(case: PoolCase) -> None:
    y = reference.avg_pool_forward(case.x, **case.params._asdict())
    assert_same(y, loop_avg_pool(case.x, case.params), "y", case.snippet("avg_pool_forward"))


@FAST
@given(pool_cases())
def test_avg_pool_backward_matches_loop(case: PoolCase) -> None:
    dy = dy_for(loop_out_shape(case.x, case.params))
    dx = reference.avg_pool_backward(case.x, dy, **case.params._asdict())
    expected = loop_avg_pool_backward(case.x, dy, case.params)
    np.testing.assert_allclose(dx, expected, rtol=1e-14, atol=0, err_msg=case.snippet("avg_pool_backward"))


@FAST
@given(pool_cases(values="normal", min_batch=1), st.integers(0, 2**32 - 1))
def test_avg_pool_gradient_matches_finite_differences(case: PoolCase, seed: int) -> None:
    kwargs = case.params._asdict()
    dy = np.random.default_rng(seed).standard_normal(loop_out_shape(case.x, case.params))
    dx = reference.avg_pool_backward(case.x, dy, **kwargs)
    numeric = numerical_gradient(lambda a: reference.avg_pool_forward(a, **kwargs), case.x, dy, 1e-3)
    np.testing.assert_allclose(dx, numeric, rtol=1e-7, atol=1e-9, err_msg=case.snippet("avg_pool_backward"))


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_ceil_mode_divisor_never_counts_the_overhang(count_include_pad: bool) -> None:
    x = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    p = spec.pool_params((5,), 2, ceil_mode=True, count_include_pad=count_include_pad)
    assert reference.avg_pool_forward(x, **p._asdict()).tolist() == [[[1.5, 3.5, 5.0]]]


def test_divisor_with_padding_and_overhang() -> None:
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    p = spec.pool_params((4,), 3, stride=2, padding=1, ceil_mode=True)
    assert reference.avg_pool_forward(x, **p._asdict()).tolist() == [[[1.0, 3.0, 2.0]]]
    p = p._replace(count_include_pad=False)
    assert reference.avg_pool_forward(x, **p._asdict()).tolist() == [[[1.5, 3.0, 4.0]]]
    dy = np.array([[[3.0, 6.0, 2.0]]])
    assert reference.avg_pool_backward(x, dy, **p._asdict()).tolist() == [[[1.5, 3.5, 2.0, 4.0]]]


def test_avg_pool_dilation() -> None:
    x = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    p = spec.pool_params((5,), 2, stride=1, dilation=3)
    assert reference.avg_pool_forward(x, **p._asdict()).tolist() == [[[2.5, 3.5]]]


# ---- shared: empty batch, dtypes, fresh results ----------------------------------------------------------


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_empty_batch(ndim: int) -> None:
    x = np.zeros((0, 2, *(5,) * ndim))
    p = spec.pool_params((5,) * ndim, 2, ceil_mode=True)
    y = reference.max_pool_forward(x, **p.max_pool_kwargs())
    assert y.shape == (0, 2, *(3,) * ndim)
    assert reference.max_pool_backward(x, y, **p.max_pool_kwargs()).shape == x.shape
    assert reference.avg_pool_forward(x, **p._asdict()).shape == y.shape
    assert reference.avg_pool_backward(x, y, **p._asdict()).shape == x.shape


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@settings(max_examples=30, deadline=None, database=None)
@given(case=pool_cases(values="normal", min_batch=1), seed=st.integers(0, 2**32 - 1))
def test_low_precision(dtype: str, case: PoolCase, seed: int) -> None:
    """Max pooling is exact in every dtype; average pooling and both gradients within the elementwise bound."""
    x = case.x.astype(dtype)
    x64 = x.astype(np.float64)
    max_kw, avg_kw = case.params.max_pool_kwargs(), case.params._asdict()
    terms = math.prod(case.params.kernel_size)

    y = reference.max_pool_forward(x, **max_kw)
    assert y.dtype == np.dtype(dtype)
    assert_same(y.astype(np.float64), reference.max_pool_forward(x64, **max_kw), "y", case.snippet())

    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(dtype)
    dy64 = dy.astype(np.float64)
    for name, got, exact, magnitude in [
        ("max dx", reference.max_pool_backward(x, dy, **max_kw), reference.max_pool_backward(x64, dy64, **max_kw),
         reference.max_pool_backward(x64, np.abs(dy64), **max_kw)),
        ("avg y", reference.avg_pool_forward(x, **avg_kw), reference.avg_pool_forward(x64, **avg_kw),
         reference.avg_pool_forward(np.abs(x64), **avg_kw)),
        ("avg dx", reference.avg_pool_backward(x, dy, **avg_kw), reference.avg_pool_backward(x64, dy64, **avg_kw),
         reference.avg_pool_backward(x64, np.abs(dy64), **avg_kw)),
    ]:
        assert got.dtype == np.dtype(dtype), name
        finite = np.isfinite(exact)
        assert np.array_equal(np.isnan(got), np.isnan(exact)), name
        error = np.abs(got.astype(np.float64)[finite] - exact[finite])
        assert np.all(error <= spec.elementwise_bound(magnitude[finite], terms, dtype)), f"{name} [{case.snippet()}]"


def test_results_are_fresh_and_inputs_untouched() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 4))
    p = spec.pool_params((4, 4), 2, stride=1, padding=1)
    x_copy = x.copy()
    cases: list[tuple[Any, Any, dict[str, Any]]] = [
        (reference.max_pool_forward, reference.max_pool_backward, p.max_pool_kwargs()),
        (reference.avg_pool_forward, reference.avg_pool_backward, p._asdict()),
    ]
    for forward, backward, kwargs in cases:
        y = forward(x, **kwargs)
        dy = rng.standard_normal(y.shape)
        dy_copy = dy.copy()
        dx = backward(x, dy, **kwargs)
        np.testing.assert_array_equal(x, x_copy)
        np.testing.assert_array_equal(dy, dy_copy)
        for result in (y, dx):
            assert not np.shares_memory(result, x) and not np.shares_memory(result, dy)
    y = reference.max_pool_forward(x, kernel_size=(1, 1), stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                                   ceil_mode=False)
    np.testing.assert_array_equal(y, x)      # the identity pooling still returns a new array
    assert not np.shares_memory(y, x)


# ---- the fast paths against the general ones -------------------------------------------------------------



def _grid_of(case: PoolCase) -> win.WindowGrid:
    p = case.params
    out_shape = loop_out_shape(case.x, p)
    return win.window_grid(case.x.shape[2:], kernel_size=p.kernel_size, stride=p.stride, padding=p.padding,
                               dilation=p.dilation, out_spatial=out_shape[2:])


@settings(max_examples=40, deadline=None, database=None)
@given(pool_cases(min_batch=1), st.sampled_from(["ties", "nan", "-inf"]))
def test_cache_blocks_change_no_result(case: PoolCase, special: str) -> None:
    """One plane per block, or everything in one block: bitwise the same results."""
    x = case.x.copy()
    if special != "ties":
        x.reshape(-1)[:: 3] = np.nan if special == "nan" else -np.inf
    dy = dy_for(loop_out_shape(x, case.params))
    max_kw, avg_kw = case.params.max_pool_kwargs(), case.params._asdict()
    calls = [
        lambda: reference.max_pool_forward(x, **max_kw), lambda: reference.max_pool_backward(x, dy, **max_kw),
        lambda: reference.avg_pool_forward(x, **avg_kw), lambda: reference.avg_pool_backward(x, dy, **avg_kw),
    ]
    saved = pool_module.CACHE_BLOCK_BYTES
    try:
        pool_module.CACHE_BLOCK_BYTES = 1
        small = [call() for call in calls]
        pool_module.CACHE_BLOCK_BYTES = 1 << 40
        large = [call() for call in calls]
    finally:
        pool_module.CACHE_BLOCK_BYTES = saved
    for a, b in zip(small, large):
        assert_same(a, b, "result", case.snippet())
    assert_same(small[1], loop_max_pool_backward(x, dy, case.params), "dx", case.snippet("max_pool_backward"))


@settings(max_examples=60, deadline=None, database=None)
@given(pool_cases(min_batch=1), st.sampled_from(["ties", "nan", "-inf", "+inf dy", "normal dy"]))
def test_max_backward_by_index_matches_the_general_path(case: PoolCase, special: str) -> None:
    """The index-and-scatter path against the strided element-rule path: bitwise the same dx (the
    same summation order, also for non-integer dy), and no answer where x needs the general path."""
    x = case.x.copy()
    dy = dy_for(loop_out_shape(x, case.params))
    if special == "nan":
        x.reshape(-1)[1::4] = np.nan
    elif special == "-inf":
        x.reshape(-1)[::2] = -np.inf
    elif special == "+inf dy":
        dy.reshape(-1)[::3] = np.inf
    elif special == "normal dy":
        dy = np.random.default_rng(1).standard_normal(dy.shape)
    grid = _grid_of(case)
    general = np.empty_like(x)
    pool_module._route_max_gradient(general, x, dy, grid)
    fast = np.empty_like(x)
    pool_module._max_gradient_by_index(fast, x, dy, grid)
    assert_same(fast, general, "dx", case.snippet("max_pool_backward"))
    y = reference.max_pool_forward(x, **case.params.max_pool_kwargs())
    index = pool_module.first_max_offsets(x, grid, np.dtype(np.uint8))
    if y.size and not y.min() > -np.inf:  # a NaN or -inf maximum: the general path's job
        assert index is None, case.snippet("max_pool_backward")
        return
    assert index is not None and index.shape == y.shape, case.snippet("max_pool_backward")
    if special != "normal dy":
        assert_same(fast, loop_max_pool_backward(x, dy, case.params), "dx", case.snippet("max_pool_backward"))


@settings(max_examples=40, deadline=None, database=None)
@given(pool_cases())
def test_offset_reads_are_the_window_taps(case: PoolCase) -> None:
    """Per offset, both layouts (strided slices of x, or contiguous runs of the phase-split copy) give
    the windows' taps in their output region, and every tap outside it is padding."""
    grid = _grid_of(case)
    view = win.window_view(win.pad(case.x, grid, -100.0), grid)   # (N, C, *out, *K)
    reads = win.offset_reads(case.x, grid, -100.0)
    assert len(reads.reads) == len(grid.offsets)
    for offset, (region, window) in zip(grid.offsets, reads.reads):
        buffer = np.full(reads.buffer_shape, -100.0)
        buffer[region] = window
        np.testing.assert_array_equal(reads.outputs(buffer), view[(Ellipsis, *offset)])


@pytest.mark.parametrize(("shape", "kernel"), [((2, 3, 7, 7), 7), ((1, 2, 5), 5), ((2, 2, 2, 3, 4), (2, 3, 4)),
                                               ((0, 3, 4, 4), 4)])
def test_global_average_pool_matches_the_per_offset_sums(shape: tuple[int, ...], kernel: Any) -> None:
    x = np.random.default_rng(3).standard_normal(shape)
    p = spec.pool_params(shape[2:], kernel)
    grid = win.window_grid(shape[2:], kernel_size=p.kernel_size, stride=p.stride, padding=p.padding,
                               dilation=p.dilation, out_spatial=(1,) * len(shape[2:]))
    assert win.covers_input(grid) and win.tiles_input(grid)
    total = np.empty((*shape[:2], *grid.out_spatial))
    pool_module._window_sum(total, x, grid)
    y = reference.avg_pool_forward(x, **p._asdict())
    np.testing.assert_allclose(y, total / math.prod(shape[2:]), rtol=1e-14, atol=0)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    spread = np.empty_like(x)
    pool_module._spread(spread, dy / math.prod(shape[2:]), grid)
    np.testing.assert_array_equal(reference.avg_pool_backward(x, dy, **p._asdict()), spread)


@pytest.mark.parametrize(("shape", "kernel"), [((1, 2, 8, 9), 2), ((2, 1, 7), 3), ((1, 1, 5, 4, 6), 2)])
def test_tiled_average_pool_backward_matches_the_per_offset_spread(shape: tuple[int, ...], kernel: int) -> None:
    """Disjoint windows (stride == kernel), including a remainder no window reads: one broadcast write."""
    x = np.zeros(shape)
    p = spec.pool_params(shape[2:], kernel)
    out = loop_out_shape(x, p)
    grid = win.window_grid(shape[2:], kernel_size=p.kernel_size, stride=p.stride, padding=p.padding,
                               dilation=p.dilation, out_spatial=out[2:])
    assert win.tiles_input(grid)
    dy = np.random.default_rng(5).standard_normal(out)
    spread = np.empty_like(x)
    pool_module._spread(spread, dy / kernel ** len(shape[2:]), grid)
    np.testing.assert_array_equal(reference.avg_pool_backward(x, dy, **p._asdict()), spread)
    np.testing.assert_array_equal(reference.avg_pool_backward(x, dy, **p._asdict()),
                                  loop_avg_pool_backward(x, dy, p))


@pytest.mark.parametrize(("shape", "kernel"), [((1, 2, 8, 9), (2, 3)), ((2, 1, 7), (3,)), ((1, 1, 5, 4, 6), (2, 1, 4)),
                                               ((0, 2, 4), (2,))])
def test_tiles_reduced_axis_by_axis_match_the_fold_over_offsets(shape: tuple[int, ...], kernel: tuple[int, ...]) -> None:
    """Disjoint windows (remainders included): the same maxima as the row-major fold, sums within rounding."""
    x = np.random.default_rng(6).integers(-4, 5, shape).astype(np.float64)
    x.reshape(-1)[::5] = -0.0
    p = spec.pool_params(shape[2:], kernel)
    grid = win.window_grid(shape[2:], kernel_size=p.kernel_size, stride=p.stride, padding=p.padding,
                           dilation=p.dilation, out_spatial=loop_out_shape(x, p)[2:])
    assert win.tiles_input(grid)
    y = np.empty(loop_out_shape(x, p))
    pool_module._fold_windows(y, x, grid, np.maximum, -np.inf)
    assert_same(win.reduce_tiles(x, grid, np.maximum), y, "max", str(shape))
    assert_same(reference.max_pool_forward(x, **p.max_pool_kwargs()), loop_max_pool(x, p), "y", str(shape))
    x += np.random.default_rng(7).standard_normal(shape)
    pool_module._fold_windows(y, x, grid, np.add, 0.0)
    np.testing.assert_allclose(win.reduce_tiles(x, grid, np.add), y, rtol=1e-14, atol=1e-14)

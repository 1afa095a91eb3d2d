"""reference.adaptive_pool against nested loops over spec.adaptive_windows, its identities with fixed-window
pooling, the adjoint of average pooling and the spec's errors (spec/docs/adaptive_pool.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import reference
import spec

FAST = settings(max_examples=60, deadline=None, database=None)
F64 = NDArray[np.float64]


def windows(x_shape: tuple[int, ...], output_size: tuple[int, ...]) -> list[tuple[tuple[int, ...], list[tuple[int, ...]]]]:
    """Each output position with its input positions in row-major order."""
    bounds = [spec.adaptive_windows(n, o) for n, o in zip(x_shape[2:], output_size)]
    out = []
    for position in np.ndindex(*output_size):
        ranges = [range(*bounds[axis][i]) for axis, i in enumerate(position)]
        cells = [tuple(int(v) for v in cell) for cell in np.ndindex(*(len(r) for r in ranges))]
        out.append((tuple(position), [tuple(r[j] for r, j in zip(ranges, cell)) for cell in cells]))
    return out


def loop_adaptive(x: F64, dy: F64, output_size: tuple[int, ...]) -> tuple[F64, F64, F64, F64, NDArray[np.int64]]:
    """(avg y, avg dx, max y, max dx, max indices) by walking every window."""
    shape = (*x.shape[:2], *output_size)
    avg, peak, index = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=np.int64)
    d_avg, d_max = np.zeros_like(x), np.zeros_like(x)
    for position, cells in windows(x.shape, output_size):
        for n, c in np.ndindex(*x.shape[:2]):
            values = [float(x[(n, c, *cell)]) for cell in cells]
            avg[(n, c, *position)] = sum(values) / len(values)
            best = 0
            for i, v in enumerate(values):  # the first maximum; the first NaN if any
                if math.isnan(v):
                    best = i
                    break
                if v > values[best]:
                    best = i
            peak[(n, c, *position)] = math.nan if any(math.isnan(v) for v in values) else values[best]
            index[(n, c, *position)] = np.ravel_multi_index(cells[best], x.shape[2:])
            g = float(dy[(n, c, *position)])
            for cell in cells:
                d_avg[(n, c, *cell)] += g / len(cells)
            d_max[(n, c, *cells[best])] += g
    return avg, d_avg, peak, d_max, index


@st.composite
def cases(draw: st.DrawFn) -> tuple[F64, tuple[int, ...]]:
    """1-3 dims, output sizes from 1 (global) to beyond the input (overlapping windows), ties, NaN and -inf."""
    ndim = draw(st.integers(1, 3))
    limit = 6 if ndim < 3 else 3
    spatial = tuple(draw(st.integers(1, limit)) for _ in range(ndim))
    output_size = tuple(draw(st.integers(1, limit + 2)) for _ in range(ndim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-2, 3, (draw(st.integers(0, 2)), draw(st.integers(1, 2)), *spatial)).astype(np.float64)
    special = draw(st.sampled_from([None, np.nan, -np.inf]))
    if special is not None and x.size:
        x.ravel()[rng.integers(0, x.size, max(1, x.size // 4))] = special
    return x, output_size


@FAST
@given(cases(), st.integers(0, 2**32 - 1))
def test_matches_loop(case: tuple[F64, tuple[int, ...]], seed: int) -> None:
    x, output_size = case
    dy = np.random.default_rng(seed).integers(-3, 4, (*x.shape[:2], *output_size)).astype(np.float64)
    avg, d_avg, peak, d_max, index = loop_adaptive(x, dy, output_size)
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(reference.adaptive_avg_pool_forward(x, output_size=output_size), avg, rtol=1e-15)
    np.testing.assert_array_equal(reference.adaptive_max_pool_forward(x, output_size=output_size), peak)
    np.testing.assert_array_equal(reference.adaptive_max_pool_indices(x, output_size=output_size), index)
    if np.isfinite(x).all():  # gradients at non-finite inputs are unconstrained
        dx = reference.adaptive_avg_pool_backward(x, dy, output_size=output_size)
        np.testing.assert_allclose(dx, d_avg, rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(reference.adaptive_max_pool_backward(x, dy, output_size=output_size), d_max)


@FAST
@given(cases(), st.integers(0, 2**32 - 1))
def test_average_is_self_adjoint_pair(case: tuple[F64, tuple[int, ...]], seed: int) -> None:
    """<A x, v> = <x, Aᵀ v>: adaptive average pooling is linear and its backward is its transpose."""
    x, output_size = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x.shape)
    v = rng.standard_normal((*x.shape[:2], *output_size))
    y = reference.adaptive_avg_pool_forward(x, output_size=output_size)
    dx = reference.adaptive_avg_pool_backward(x, v, output_size=output_size)
    assert abs(np.vdot(y, v) - np.vdot(x, dx)) <= 1e-12 * max(1.0, float(np.abs(x).sum() * np.abs(v).max(initial=0.0)))


@pytest.mark.parametrize(("spatial", "output_size"), [((12,), (4,)), ((6, 9), (3, 3)), ((4, 6, 2), (2, 3, 1))])
def test_divisible_sizes_are_fixed_window_pooling(spatial: tuple[int, ...], output_size: tuple[int, ...]) -> None:
    """When o divides n every window is n / o long and they tile the input: avg_pool / max_pool with k = s = n / o."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, *spatial))
    kernel = tuple(n // o for n, o in zip(spatial, output_size))
    params = spec.pool_params(spatial, kernel)
    np.testing.assert_allclose(reference.adaptive_avg_pool_forward(x, output_size=output_size),
                               reference.avg_pool_forward(x, **params._asdict()), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(reference.adaptive_max_pool_forward(x, output_size=output_size),
                                  reference.max_pool_forward(x, **params.max_pool_kwargs()))
    np.testing.assert_array_equal(reference.adaptive_max_pool_indices(x, output_size=output_size),
                                  reference.max_pool_indices(x, **params.max_pool_kwargs()))
    dy = rng.standard_normal((2, 3, *output_size))
    np.testing.assert_allclose(reference.adaptive_avg_pool_backward(x, dy, output_size=output_size),
                               reference.avg_pool_backward(x, dy, **params._asdict()), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(reference.adaptive_max_pool_backward(x, dy, output_size=output_size),
                                  reference.max_pool_backward(x, dy, **params.max_pool_kwargs()))


def test_global_pooling_is_output_size_one() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 7, 7))
    np.testing.assert_allclose(reference.adaptive_avg_pool_forward(x, output_size=(1, 1)), x.mean(axis=(2, 3), keepdims=True),
                               rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(reference.adaptive_max_pool_forward(x, output_size=(1, 1)), x.max(axis=(2, 3), keepdims=True))


def test_output_larger_than_input_repeats_inputs() -> None:
    """o > n: windows overlap; each output pools one or two inputs, and gradients from repeats add up."""
    x = np.array([[[1.0, 3.0]]])
    assert reference.adaptive_avg_pool_forward(x, output_size=(3,)).tolist() == [[[1.0, 2.0, 3.0]]]
    assert spec.adaptive_windows(2, 5) == ((0, 1), (0, 1), (0, 2), (1, 2), (1, 2))
    assert reference.adaptive_max_pool_forward(x, output_size=(5,)).tolist() == [[[1.0, 1.0, 3.0, 3.0, 3.0]]]
    assert reference.adaptive_max_pool_backward(x, np.ones((1, 1, 5)), output_size=(5,)).tolist() == [[[2.0, 3.0]]]


def test_dtypes_and_empty_batch() -> None:
    x = np.arange(10.0).reshape(1, 1, 10)
    for dtype in ("float16", "float32"):
        y = reference.adaptive_avg_pool_forward(x.astype(dtype), output_size=(4,))
        assert y.dtype == np.dtype(dtype) and y.tolist() == [[[1.0, 3.0, 6.0, 8.0]]]
        assert reference.adaptive_max_pool_backward(x.astype(dtype), y, output_size=(4,)).dtype == np.dtype(dtype)
    assert reference.adaptive_max_pool_forward(np.zeros((0, 2, 3, 3)), output_size=(2, 2)).shape == (0, 2, 2, 2)
    assert reference.adaptive_avg_pool_backward(np.zeros((0, 2, 3)), np.zeros((0, 2, 5)), output_size=(5,)).shape == (0, 2, 3)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize(("spatial", "output_size"), [((6, 4), (1, 1)), ((6, 4), (3, 2)), ((7, 4), (3, 3))])
def test_every_path_in_every_dtype(dtype: str, spatial: tuple[int, ...], output_size: tuple[int, ...]) -> None:
    """Global, tiling and gathered windows (each computed its own way) in the low-precision dtypes, on small
    integers: the max, its indices and its gradient are exact (ties broken as in float64), the means within
    the dtype's rounding."""
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, (2, 3, *spatial)).astype(np.float64)
    dy = rng.integers(-3, 4, (2, 3, *output_size)).astype(np.float64)
    low, dy_low = x.astype(dtype), dy.astype(dtype)
    exact = {
        "max": reference.adaptive_max_pool_forward, "indices": reference.adaptive_max_pool_indices,
    }
    for name, fn in exact.items():
        got, want = fn(low, output_size=output_size), fn(x, output_size=output_size)
        assert got.dtype == (np.dtype(np.int64) if name == "indices" else low.dtype), name
        np.testing.assert_array_equal(got.astype(want.dtype), want, err_msg=name)
    dx = reference.adaptive_max_pool_backward(low, dy_low, output_size=output_size)
    assert dx.dtype == low.dtype
    np.testing.assert_array_equal(dx.astype(np.float64), reference.adaptive_max_pool_backward(x, dy, output_size=output_size))
    for got, want in [
        (reference.adaptive_avg_pool_forward(low, output_size=output_size),
         reference.adaptive_avg_pool_forward(x, output_size=output_size)),
        (reference.adaptive_avg_pool_backward(low, dy_low, output_size=output_size),
         reference.adaptive_avg_pool_backward(x, dy, output_size=output_size)),
    ]:
        assert got.dtype == low.dtype
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=2 ** -7, atol=2 ** -7)


@pytest.mark.parametrize(
    ("x", "output_size", "message"),
    [
        (np.zeros((1, 2, 5)), (0,), "output_size[0]=0 is invalid: must be >= 1"),
        (np.zeros((1, 2, 5)), (2, 2), "output_size=(2, 2) is invalid: must have one entry per spatial dim (1)"),
        (np.zeros((1, 2, 5)), 2, "output_size=2 is invalid: must be a tuple of ints, one per spatial dim (1)"),
        (np.zeros((1, 2, 0)), (1,), "x.shape[2]=0 is invalid: must be >= 1"),
        (np.zeros((1, 0, 5)), (1,), "C=0 is invalid: must be >= 1"),
        (np.zeros((1, 2, 5), dtype=np.int64), (1,),
         "x.dtype=dtype('int64') is invalid: must be a floating dtype (float16, float32, float64 or bfloat16)"),
    ],
)
def test_invalid_parameters(x: F64, output_size: tuple[int, ...], message: str) -> None:
    for fn in (reference.adaptive_avg_pool_forward, reference.adaptive_max_pool_forward, reference.adaptive_max_pool_indices):
        with pytest.raises(spec.SpecError) as info:
            fn(x, output_size=output_size)
        assert str(info.value) == message
    with pytest.raises(spec.SpecError, match=r"dy.shape=\(1, 1, 2\) is invalid"):
        reference.adaptive_max_pool_backward(np.zeros((1, 1, 5)), np.zeros((1, 1, 2)), output_size=(3,))


def test_non_contiguous_inputs_and_fresh_results() -> None:
    base = np.random.default_rng(2).standard_normal((3, 2, 9, 7))
    x = base.transpose(0, 1, 3, 2)[:, :, ::2]  # a strided, transposed view: (3, 2, 4, 9)
    copy = x.copy()
    dy = np.ones((3, 2, 3, 5))
    calls = [
        lambda a: reference.adaptive_avg_pool_forward(a, output_size=(3, 5)),
        lambda a: reference.adaptive_max_pool_forward(a, output_size=(3, 5)),
        lambda a: reference.adaptive_avg_pool_backward(a, dy, output_size=(3, 5)),
        lambda a: reference.adaptive_max_pool_backward(a, dy, output_size=(3, 5)),
        lambda a: reference.adaptive_max_pool_indices(a, output_size=(3, 5)),
    ]
    for call in calls:
        got = call(x)
        np.testing.assert_array_equal(got, call(copy))
        assert not np.shares_memory(got, base) and got.flags.writeable
    np.testing.assert_array_equal(x, copy)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_low_precision_average_within_elementwise_bound(dtype: str) -> None:
    """ADAPTIVE-C12: K = the window size for y; dx elements sum at most (windows covering them) shares."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 11, 6)).astype(dtype)
    exact = reference.adaptive_avg_pool_forward(x.astype(np.float64), output_size=(4, 9))
    y = reference.adaptive_avg_pool_forward(x, output_size=(4, 9))
    magnitude = reference.adaptive_avg_pool_forward(np.abs(x.astype(np.float64)), output_size=(4, 9))
    longest = max(e - s for s, e in spec.adaptive_windows(11, 4)) * max(e - s for s, e in spec.adaptive_windows(6, 9))
    assert y.dtype == np.dtype(dtype)
    assert (np.abs(y.astype(np.float64) - exact) <= spec.elementwise_bound(magnitude, longest, dtype)).all()


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(1, 500), st.integers(1, 500))
def test_window_rule_properties(n: int, o: int) -> None:
    """ADAPTIVE-C3/C4: windows are non-empty, inside the input, ordered, cover it, and their lengths lie in
    [n/o, n/o + 2), so differ by at most one (each pools 1 or 2 inputs when o > n)."""
    bounds = spec.adaptive_windows(n, o)
    assert len(bounds) == o and bounds[0][0] == 0 and bounds[-1][1] == n
    lengths = [end - start for start, end in bounds]
    assert all(0 <= start < end <= n for start, end in bounds)
    assert all(a[0] <= b[0] and a[1] <= b[1] and b[0] <= a[1] for a, b in zip(bounds, bounds[1:]))  # ordered, no gap
    assert all(n <= length * o < n + 2 * o for length in lengths)
    assert max(lengths) - min(lengths) <= 1


@FAST
@given(cases(), st.integers(0, 2**32 - 1))
def test_metamorphic_relations(case: tuple[F64, tuple[int, ...]], seed: int) -> None:
    """Batch independence; the average is linear; the max and its indices commute with increasing maps."""
    x, output_size = case
    rng = np.random.default_rng(seed)
    y = reference.adaptive_max_pool_forward(x, output_size=output_size)
    for n in range(x.shape[0]):
        np.testing.assert_array_equal(y[n:n + 1], reference.adaptive_max_pool_forward(x[n:n + 1], output_size=output_size))
    a, b = rng.integers(-3, 4, x.shape).astype(np.float64), rng.integers(-3, 4, x.shape).astype(np.float64)
    np.testing.assert_allclose(
        reference.adaptive_avg_pool_forward(a + 3 * b, output_size=output_size),
        reference.adaptive_avg_pool_forward(a, output_size=output_size)
        + 3 * reference.adaptive_avg_pool_forward(b, output_size=output_size), rtol=1e-14, atol=1e-14,
    )
    with np.errstate(over="ignore", invalid="ignore"):
        mapped = np.exp(x)
    np.testing.assert_array_equal(reference.adaptive_max_pool_forward(mapped, output_size=output_size), np.exp(y))
    np.testing.assert_array_equal(reference.adaptive_max_pool_indices(mapped, output_size=output_size),
                                  reference.adaptive_max_pool_indices(x, output_size=output_size))

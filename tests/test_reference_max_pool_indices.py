"""reference.max_pool_indices against a nested loop, the forward and the gradient rule it must agree with,
and the mapping to ONNX's whole-tensor indices (spec/docs/max_pool_indices.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import reference
import spec
from spec import PoolParams

FAST = settings(max_examples=60, deadline=None, database=None)
F64 = NDArray[np.float64]


def loop_indices(x: F64, p: PoolParams) -> NDArray[np.int64]:
    """Walk each window in row-major offset order: the first real element, then any strictly greater one,
    then the first NaN; -1 if the window holds no real element (MAXIDX-C3 … C5)."""
    out_shape = spec.pool_output_shape(x, **p.max_pool_kwargs())
    result = np.full(out_shape, -1, dtype=np.int64)
    for n, c, *position in np.ndindex(*out_shape):
        best, chosen = -math.inf, -1
        for offset in np.ndindex(*p.kernel_size):
            at = tuple(o * s + j * d - lo for o, j, s, d, (lo, _) in zip(position, offset, p.stride, p.dilation, p.padding))
            if not all(0 <= i < size for i, size in zip(at, x.shape[2:])):
                continue
            value = float(x[(n, c, *at)])
            if chosen < 0 or value > best or (math.isnan(value) and not math.isnan(best)):
                best, chosen = value, int(np.ravel_multi_index(at, x.shape[2:]))
        result[(n, c, *position)] = chosen
    return result


@st.composite
def pool_cases(draw: st.DrawFn) -> tuple[F64, PoolParams]:
    """Small calls with padding beyond half the kernel, dilation and ceil mode (so empty windows occur),
    and integer values (ties) with occasional NaN and -inf."""
    ndim = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim))
    ceil_mode = draw(st.booleans())
    spatial = []
    for k, d, (lo, hi) in zip(kernel, dilation, padding):
        smallest = max(1, d * (k - 1) + 1 - lo - hi)
        spatial.append(draw(st.integers(smallest, smallest + (4 if ndim < 3 else 2))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-2, 3, (draw(st.integers(0, 2)), draw(st.integers(1, 2)), *spatial)).astype(np.float64)
    special = draw(st.sampled_from([None, np.nan, -np.inf]))
    if special is not None and x.size:
        x.ravel()[rng.integers(0, x.size, max(1, x.size // 5))] = special
    return x, PoolParams(kernel, stride, padding, dilation, ceil_mode, True)


@FAST
@given(pool_cases())
def test_matches_loop(case: tuple[F64, PoolParams]) -> None:
    x, p = case
    got = reference.max_pool_indices(x, **p.max_pool_kwargs())
    expected = loop_indices(x, p)
    assert got.dtype == np.int64 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@FAST
@given(pool_cases(), st.integers(0, 2**32 - 1))
def test_indices_select_the_forward_value_and_route_the_gradient(case: tuple[F64, PoolParams], seed: int) -> None:
    """y = x[plane][index] wherever index >= 0 (NaN where y is NaN), -inf where index = -1; for NaN-free
    windows, scattering dy at the indices is max_pool_backward (MAXPOOL-C10)."""
    x, p = case
    kwargs = p.max_pool_kwargs()
    idx = reference.max_pool_indices(x, **kwargs)
    y = reference.max_pool_forward(x, **kwargs)
    planes = x.reshape(*x.shape[:2], math.prod(x.shape[2:]))
    flat_idx = np.maximum(idx, 0).reshape(*idx.shape[:2], math.prod(idx.shape[2:]))
    picked = np.take_along_axis(planes, flat_idx, axis=2).reshape(idx.shape)
    real = idx >= 0
    np.testing.assert_array_equal(np.where(real, picked, -np.inf), y)
    dy = np.random.default_rng(seed).integers(-3, 4, y.shape).astype(np.float64)
    if np.isnan(x).any():
        return  # MAXPOOL-C12: where a NaN window routes its gradient is unconstrained
    dx = np.zeros(planes.shape)
    for (n, c, *_), i in np.ndenumerate(idx):
        if i >= 0:
            dx[n, c, i] += dy[(n, c, *_)]
    np.testing.assert_array_equal(dx.reshape(x.shape), reference.max_pool_backward(x, dy, **kwargs))


def test_fixed_examples() -> None:
    x = np.array([[[1.0, 4.0], [4.0, 2.0]]]).reshape(1, 1, 2, 2)
    params = spec.pool_params((2, 2), 2)
    assert reference.max_pool_indices(x, **params.max_pool_kwargs()).tolist() == [[[[1]]]]  # (0, 1) before (1, 0)
    x = np.array([[[3.0, np.nan, 5.0, np.nan]]])
    params = spec.pool_params((4,), 4)
    assert reference.max_pool_indices(x, **params.max_pool_kwargs()).tolist() == [[[1]]]  # the first NaN
    params = spec.pool_params((1,), 2, stride=1, padding=1, dilation=2)  # the only window reads padding only
    assert reference.max_pool_indices(np.array([[[7.0]]]), **params.max_pool_kwargs()).tolist() == [[[-1]]]


def test_empty_batch_and_invalid_parameters() -> None:
    params = spec.pool_params((4, 4), 2)
    assert reference.max_pool_indices(np.zeros((0, 3, 4, 4)), **params.max_pool_kwargs()).shape == (0, 3, 2, 2)
    with pytest.raises(spec.SpecError, match=r"kernel_size\[0\]=0 is invalid"):
        reference.max_pool_indices(np.zeros((1, 1, 4)), kernel_size=(0,), stride=(1,), padding=((0, 0),), dilation=(1,),
                                   ceil_mode=False)


@pytest.mark.parametrize("storage_order", [0, 1])
def test_onnx_indices_count_over_the_whole_tensor(storage_order: int) -> None:
    """spec.onnx_max_pool_indices against np.ravel_multi_index over the full (N, C, *S) shape."""
    rng = np.random.default_rng(storage_order)
    x = rng.standard_normal((2, 3, 4, 5))
    params = spec.pool_params((4, 5), 2, stride=1)
    idx = reference.max_pool_indices(x, **params.max_pool_kwargs())
    onnx = spec.onnx_max_pool_indices(idx, x.shape, storage_order=storage_order)
    for (n, c, *position), i in np.ndenumerate(idx):
        h, w = np.unravel_index(i, x.shape[2:])
        order = "C" if storage_order == 0 else "F"
        if storage_order == 0:
            expected = np.ravel_multi_index((n, c, h, w), x.shape)
        else:  # ONNX: the plane offset is row-major over (N, C), the position in the plane column-major
            expected = (n * x.shape[1] + c) * 20 + np.ravel_multi_index((h, w), x.shape[2:], order=order)
        assert onnx[(n, c, *position)] == expected
    with pytest.raises(spec.SpecError, match="storage_order=2 is invalid"):
        spec.onnx_max_pool_indices(idx, x.shape, storage_order=2)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_low_precision_and_non_contiguous_inputs(dtype: str) -> None:
    """The selection is the same in every dtype (values convert exactly to float64), and strides do not matter."""
    base = np.random.default_rng(4).integers(-3, 4, (2, 3, 9, 8)).astype(dtype)
    x = base.transpose(0, 1, 3, 2)[:, :, ::2]
    params = spec.pool_params(x.shape[2:], 3, stride=2, padding=1, ceil_mode=True)
    got = reference.max_pool_indices(x, **params.max_pool_kwargs())
    np.testing.assert_array_equal(got, reference.max_pool_indices(x.astype(np.float64), **params.max_pool_kwargs()))
    np.testing.assert_array_equal(got, loop_indices(np.ascontiguousarray(x, dtype=np.float64), params))
    assert got.dtype == np.int64 and not np.shares_memory(got, base)


@FAST
@given(pool_cases())
def test_indices_commute_with_increasing_maps(case: tuple[F64, PoolParams]) -> None:
    """A strictly increasing map keeps every window's first maximum (and NaN, -inf) where it is."""
    x, p = case
    kwargs = p.max_pool_kwargs()
    expected = reference.max_pool_indices(x, **kwargs)
    for mapped in (2 * x + 1, x**3, np.exp(x)):
        np.testing.assert_array_equal(reference.max_pool_indices(mapped, **kwargs), expected)

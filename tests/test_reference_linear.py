"""reference.linear against a nested loop, finite differences, the equivalent convolution and the accuracy model."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import reference
import spec

FAST = settings(max_examples=60, deadline=None, database=None)
F64 = NDArray[np.float64]


def loop_linear(x: F64, w: F64, b: F64 | None) -> F64:
    y = np.zeros((x.shape[0], w.shape[0]))
    for n, o in np.ndindex(*y.shape):
        y[n, o] = (0.0 if b is None else float(b[o])) + sum(float(x[n, i]) * float(w[o, i]) for i in range(x.shape[1]))
    return y


def loop_linear_backward(x: F64, w: F64, dy: F64) -> tuple[F64, F64, F64]:
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(w.shape[0])
    for n, o in np.ndindex(*dy.shape):
        db[o] += dy[n, o]
        for i in range(x.shape[1]):
            dx[n, i] += dy[n, o] * w[o, i]
            dw[o, i] += dy[n, o] * x[n, i]
    return dx, dw, db


class LinearCase(NamedTuple):
    x: F64
    w: F64
    b: F64 | None
    dy: F64


@st.composite
def linear_cases(draw: st.DrawFn, *, integer_values: bool = True, min_batch: int = 0) -> LinearCase:
    n, fan_in, fan_out = draw(st.integers(min_batch, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def values(*shape: int) -> F64:
        if integer_values:
            return rng.integers(-5, 6, size=shape).astype(np.float64)
        return rng.standard_normal(shape)

    b = values(fan_out) if draw(st.booleans()) else None
    return LinearCase(values(n, fan_in), values(fan_out, fan_in), b, values(n, fan_out))


@FAST
@given(linear_cases())
def test_forward_and_backward_match_loops(case: LinearCase) -> None:
    y = reference.linear_forward(case.x, case.w, case.b)
    np.testing.assert_array_equal(y, loop_linear(case.x, case.w, case.b))
    for name, got, expected in zip(("dx", "dw", "db"), reference.linear_backward(case.x, case.w, case.dy),
                                   loop_linear_backward(case.x, case.w, case.dy)):
        assert got.shape == expected.shape, f"{name}.shape={got.shape}, but should be {expected.shape}"
        np.testing.assert_array_equal(got, expected, err_msg=name)


@FAST
@given(linear_cases(integer_values=False, min_batch=1))
def test_gradients_match_finite_differences(case: LinearCase) -> None:
    b = case.b if case.b is not None else np.zeros(case.w.shape[0])
    dx, dw, db = reference.linear_backward(case.x, case.w, case.dy)
    eps = 1e-3
    for name, analytic, arg in (("dx", dx, 0), ("dw", dw, 1), ("db", db, 2)):
        args = [case.x, case.w, b]
        numeric = np.zeros_like(args[arg])
        for index in np.ndindex(*args[arg].shape):
            plus, minus = args[arg].copy(), args[arg].copy()
            plus[index] += eps
            minus[index] -= eps
            y_plus = reference.linear_forward(*[plus if i == arg else a for i, a in enumerate(args)])
            y_minus = reference.linear_forward(*[minus if i == arg else a for i, a in enumerate(args)])
            numeric[index] = float(np.sum(case.dy * (y_plus - y_minus))) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9, err_msg=name)


@FAST
@given(linear_cases())
def test_linear_is_a_convolution_over_one_position(case: LinearCase) -> None:
    p = spec.conv_params((1,), (1,))._asdict()
    conv = reference.conv_forward(case.x[:, :, None], case.w[:, :, None], case.b, **p)
    np.testing.assert_array_equal(conv[:, :, 0], reference.linear_forward(case.x, case.w, case.b))
    dx, dw, db = reference.conv_backward(case.x[:, :, None], case.w[:, :, None], case.dy[:, :, None], **p)
    ldx, ldw, ldb = reference.linear_backward(case.x, case.w, case.dy)
    np.testing.assert_array_equal(dx[:, :, 0], ldx)
    np.testing.assert_array_equal(dw[:, :, 0], ldw)
    np.testing.assert_array_equal(db, ldb)


def test_weight_layout_is_out_by_in() -> None:
    x = np.array([[1.0, 2.0, 3.0]])
    w = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    assert reference.linear_forward(x, w, np.array([10.0, 20.0])).tolist() == [[11.0, 25.0]]
    with pytest.raises(spec.SpecError) as info:
        reference.linear_forward(x, w.T.copy(), None)
    assert info.value.parameter == "w.shape[1]"


def test_empty_batch() -> None:
    x, w = np.zeros((0, 3)), np.ones((2, 3))
    y = reference.linear_forward(x, w, np.ones(2))
    assert y.shape == (0, 2)
    dx, dw, db = reference.linear_backward(x, w, y)
    assert dx.shape == (0, 3)
    assert dw.shape == (2, 3) and not np.any(dw)
    assert db.shape == (2,) and not np.any(db)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@settings(max_examples=40, deadline=None, database=None)
@given(case=linear_cases(integer_values=False, min_batch=1))
def test_low_precision_within_elementwise_bound(dtype: str, case: LinearCase) -> None:
    x, w, dy = case.x.astype(dtype), case.w.astype(dtype), case.dy.astype(dtype)
    b = None if case.b is None else case.b.astype(dtype)
    x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    y = reference.linear_forward(x, w, b)
    assert y.dtype == np.dtype(dtype)
    magnitude = np.abs(x64) @ np.abs(w64).T + (0.0 if b64 is None else np.abs(b64))
    error = np.abs(y.astype(np.float64) - reference.linear_forward(x64, w64, b64))
    assert np.all(error <= spec.elementwise_bound(magnitude, x.shape[1], dtype))
    got = reference.linear_backward(x, w, dy)
    exact = reference.linear_backward(x64, w64, dy64)
    magnitudes = (np.abs(dy64) @ np.abs(w64), np.abs(dy64).T @ np.abs(x64), np.abs(dy64).sum(axis=0))
    for name, g, e, m, k in zip(("dx", "dw", "db"), got, exact, magnitudes, (w.shape[0], x.shape[0], x.shape[0])):
        assert g.dtype == np.dtype(dtype), name
        assert np.all(np.abs(g.astype(np.float64) - e) <= spec.elementwise_bound(m, k, dtype)), name


def test_results_are_fresh_and_inputs_untouched() -> None:
    rng = np.random.default_rng(7)
    x, w, b, dy = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2), rng.standard_normal((3, 2))
    copies = [a.copy() for a in (x, w, b, dy)]
    results = [reference.linear_forward(x, w, b), reference.linear_forward(x, w, None),
               *reference.linear_backward(x, w, dy)]
    for original, copy in zip((x, w, b, dy), copies):
        np.testing.assert_array_equal(original, copy)
    for result in results:
        for argument in (x, w, b, dy):
            assert not np.shares_memory(result, argument)
    ones = np.ones((1, 1))
    dx, dw, _ = reference.linear_backward(ones, ones, ones)     # 1x1: dx = dy·W must not alias dy
    dx[...] = 5.0
    assert ones.tolist() == [[1.0]] and dw.tolist() == [[1.0]]

"""reference.conv against scipy.signal, a nested-loop convolution, finite differences and the accuracy model."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy import signal

import reference
import spec
from spec import ConvParams

FAST = settings(max_examples=60, deadline=None, database=None)
F64 = NDArray[np.float64]


# ---- a slow, obviously correct convolution ---------------------------------------------------------------


def loop_out_spatial(x_shape: tuple[int, ...], w_shape: tuple[int, ...], p: ConvParams) -> tuple[int, ...]:
    """Count window starts that fit in the padded input, one stride at a time."""
    out = []
    for n, k, s, (lo, hi), d in zip(x_shape[2:], w_shape[2:], p.stride, p.padding, p.dilation):
        out.append(sum(1 for start in range(0, n + lo + hi, s) if start + d * (k - 1) < n + lo + hi))
    return tuple(out)


def read_index(position: tuple[int, ...], offset: tuple[int, ...], p: ConvParams) -> tuple[int, ...]:
    return tuple(o * s + j * d - lo for o, j, s, d, (lo, _) in zip(position, offset, p.stride, p.dilation, p.padding))


def loop_conv(x: F64, w: F64, b: F64 | None, p: ConvParams) -> F64:
    n_batch, c_in = x.shape[:2]
    c_out, c_group = w.shape[:2]
    out_per_group = c_out // p.groups
    y = np.zeros((n_batch, c_out, *loop_out_spatial(x.shape, w.shape, p)))
    for n, o, *position in np.ndindex(*y.shape):
        g = o // out_per_group
        total = 0.0 if b is None else float(b[o])
        for c in range(c_group):
            for offset in np.ndindex(*w.shape[2:]):
                i = read_index(tuple(position), offset, p)
                if all(0 <= ii < size for ii, size in zip(i, x.shape[2:])):
                    total += float(w[(o, c, *offset)]) * float(x[(n, g * c_group + c, *i)])
        y[(n, o, *position)] = total
    return y


def loop_conv_backward(x: F64, w: F64, dy: F64, p: ConvParams) -> tuple[F64, F64, F64]:
    """The adjoint of loop_conv, line by line: every product w * x sends dy to both factors."""
    c_out, c_group = w.shape[:2]
    out_per_group = c_out // p.groups
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(c_out)
    for n, o, *position in np.ndindex(*dy.shape):
        g = o // out_per_group
        grad = float(dy[(n, o, *position)])
        db[o] += grad
        for c in range(c_group):
            for offset in np.ndindex(*w.shape[2:]):
                i = read_index(tuple(position), offset, p)
                if all(0 <= ii < size for ii, size in zip(i, x.shape[2:])):
                    dw[(o, c, *offset)] += grad * float(x[(n, g * c_group + c, *i)])
                    dx[(n, g * c_group + c, *i)] += grad * float(w[(o, c, *offset)])
    return dx, dw, db


# ---- random configurations -------------------------------------------------------------------------------


class ConvCase(NamedTuple):
    x: F64
    w: F64
    b: F64 | None
    params: ConvParams

    def snippet(self) -> str:
        return f"reference.conv_forward(x{self.x.shape}, w{self.w.shape}, b, **{self.params._asdict()})"


@st.composite
def conv_cases(
    draw: st.DrawFn, *, integer_values: bool = True, min_batch: int = 0, max_batch: int = 2,
    ndim: int | None = None, max_groups: int = 2, max_channels: int = 2,
) -> ConvCase:
    """Tiny convolutions in 1, 2 or 3 dims; every spatial size is drawn so the output is non-empty.

    ``max_channels`` bounds the input and output channels per group.
    """
    if ndim is None:
        ndim = draw(st.integers(1, 3))
    max_k = 3 if ndim < 3 else 2
    groups = draw(st.integers(1, max_groups))
    c_in, c_out = groups * draw(st.integers(1, max_channels)), groups * draw(st.integers(1, max_channels))
    kernel, stride, dilation, padding, spatial = [], [], [], [], []
    for _ in range(ndim):
        k, s, d = draw(st.integers(1, max_k)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
        lo, hi = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        extent = d * (k - 1) + 1
        n = draw(st.integers(max(1, extent - lo - hi), max(1, extent - lo - hi) + (3 if ndim < 3 else 2)))
        kernel.append(k)
        stride.append(s)
        dilation.append(d)
        padding.append((lo, hi))
        spatial.append(n)
    batch = draw(st.integers(min_batch, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def values(shape: tuple[int, ...]) -> F64:
        if integer_values:   # small integers: every sum is exact, so results compare with ==
            return rng.integers(-4, 5, size=shape).astype(np.float64)
        return rng.standard_normal(shape)

    x = values((batch, c_in, *spatial))
    w = values((c_out, c_in // groups, *kernel))
    b = values((c_out,)) if draw(st.booleans()) else None
    params = spec.conv_params(tuple(spatial), tuple(kernel), stride=tuple(stride), padding=padding,
                              dilation=tuple(dilation), groups=groups)
    return ConvCase(x, w, b, params)


def assert_equal(actual: NDArray[Any], expected: NDArray[Any], what: str, case: ConvCase) -> None:
    __tracebackhide__ = True
    assert actual.shape == expected.shape, f"{what}.shape={actual.shape}, but should be {expected.shape} [{case.snippet()}]"
    if not np.array_equal(actual, expected):
        bad = tuple(int(i) for i in np.argwhere(actual != expected)[0])
        raise AssertionError(
            f"{what}[{bad}]={actual[bad]}, but should be {expected[bad]} [{case.snippet()}]"
        )


@FAST
@given(conv_cases())
def test_forward_matches_loop(case: ConvCase) -> None:
    y = reference.conv_forward(case.x, case.w, case.b, **case.params._asdict())
    assert_equal(y, loop_conv(case.x, case.w, case.b, case.params), "y", case)


@FAST
@given(conv_cases())
def test_backward_matches_loop(case: ConvCase) -> None:
    shape = spec.conv_output_shape(case.x, case.w, None, **case.params._asdict())
    dy = np.random.default_rng(0).integers(-3, 4, size=shape).astype(np.float64)
    got = reference.conv_backward(case.x, case.w, dy, **case.params._asdict())
    for name, actual, expected in zip(("dx", "dw", "db"), got, loop_conv_backward(case.x, case.w, dy, case.params)):
        assert_equal(actual, expected, name, case)


# ---- scipy.signal on 2-D single-channel cases -----------------------------------------------------------


def dilate(a: F64, step: tuple[int, int]) -> F64:
    """Insert step - 1 zeros between neighbouring elements."""
    out = np.zeros(((a.shape[0] - 1) * step[0] + 1, (a.shape[1] - 1) * step[1] + 1))
    out[:: step[0], :: step[1]] = a
    return out


def single_channel_2d() -> st.SearchStrategy[ConvCase]:
    return conv_cases(min_batch=1, max_batch=1, ndim=2, max_groups=1, max_channels=1)


@FAST
@given(single_channel_2d())
def test_forward_is_scipy_correlate2d(case: ConvCase) -> None:
    p = case.params
    x_pad = np.pad(case.x[0, 0], p.padding)
    w_dilated = dilate(case.w[0, 0], (p.dilation[0], p.dilation[1]))
    expected = signal.correlate2d(x_pad, w_dilated, mode="valid")[:: p.stride[0], :: p.stride[1]]
    y = reference.conv_forward(case.x, case.w, None, **p._asdict())
    assert_equal(y[0, 0], expected, "y", case)


def test_kernel_is_not_flipped() -> None:
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 2.0], [0.0, -1.0]]]])
    y = reference.conv_forward(x, w, None, **spec.conv_params((4, 4), (2, 2))._asdict())
    np.testing.assert_array_equal(y[0, 0], signal.correlate2d(x[0, 0], w[0, 0], mode="valid"))
    assert not np.array_equal(y[0, 0], signal.convolve2d(x[0, 0], w[0, 0], mode="valid"))
    assert y[0, 0, 0, 0] == 1.0 * 0 + 2.0 * 1 + 0.0 * 4 - 1.0 * 5


@FAST
@given(single_channel_2d(), st.integers(0, 2**32 - 1))
def test_backward_identities_with_scipy(case: ConvCase, seed: int) -> None:
    """dW = correlate2d(x_pad, dY dilated by the stride); dX = full convolution of that dY with W, cropped."""
    p = case.params
    out = spec.conv_output_shape(case.x, case.w, None, **p._asdict())
    dy = np.random.default_rng(seed).integers(-3, 4, size=out).astype(np.float64)
    dx, dw, db = reference.conv_backward(case.x, case.w, dy, **p._asdict())

    stride, dilation = (p.stride[0], p.stride[1]), (p.dilation[0], p.dilation[1])
    x_pad = np.pad(case.x[0, 0], p.padding)
    dy_dilated = dilate(dy[0, 0], stride)
    k = case.w.shape[2:]
    # the correlation at every shift; the kernel taps sit every `dilation` shifts
    dw_expected = signal.correlate2d(x_pad, dy_dilated, mode="valid")[:: dilation[0], :: dilation[1]][: k[0], : k[1]]
    assert_equal(dw[0, 0], dw_expected, "dw", case)

    full = signal.convolve2d(dy_dilated, dilate(case.w[0, 0], dilation), mode="full")
    dx_pad = np.zeros(x_pad.shape)
    dx_pad[: full.shape[0], : full.shape[1]] = full        # positions no window reads get nothing
    (lo0, _), (lo1, _) = p.padding
    n0, n1 = case.x.shape[2:]
    assert_equal(dx[0, 0], dx_pad[lo0 : lo0 + n0, lo1 : lo1 + n1], "dx", case)
    assert float(db[0]) == float(dy.sum())


def test_textbook_identities_fixed_example() -> None:
    """The example of conv.md: stride 2, padding 1, no cropping needed."""
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    w = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [3.0, 0.0, 1.0]]).reshape(1, 1, 3, 3)
    p = spec.conv_params((5, 5), (3, 3), stride=2, padding=1)
    dy = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    dx, dw, _ = reference.conv_backward(x, w, dy, **p._asdict())
    dy_dilated = dilate(dy[0, 0], (2, 2))
    np.testing.assert_array_equal(dw[0, 0], signal.correlate2d(np.pad(x[0, 0], 1), dy_dilated, mode="valid"))
    np.testing.assert_array_equal(dx[0, 0], signal.convolve2d(dy_dilated, w[0, 0], mode="full")[1:-1, 1:-1])


# ---- finite differences ----------------------------------------------------------------------------------


def numerical_gradient(f: Any, a: F64, dy: F64, eps: float) -> F64:
    """d<dy, f(a)>/da by central differences, one element at a time."""
    grad = np.zeros_like(a)
    for index in np.ndindex(*a.shape):
        plus, minus = a.copy(), a.copy()
        plus[index] += eps
        minus[index] -= eps
        grad[index] = float(np.sum(dy * (f(plus) - f(minus)))) / (2 * eps)
    return grad


@FAST
@given(conv_cases(integer_values=False, min_batch=1), st.integers(0, 2**32 - 1))
def test_gradients_match_finite_differences(case: ConvCase, seed: int) -> None:
    p = case.params._asdict()
    b = case.b if case.b is not None else np.zeros(case.w.shape[0])
    y = reference.conv_forward(case.x, case.w, b, **p)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx, dw, db = reference.conv_backward(case.x, case.w, dy, **p)
    eps = 1e-3   # the forward is linear in each argument: central differences are exact up to rounding
    checks = [
        ("dx", dx, numerical_gradient(lambda a: reference.conv_forward(a, case.w, b, **p), case.x, dy, eps)),
        ("dw", dw, numerical_gradient(lambda a: reference.conv_forward(case.x, a, b, **p), case.w, dy, eps)),
        ("db", db, numerical_gradient(lambda a: reference.conv_forward(case.x, case.w, a, **p), b, dy, eps)),
    ]
    for name, analytic, numeric in checks:
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=f"{name} [{case.snippet()}]")


# ---- semantics called out by the spec --------------------------------------------------------------------


def test_groups_are_contiguous_blocks() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape(1, 6, 1)
    w = np.ones((3, 2, 1))
    y = reference.conv_forward(x, w, None, **spec.conv_params((1,), (1,), groups=3)._asdict())
    assert y.ravel().tolist() == [3.0, 7.0, 11.0]


@FAST
@given(conv_cases())
def test_each_group_is_an_independent_convolution(case: ConvCase) -> None:
    """Group g maps input channels [g*Cg, (g+1)*Cg) to output channels [g*Og, (g+1)*Og) (CONV-C4)."""
    p = case.params
    c_group, o_group = case.x.shape[1] // p.groups, case.w.shape[0] // p.groups
    y = reference.conv_forward(case.x, case.w, case.b, **p._asdict())
    for g in range(p.groups):
        outs, ins = slice(g * o_group, (g + 1) * o_group), slice(g * c_group, (g + 1) * c_group)
        b = None if case.b is None else case.b[outs]
        alone = reference.conv_forward(case.x[:, ins], case.w[outs], b, **p._replace(groups=1)._asdict())
        assert_equal(y[:, outs], alone, f"y[:, group {g}]", case)


def test_same_padding_extra_element_at_the_end() -> None:
    x = np.arange(1.0, 7.0).reshape(1, 1, 6)
    w = np.array([[[1.0, 0.0, 0.0, 0.0]]])
    same = reference.conv_forward(x, w, None, **spec.conv_params((6,), (4,), padding="same")._asdict())
    lower = reference.conv_forward(x, w, None, **spec.conv_params((6,), (4,), padding="same_lower")._asdict())
    assert same.ravel().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert lower.ravel().tolist() == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_empty_batch(ndim: int) -> None:
    x = np.zeros((0, 2, *(4,) * ndim))
    w = np.ones((3, 2, *(2,) * ndim))
    p = spec.conv_params((4,) * ndim, (2,) * ndim)._asdict()
    y = reference.conv_forward(x, w, np.ones(3), **p)
    assert y.shape == (0, 3, *(3,) * ndim)
    dx, dw, db = reference.conv_backward(x, w, y, **p)
    assert dx.shape == x.shape
    assert dw.shape == w.shape and not np.any(dw)
    assert db.shape == (3,) and not np.any(db)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@settings(max_examples=25, deadline=None, database=None)
@given(case=conv_cases(integer_values=False, min_batch=1), seed=st.integers(0, 2**32 - 1))
def test_low_precision_within_elementwise_bound(dtype: str, case: ConvCase, seed: int) -> None:
    p = case.params._asdict()
    x, w = case.x.astype(dtype), case.w.astype(dtype)
    b = None if case.b is None else case.b.astype(dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    y = reference.conv_forward(x, w, b, **p)
    assert y.dtype == np.dtype(dtype)
    k_forward = w.shape[1] * math.prod(w.shape[2:])
    magnitude = reference.conv_forward(np.abs(x64), np.abs(w64), None if b64 is None else np.abs(b64), **p)
    bound = spec.elementwise_bound(magnitude, k_forward, dtype)
    error = np.abs(y.astype(np.float64) - reference.conv_forward(x64, w64, b64, **p))
    assert np.all(error <= bound), f"y error {error.max()} > bound [{case.snippet()}, dtype={dtype}]"

    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(dtype)
    got = reference.conv_backward(x, w, dy, **p)
    exact = reference.conv_backward(x64, w64, dy.astype(np.float64), **p)
    mags = reference.conv_backward(np.abs(x64), np.abs(w64), np.abs(dy.astype(np.float64)), **p)
    positions = y.shape[0] * math.prod(y.shape[2:])
    terms = (w.shape[0] // case.params.groups * math.prod(w.shape[2:]), positions, positions)
    for name, g, e, m, k in zip(("dx", "dw", "db"), got, exact, mags, terms):
        assert g.dtype == np.dtype(dtype), name
        err = np.abs(g.astype(np.float64) - e)
        assert np.all(err <= spec.elementwise_bound(m, k, dtype)), f"{name} error {err.max()} [{case.snippet()}]"


def test_results_are_fresh_and_inputs_untouched() -> None:
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 2, 1, 1)), rng.standard_normal(2)
    p = spec.conv_params((5, 5), (1, 1))._asdict()
    copies = [a.copy() for a in (x, w, b)]
    y = reference.conv_forward(x, w, b, **p)
    dy = rng.standard_normal(y.shape)
    dy_copy = dy.copy()
    grads = reference.conv_backward(x, w, dy, **p)
    for original, copy in zip((x, w, b, dy), (*copies, dy_copy)):
        np.testing.assert_array_equal(original, copy)
    for result in (y, *grads):
        for argument in (x, w, b, dy):
            assert not np.shares_memory(result, argument)
    y[...] = 0.0                                     # writing a result leaves a second call unaffected
    assert np.any(reference.conv_forward(x, w, b, **p))


def test_non_contiguous_inputs() -> None:
    """Strided and reversed views give the same results as contiguous copies."""
    rng = np.random.default_rng(11)
    x = rng.integers(-3, 4, size=(2, 6, 5)).astype(np.float64).transpose(0, 2, 1)[:, ::-1, ::2]   # (2, 5, 3)
    w = rng.integers(-3, 4, size=(4, 5, 2)).astype(np.float64)[::2]                               # (2, 5, 2)
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    p = spec.conv_params((3,), (2,), padding=1)._asdict()
    y = reference.conv_forward(x, w, None, **p)
    np.testing.assert_array_equal(y, reference.conv_forward(x.copy(), w.copy(), None, **p))
    dy = rng.integers(-3, 4, size=(y.shape[2], 2, 2)).astype(np.float64).transpose(1, 2, 0)
    for got, expected in zip(reference.conv_backward(x, w, dy, **p), reference.conv_backward(x.copy(), w.copy(), dy.copy(), **p)):
        np.testing.assert_array_equal(got, expected)

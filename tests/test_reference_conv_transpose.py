"""reference.conv_transpose against a nested-loop scatter, the adjoint identities with convolution,
finite differences, and the spec's parameter rules (spec/docs/conv_transpose.md)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import reference
import spec
from spec import ConvTransposeParams

FAST = settings(max_examples=50, deadline=None, database=None)
F64 = NDArray[np.float64]


# ---- a slow, obviously correct transposed convolution: the scatter of CONVT-C3 -------------------------------------


def loop_conv_transpose(x: F64, w: F64, b: F64 | None, p: ConvTransposeParams) -> F64:
    n_batch, c_in = x.shape[:2]
    c_group, out_group = c_in // p.groups, w.shape[1]
    out_spatial = tuple(
        (n - 1) * s - lo - hi + d * (k - 1) + e + 1
        for n, k, s, (lo, hi), d, e in zip(x.shape[2:], w.shape[2:], p.stride, p.padding, p.dilation, p.output_padding)
    )
    y = np.zeros((n_batch, out_group * p.groups, *out_spatial))
    if b is not None:
        y += b.reshape((-1,) + (1,) * len(out_spatial))
    for n, c, *i in np.ndindex(*x.shape):
        g = c // c_group
        for oc in range(out_group):
            for j in np.ndindex(*w.shape[2:]):
                o = tuple(ii * s + jj * d - lo for ii, jj, s, d, (lo, _) in zip(i, j, p.stride, p.dilation, p.padding))
                if all(0 <= oo < size for oo, size in zip(o, out_spatial)):
                    y[(n, g * out_group + oc, *o)] += x[(n, c, *i)] * w[(c, oc, *j)]
    return y


def loop_conv_transpose_backward(x: F64, w: F64, dy: F64, p: ConvTransposeParams) -> tuple[F64, F64, F64]:
    """The adjoint of the loop above, line by line."""
    c_group, out_group = x.shape[1] // p.groups, w.shape[1]
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for n, c, *i in np.ndindex(*x.shape):
        g = c // c_group
        for oc in range(out_group):
            for j in np.ndindex(*w.shape[2:]):
                o = tuple(ii * s + jj * d - lo for ii, jj, s, d, (lo, _) in zip(i, j, p.stride, p.dilation, p.padding))
                if all(0 <= oo < size for oo, size in zip(o, dy.shape[2:])):
                    dx[(n, c, *i)] += dy[(n, g * out_group + oc, *o)] * w[(c, oc, *j)]
                    dw[(c, oc, *j)] += dy[(n, g * out_group + oc, *o)] * x[(n, c, *i)]
    return dx, dw, dy.sum(axis=(0, *range(2, dy.ndim)))


# ---- cases -------------------------------------------------------------------------------------------------------


class Case(NamedTuple):
    x: F64
    w: F64
    b: F64 | None
    params: ConvTransposeParams

    def kwargs(self) -> dict[str, object]:
        return self.params._asdict()


@st.composite
def cases(draw: st.DrawFn, *, max_batch: int = 2) -> Case:
    """Small valid calls: 1-3 dims, groups, asymmetric padding, output_padding up to max(s, d) - 1, N = 0."""
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    c_group, out_group = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    extra = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    spatial, padding = [], []
    for k, s, d, e in zip(kernel, stride, dilation, extra):
        n = draw(st.integers(1, 4 if ndim < 3 else 2))
        full = (n - 1) * s + d * (k - 1) + e + 1
        lo = draw(st.integers(0, min(2, full - 1)))
        hi = draw(st.integers(0, min(2, full - 1 - lo)))
        spatial.append(n)
        padding.append((lo, hi))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batch = draw(st.integers(0, max_batch))
    x = rng.integers(-3, 4, (batch, c_group * groups, *spatial)).astype(np.float64)
    w = rng.integers(-3, 4, (c_group * groups, out_group, *kernel)).astype(np.float64)
    b = rng.integers(-3, 4, out_group * groups).astype(np.float64) if draw(st.booleans()) else None
    return Case(x, w, b, ConvTransposeParams(stride, tuple(padding), extra, dilation, groups))


def matching_conv(params: ConvTransposeParams) -> dict[str, object]:
    """The convolution the transposed convolution is the adjoint of (same w, stride, padding, dilation, groups)."""
    return params.conv_params()._asdict()


def extend(a: F64, spatial: tuple[int, ...]) -> F64:
    """Zero-extend the spatial dims of ``a`` at the end to ``spatial`` (output_padding >= stride: CONVT-C9)."""
    widths = [(0, 0), (0, 0), *((0, t - n) for n, t in zip(a.shape[2:], spatial))]
    return np.pad(a, widths)


# ---- tests -------------------------------------------------------------------------------------------------------


@FAST
@given(cases())
def test_forward_matches_loop(case: Case) -> None:
    y = reference.conv_transpose_forward(case.x, case.w, case.b, **case.params._asdict())
    expected = loop_conv_transpose(case.x, case.w, case.b, case.params)
    assert y.shape == expected.shape, f"y.shape={y.shape}, but should be {expected.shape}"
    np.testing.assert_array_equal(y, expected)  # small integers: exact


@FAST
@given(cases(), st.integers(0, 2**32 - 1))
def test_backward_matches_loop(case: Case, seed: int) -> None:
    shape = spec.conv_transpose_output_shape(case.x, case.w, None, **case.params._asdict())
    dy = np.random.default_rng(seed).integers(-3, 4, shape).astype(np.float64)
    got = reference.conv_transpose_backward(case.x, case.w, dy, **case.params._asdict())
    for name, a, e in zip(("dx", "dw", "db"), got, loop_conv_transpose_backward(case.x, case.w, dy, case.params)):
        assert a.shape == e.shape, f"{name}.shape={a.shape}, but should be {e.shape}"
        np.testing.assert_array_equal(a, e, err_msg=name)


@pytest.mark.parametrize(
    ("spatial", "kernel", "stride", "padding", "output_padding", "groups"),
    [
        ((12, 11), (2, 2), (2, 2), ((0, 0), (0, 0)), (0, 0), 1),  # the U-Net up-convolution: windows tile y
        ((12, 11), (2, 3), (2, 3), ((0, 0), (0, 0)), (1, 2), 2),  # tiling, with output_padding's untouched tail
        ((12, 11), (3, 3), (2, 2), ((1, 1), (1, 0)), (1, 0), 2),  # overlapping windows, padding
        ((3, 3), (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), 1),    # few positions per sample: batch-minor products
    ],
)
def test_layer_sized_calls_match_loop(
    spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[tuple[int, int], ...],
    output_padding: tuple[int, ...], groups: int,
) -> None:
    """Past 128 input positions per sample the backward runs per-sample products; tiling windows are one copy."""
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, (3, 2 * groups, *spatial)).astype(np.float64)
    w = rng.integers(-3, 4, (2 * groups, 2, *kernel)).astype(np.float64)
    b = rng.integers(-3, 4, 2 * groups).astype(np.float64)
    params = ConvTransposeParams(stride, padding, output_padding, (1, 1), groups)
    y = reference.conv_transpose_forward(x, w, b, **params._asdict())
    np.testing.assert_array_equal(y, loop_conv_transpose(x, w, b, params))
    dy = rng.integers(-3, 4, y.shape).astype(np.float64)
    got = reference.conv_transpose_backward(x, w, dy, **params._asdict())
    for name, a, e in zip(("dx", "dw", "db"), got, loop_conv_transpose_backward(x, w, dy, params)):
        np.testing.assert_array_equal(a, e, err_msg=name)


@FAST
@given(cases(max_batch=2), st.integers(0, 2**32 - 1))
@np.errstate(invalid="ignore")
def test_backward_at_nonfinite_x_matches_loop(case: Case, seed: int) -> None:
    """CONVT-C15: dw at NaN and ±inf in x is the scatter's, summed over the taps that land in [0, out) alone: a
    cropped tap meets no dy, so no 0 × NaN (the loop computes exactly the terms that exist)."""
    rng = np.random.default_rng(seed)
    x = case.x.copy()
    if x.size:
        flat = x.reshape(-1)
        flat[rng.integers(0, x.size, 3)] = rng.choice([np.nan, np.inf, -np.inf], 3)
    shape = spec.conv_transpose_output_shape(x, case.w, None, **case.params._asdict())
    dy = rng.integers(-3, 4, shape).astype(np.float64)
    got = reference.conv_transpose_backward(x, case.w, dy, **case.params._asdict())
    for name, a, e in zip(("dx", "dw", "db"), got, loop_conv_transpose_backward(x, case.w, dy, case.params)):
        np.testing.assert_array_equal(a, e, err_msg=name)  # small integers: exact, NaN and ±inf where the loop's


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@np.errstate(invalid="ignore")
def test_backward_at_a_nan_with_cropped_taps_in_every_dtype(dtype: str) -> None:
    """x = [nan, 1, 2], w = [1, 1], padding 1: x[0]'s first tap lands at -1, cropped, so dw[0] = 1 + 2 = 3
    (spec/docs/conv_transpose.md, CONVT-C15); in 2-D with groups and asymmetric padding the same per tap."""
    params = spec.conv_transpose_params((3,), (2,), padding=1)
    x, w = np.array([[[np.nan, 1.0, 2.0]]]).astype(dtype), np.ones((1, 1, 2)).astype(dtype)
    _, dw, _ = reference.conv_transpose_backward(x, w, np.ones((1, 1, 2)).astype(dtype), **params._asdict())
    assert dw.dtype == x.dtype, f"dw.dtype={dw.dtype}, but should be {x.dtype}"
    np.testing.assert_array_equal(dw.astype(np.float64), [[[3.0, np.nan]]])
    rng = np.random.default_rng(0)
    x2, w2 = rng.integers(-3, 4, (2, 4, 3, 4)).astype(np.float64), rng.integers(-3, 4, (4, 2, 2, 3)).astype(np.float64)
    x2[0, 1, 0, 0], x2[1, 2, 2, 3] = np.nan, np.inf
    p2 = spec.conv_transpose_params((3, 4), (2, 3), stride=(2, 1), padding=((1, 0), (2, 1)), output_padding=(1, 0),
                                    dilation=(1, 2), groups=2)
    dy2 = rng.integers(-3, 4, spec.conv_transpose_output_shape(x2, w2, None, **p2._asdict())).astype(np.float64)
    want = loop_conv_transpose_backward(x2, w2, dy2, p2)[1]
    got = reference.conv_transpose_backward(x2.astype(dtype), w2.astype(dtype), dy2.astype(dtype), **p2._asdict())[1]
    np.testing.assert_array_equal(got.astype(np.float64), want)  # integers below 2**8: exact in every dtype


@FAST
@given(cases(), st.integers(0, 2**32 - 1))
def test_forward_is_the_conv_input_gradient(case: Case, seed: int) -> None:
    """CONVT-C8: conv_transpose_forward(x, w) = conv_backward(u, w, x).dx for u of y's shape."""
    y = reference.conv_transpose_forward(case.x, case.w, None, **case.params._asdict())
    conv = matching_conv(case.params)
    conv_out = spec.conv_output_shape(y, case.w, None, **conv)
    assert conv_out[2:] >= case.x.shape[2:]
    u = np.random.default_rng(seed).standard_normal(y.shape)
    dx, _, _ = reference.conv_backward(u, case.w, extend(case.x, conv_out[2:]), **conv)
    np.testing.assert_array_equal(y, dx)


@FAST
@given(cases(), st.integers(0, 2**32 - 1))
def test_backward_is_convolution_and_its_weight_gradient(case: Case, seed: int) -> None:
    """CONVT-C8: dx = conv_forward(dy, w) (cropped), dw = conv_backward(dy, w, x).dw, db = sum of dy."""
    shape = spec.conv_transpose_output_shape(case.x, case.w, None, **case.params._asdict())
    dy = np.random.default_rng(seed).integers(-3, 4, shape).astype(np.float64)
    dx, dw, db = reference.conv_transpose_backward(case.x, case.w, dy, **case.params._asdict())
    conv = matching_conv(case.params)
    y_conv = reference.conv_forward(dy, case.w, None, **conv)
    np.testing.assert_array_equal(dx, y_conv[(slice(None), slice(None), *(slice(0, n) for n in case.x.shape[2:]))])
    _, dw_conv, _ = reference.conv_backward(dy, case.w, extend(case.x, y_conv.shape[2:]), **conv)
    np.testing.assert_array_equal(dw, dw_conv)
    np.testing.assert_array_equal(db, dy.sum(axis=(0, *range(2, dy.ndim))))


@FAST
@given(cases(max_batch=2), st.integers(0, 2**32 - 1))
def test_adjoint_inner_products(case: Case, seed: int) -> None:
    """<conv_transpose(x), v> = <x, conv(v)> in x, and <conv_transpose_w(x), v> = <w-part> in w (CONVT-C8)."""
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(case.x.shape), rng.standard_normal(case.w.shape)
    y = reference.conv_transpose_forward(x, w, None, **case.params._asdict())
    v = rng.standard_normal(y.shape)
    dx, dw, _ = reference.conv_transpose_backward(x, w, v, **case.params._asdict())
    scale = max(1.0, float(np.abs(y).sum() * np.abs(v).max(initial=0.0)))
    assert abs(np.vdot(y, v) - np.vdot(x, dx)) <= 1e-12 * scale
    assert abs(np.vdot(y, v) - np.vdot(w, dw)) <= 1e-12 * scale  # bilinear: y is linear in w as well


@settings(max_examples=20, deadline=None, database=None)
@given(cases(max_batch=1), st.integers(0, 2**32 - 1))
def test_gradients_match_finite_differences(case: Case, seed: int) -> None:
    """Central differences of <y, dy> along random directions (the map is bilinear: exact up to rounding)."""
    rng = np.random.default_rng(seed)
    kwargs = case.params._asdict()
    b = rng.standard_normal(case.w.shape[1] * case.params.groups)
    y = reference.conv_transpose_forward(case.x, case.w, b, **kwargs)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = reference.conv_transpose_backward(case.x, case.w, dy, **kwargs)
    h = 1e-3
    for grad, direction, shift in (
        (dx, rng.standard_normal(case.x.shape), lambda t: (case.x + t, case.w, b)),
        (dw, rng.standard_normal(case.w.shape), lambda t: (case.x, case.w + t, b)),
        (db, rng.standard_normal(b.shape), lambda t: (case.x, case.w, b + t)),
    ):
        plus = reference.conv_transpose_forward(*shift(h * direction), **kwargs)
        minus = reference.conv_transpose_forward(*shift(-h * direction), **kwargs)
        numeric = np.vdot(plus - minus, dy) / (2 * h)
        assert abs(numeric - np.vdot(grad, direction)) <= 1e-7 * max(1.0, abs(numeric))


def zero_inserted_convolution(x: F64, w: F64, p: ConvTransposeParams) -> F64:
    """The textbook construction: insert s - 1 zeros between the inputs, pad d·(k - 1) - p_before before and
    d·(k - 1) - p_after + output_padding after (cropping where negative), and convolve with stride 1 with the
    kernel flipped and its two channel axes swapped within each group."""
    ndim = x.ndim - 2
    up = np.zeros((*x.shape[:2], *((n - 1) * s + 1 for n, s in zip(x.shape[2:], p.stride))))
    up[(slice(None), slice(None), *(slice(None, None, s) for s in p.stride))] = x
    for axis, (k, d, (lo, hi), e) in enumerate(zip(w.shape[2:], p.dilation, p.padding, p.output_padding)):
        before, after = d * (k - 1) - lo, d * (k - 1) - hi + e
        widths = [(0, 0)] * up.ndim
        widths[axis + 2] = (max(before, 0), max(after, 0))
        up = np.pad(up, widths)
        crop = [slice(None)] * up.ndim
        crop[axis + 2] = slice(max(-before, 0), up.shape[axis + 2] - max(-after, 0))
        up = up[tuple(crop)]
    c_group, out_group = x.shape[1] // p.groups, w.shape[1]
    flipped = w[(slice(None), slice(None), *(slice(None, None, -1),) * ndim)]
    w_conv = np.concatenate([
        flipped[g * c_group:(g + 1) * c_group].swapaxes(0, 1) for g in range(p.groups)
    ])  # (G * O_g, C_g, *K)
    assert w_conv.shape[:2] == (p.groups * out_group, c_group)
    return reference.conv_forward(up, w_conv, None, stride=(1,) * ndim, padding=((0, 0),) * ndim, dilation=p.dilation,
                                  groups=p.groups)


@FAST
@given(cases())
def test_forward_is_a_stride_one_convolution_of_the_zero_inserted_input(case: Case) -> None:
    """The construction of the textbooks, against the scatter of CONVT-C3."""
    y = reference.conv_transpose_forward(case.x, case.w, None, **case.params._asdict())
    np.testing.assert_array_equal(y, zero_inserted_convolution(case.x, case.w, case.params))


def test_output_padding_resolves_the_ambiguous_size() -> None:
    """CONVT-C6: a stride-2 convolution maps 7 and 8 positions to 3; output_padding picks 8, adding a bias-only end."""
    x, w = np.ones((1, 1, 3)), np.ones((1, 1, 3))
    base = dict(stride=(2,), padding=((0, 0),), dilation=(1,), groups=1)
    y7 = reference.conv_transpose_forward(x, w, np.array([10.0]), output_padding=(0,), **base)
    y8 = reference.conv_transpose_forward(x, w, np.array([10.0]), output_padding=(1,), **base)
    assert y7[0, 0].tolist() == [11.0, 11.0, 12.0, 11.0, 12.0, 11.0, 11.0]
    assert y8[0, 0].tolist() == [11.0, 11.0, 12.0, 11.0, 12.0, 11.0, 11.0, 10.0]
    for length in (7, 8):
        conv = spec.conv_params((length,), (3,), stride=2)
        assert spec.conv_output_shape(np.zeros((1, 1, length)), w, None, **conv._asdict())[2:] == (3,)
    # With padding, output_padding first restores what the after-padding cropped: the full scatter's last element.
    cropped = dict(base, padding=((1, 1),))
    assert reference.conv_transpose_forward(x, w, None, output_padding=(1,), **cropped)[0, 0].tolist() == [
        1.0, 2.0, 1.0, 2.0, 1.0, 1.0]


def test_output_padding_below_dilation_with_stride_one() -> None:
    """output_padding may reach dilation - 1 with stride 1: the convolution back then has one more output."""
    x, w = np.arange(1.0, 4.0).reshape(1, 1, 3), np.array([[[1.0, 10.0]]])
    kwargs = dict(stride=(1,), padding=((0, 0),), output_padding=(1,), dilation=(2,), groups=1)
    y = reference.conv_transpose_forward(x, w, None, **kwargs)
    assert y[0, 0].tolist() == [1.0, 2.0, 13.0, 20.0, 30.0, 0.0]
    dx, _, _ = reference.conv_transpose_backward(x, w, np.ones_like(y), **kwargs)
    assert dx[0, 0].tolist() == [11.0, 11.0, 11.0]


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_empty_batch(ndim: int) -> None:
    params = spec.conv_transpose_params((3,) * ndim, (2,) * ndim, stride=2)
    x, w = np.zeros((0, 2, *(3,) * ndim)), np.ones((2, 3, *(2,) * ndim))
    y = reference.conv_transpose_forward(x, w, np.ones(3), **params._asdict())
    assert y.shape == (0, 3, *(6,) * ndim)
    dx, dw, db = reference.conv_transpose_backward(x, w, y, **params._asdict())
    assert dx.shape == x.shape and not dw.any() and not db.any() and dw.shape == w.shape and db.shape == (3,)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_dtype_is_kept_and_close_to_float64(dtype: str) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    params = spec.conv_transpose_params((5, 5), (3, 3), stride=2, padding=1, output_padding=1, groups=2)
    exact = reference.conv_transpose_forward(x.astype(dtype).astype(np.float64), w.astype(dtype).astype(np.float64), None,
                                             **params._asdict())
    y = reference.conv_transpose_forward(x.astype(dtype), w.astype(dtype), None, **params._asdict())
    assert y.dtype == np.dtype(dtype)
    magnitude = reference.conv_transpose_forward(np.abs(x), np.abs(w), None, **params._asdict())
    bound = spec.elementwise_bound(magnitude, 2 * 9, dtype)
    assert (np.abs(y.astype(np.float64) - exact) <= bound).all()


def test_results_are_fresh_and_inputs_untouched() -> None:
    x, w = np.ones((1, 1, 1)), np.ones((1, 1, 1))
    params = spec.conv_transpose_params((1,), (1,))
    copies = (x.copy(), w.copy())
    y = reference.conv_transpose_forward(x, w, None, **params._asdict())
    dx, dw, _ = reference.conv_transpose_backward(x, w, y, **params._asdict())
    assert not any(np.shares_memory(r, a) for r in (y, dx, dw) for a in (x, w))
    assert np.array_equal(x, copies[0]) and np.array_equal(w, copies[1])


def _message(call: object) -> str:
    try:
        call()
    except spec.SpecError as err:
        return str(err)
    return "no error"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "no error"),
        ({"output_padding": (2,)}, "output_padding[0]=2 is invalid: must be < max(stride, dilation) = 2"),
        ({"output_padding": (-1,)}, "output_padding[0]=-1 is invalid: must be >= 0"),
        ({"output_padding": 1}, "output_padding=1 is invalid: must be a tuple of ints, one per spatial dim (1)"),
        ({"padding": ((4, 4),)}, "output size of spatial dim 0=0 is invalid: must be >= 1 "
                                 "(input 3, padding (4, 4), dilated kernel 3, stride 2)"),
        ({"stride": (0,)}, "stride[0]=0 is invalid: must be >= 1"),
        ({"groups": 3}, "groups=3 is invalid: must divide C_in=4"),
        ({"groups": 0}, "groups=0 is invalid: must be an int >= 1"),
        ({"w": np.zeros((2, 3, 3))}, "w.shape[0]=2 is invalid: must equal C_in = x.shape[1] = 4"),
        ({"w": np.zeros((4, 0, 3))}, "w.shape[1]=0 is invalid: must be >= 1 (C_out / groups)"),
        ({"b": np.zeros(3)}, "b.shape=(3,) is invalid: must be (C_out,) = (6,)"),
        ({"x": np.zeros((1, 4, 0))}, "x.shape[2]=0 is invalid: must be >= 1"),
        ({"w": np.zeros((4, 3, 3), dtype=np.float32)}, "w.dtype=dtype('float32') is invalid: must equal x.dtype (float64)"),
    ],
)
def test_invalid_parameters_raise_naming_the_parameter(changes: dict[str, object], message: str) -> None:
    """CONVT-C10."""
    call: dict[str, object] = {
        "x": np.zeros((1, 4, 3)), "w": np.zeros((4, 3, 3)), "b": np.zeros(6),
        "stride": (2,), "padding": ((1, 1),), "output_padding": (1,), "dilation": (1,), "groups": 2, **changes,
    }
    assert _message(lambda: reference.conv_transpose_forward(**call)) == message


def test_backward_checks_dy() -> None:
    x, w = np.zeros((1, 1, 3)), np.zeros((1, 1, 2))
    params = spec.conv_transpose_params((3,), (2,))
    assert _message(lambda: reference.conv_transpose_backward(x, w, np.zeros((1, 1, 3)), **params._asdict())) == (
        "dy.shape=(1, 1, 3) is invalid: must equal the forward output shape (1, 1, 4)")


def test_params_from_output_size_and_their_errors() -> None:
    assert spec.conv_transpose_params((7,), (3,), stride=2, padding=1, output_size=(14,)).output_padding == (1,)
    assert _message(lambda: spec.conv_transpose_params((7,), (3,), stride=2, padding="same")).startswith(
        "padding='same' is invalid")
    assert _message(lambda: spec.conv_transpose_params((7,), (3,), stride=2, output_size=(12,))) == (
        "output_size=12 is invalid: must be in [15, 16] for n=7, k=3, stride 2, padding (0, 0), dilation 1")


def test_non_contiguous_inputs() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 3, 4)).transpose(0, 1, 3, 2)[:, ::2]  # (2, 3, 4, 3), strided and transposed
    w = rng.standard_normal((2, 3, 3, 2)).transpose(1, 0, 3, 2)  # (3, 2, 2, 3), transposed
    params = spec.conv_transpose_params((4, 3), (2, 3), stride=(2, 1), padding=1, output_padding=(1, 0), groups=3)
    y = reference.conv_transpose_forward(x, w, None, **params._asdict())
    np.testing.assert_array_equal(y, reference.conv_transpose_forward(x.copy(), w.copy(), None, **params._asdict()))
    dy = rng.standard_normal(y.shape)[:, ::-1]
    for got, want in zip(reference.conv_transpose_backward(x, w, dy, **params._asdict()),
                         reference.conv_transpose_backward(x.copy(), w.copy(), dy.copy(), **params._asdict())):
        np.testing.assert_array_equal(got, want)
        assert got.flags.writeable


@FAST
@given(cases(), st.integers(0, 2**32 - 1))
def test_metamorphic_relations(case: Case, seed: int) -> None:
    """Batch independence, linearity in x, and translation: one more (zero) input position in front shifts the
    output by one stride (no padding or output_padding, so nothing is cropped)."""
    rng = np.random.default_rng(seed)
    kwargs = case.params._asdict()
    y = reference.conv_transpose_forward(case.x, case.w, case.b, **kwargs)
    for n in range(case.x.shape[0]):
        np.testing.assert_array_equal(y[n:n + 1], reference.conv_transpose_forward(case.x[n:n + 1], case.w, case.b, **kwargs))
    u = rng.integers(-3, 4, case.x.shape).astype(np.float64)
    np.testing.assert_array_equal(
        reference.conv_transpose_forward(case.x + 2 * u, case.w, None, **kwargs),
        reference.conv_transpose_forward(case.x, case.w, None, **kwargs)
        + 2 * reference.conv_transpose_forward(u, case.w, None, **kwargs),
    )
    ndim = case.x.ndim - 2
    plain = dict(kwargs, padding=((0, 0),) * ndim, output_padding=(0,) * ndim)
    y0 = reference.conv_transpose_forward(case.x, case.w, None, **plain)
    front = np.pad(case.x, [(0, 0), (0, 0), (1, 0)] + [(0, 0)] * (ndim - 1))  # one zero position before dim 0
    shifted = reference.conv_transpose_forward(front, case.w, None, **plain)
    s = case.params.stride[0]
    assert shifted.shape[2] == y0.shape[2] + s
    np.testing.assert_array_equal(shifted[:, :, s:], y0)
    assert not shifted[:, :, :s].any()

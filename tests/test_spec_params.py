"""spec.params and spec.errors: parameter normalisation, output shapes and every SpecError path."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spec
from spec import SpecError

FAST = settings(max_examples=200, deadline=None, database=None)


def raised(call: Callable[[], object]) -> SpecError:
    """The SpecError ``call`` raises; fails the test if it raises nothing."""
    __tracebackhide__ = True
    with pytest.raises(SpecError) as info:
        call()
    return info.value


def assert_names(err: SpecError, parameter: str, requirement: str) -> None:
    __tracebackhide__ = True
    assert err.parameter == parameter, f"err.parameter={err.parameter!r}, but should be {parameter!r} [{err}]"
    assert str(err).startswith(f"{parameter}="), str(err)
    assert requirement in err.requirement, f"{requirement!r} not in {err.requirement!r}"


# ---- the error type -------------------------------------------------------------------------------------


def test_spec_error_is_a_value_error_with_fields() -> None:
    err = SpecError("stride[1]", 0, "must be >= 1")
    assert isinstance(err, ValueError)
    assert (err.parameter, err.value, err.requirement) == ("stride[1]", 0, "must be >= 1")
    assert str(err) == "stride[1]=0 is invalid: must be >= 1"


def test_spec_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(SpecError("w.shape", (1, 2), "must be (3,)")))
    assert isinstance(err, SpecError)
    assert (err.parameter, err.value, err.requirement) == ("w.shape", (1, 2), "must be (3,)")


def test_unsupported_error_is_not_a_spec_error() -> None:
    assert issubclass(spec.UnsupportedError, NotImplementedError)
    assert not issubclass(spec.UnsupportedError, SpecError)


# ---- conv_params / pool_params --------------------------------------------------------------------------


def test_conv_params_normalises() -> None:
    p = spec.conv_params((28, 28), (4, 4), stride=2)
    assert p == spec.ConvParams((2, 2), ((0, 0), (0, 0)), (1, 1), 1)
    p = spec.conv_params((6, 7), (4, 3), stride=(1, 2), padding="same", dilation=(1, 1), groups=3)
    assert p.padding == ((1, 2), (1, 1)) and p.stride == (1, 2) and p.groups == 3


@pytest.mark.parametrize(
    ("kwargs", "parameter", "requirement"),
    [
        ({"stride": 0}, "stride", ">= 1"),
        ({"stride": (1, 0)}, "stride[1]", ">= 1"),
        ({"dilation": (0, 1)}, "dilation[0]", ">= 1"),
        ({"padding": -1}, "padding", ">= 0"),
        ({"padding": "full"}, "padding", "'valid', 'same' or 'same_lower'"),
        ({"groups": 0}, "groups", ">= 1"),
        ({"groups": True}, "groups", "int >= 1"),
        ({"groups": 2.0}, "groups", "int >= 1"),
    ],
)
def test_conv_params_errors(kwargs: dict[str, Any], parameter: str, requirement: str) -> None:
    assert_names(raised(lambda: spec.conv_params((5, 5), (3, 3), **kwargs)), parameter, requirement)


def test_conv_params_kernel_error() -> None:
    assert_names(raised(lambda: spec.conv_params((5, 5), (3, 0))), "kernel_size[1]", ">= 1")


def test_pool_params_defaults_stride_to_the_kernel() -> None:
    p = spec.pool_params((9, 9), (3, 2))
    assert p.stride == (3, 2)
    assert spec.pool_params((9, 9), 3, stride=1).stride == (1, 1)
    assert p.count_include_pad is True and p.ceil_mode is False
    assert "count_include_pad" not in p.max_pool_kwargs()
    assert set(p.max_pool_kwargs()) == {"kernel_size", "stride", "padding", "dilation", "ceil_mode"}


def test_pool_params_same_padding_uses_the_default_stride() -> None:
    p = spec.pool_params((7,), 3, padding="same")   # stride 3: out = ceil(7 / 3) = 3, total = 2*3 + 3 - 7 = 2
    assert p.padding == ((1, 1),)
    assert spec.output_size(7, 3, stride=3, padding=p.padding[0]) == 3


def test_flags_must_be_bools() -> None:
    assert spec.check_flag(np.bool_(True), "ceil_mode") is True
    assert_names(raised(lambda: spec.pool_params((5,), 2, ceil_mode=1)), "ceil_mode", "must be a bool")  # type: ignore[arg-type]
    assert_names(
        raised(lambda: spec.pool_params((5,), 2, count_include_pad=0)),  # type: ignore[arg-type]
        "count_include_pad", "must be a bool",
    )
    assert_names(raised(lambda: spec.pool_params((5,), 0)), "kernel_size", ">= 1")
    assert_names(raised(lambda: spec.pool_params((5,), 2, stride=(0,))), "stride[0]", ">= 1")


# ---- check_array / check_dy -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", spec.DTYPES)
def test_check_array_accepts_the_three_dtypes(dtype: str) -> None:
    a = np.zeros((1, 1, 3), dtype=dtype)
    assert spec.check_array("x", a, ndim=(3,)) is a


@pytest.mark.parametrize("dtype", ["int64", "int8", "bool", "complex128", "longdouble", "object"])
def test_check_array_rejects_other_dtypes(dtype: str) -> None:
    if np.dtype(dtype) == np.float64:
        pytest.skip("longdouble is float64 on this platform")
    err = raised(lambda: spec.check_array("x", np.zeros((1, 1, 3), dtype=dtype), ndim=(3,)))
    assert_names(err, "x.dtype", "floating dtype")


def test_check_array_rejects_non_arrays_and_ranks() -> None:
    assert_names(raised(lambda: spec.check_array("w", [[1.0]], ndim=(2,))), "type(w)", "numpy.ndarray")
    assert_names(raised(lambda: spec.check_array("x", np.zeros((2, 2)), ndim=(3, 4, 5))), "x.ndim", "(3, 4, 5)")


def test_check_dy() -> None:
    dy = np.zeros((1, 3))
    assert spec.check_dy(dy, (1, 3), np.dtype("float64")) is dy
    assert_names(raised(lambda: spec.check_dy(np.zeros((1, 2)), (1, 3), np.dtype("float64"))), "dy.shape", "(1, 3)")
    assert_names(raised(lambda: spec.check_dy(np.zeros((1, 3, 1)), (1, 3), np.dtype("float64"))), "dy.ndim", "(2,)")
    assert_names(
        raised(lambda: spec.check_dy(np.zeros((1, 3), np.float32), (1, 3), np.dtype("float64"))), "dy.dtype", "float64"
    )


# ---- conv_output_shape ----------------------------------------------------------------------------------

X = np.zeros((2, 4, 6, 5))
W = np.zeros((6, 2, 3, 2))
B = np.zeros(6)
CONV_OK: dict[str, Any] = {"stride": (1, 2), "padding": ((0, 1), (1, 0)), "dilation": (1, 1), "groups": 2}


def test_conv_output_shape() -> None:
    # dim 0: (6 + 1 - 3) // 1 + 1 = 5; dim 1: (5 + 1 - 2) // 2 + 1 = 3
    assert spec.conv_output_shape(X, W, B, **CONV_OK) == (2, 6, 5, 3)
    assert spec.conv_output_shape(X[:0], W, None, **CONV_OK) == (0, 6, 5, 3)


@pytest.mark.parametrize(
    ("x", "w", "b", "changes", "parameter", "requirement"),
    [
        (X, W, B, {"stride": (1, 0)}, "stride[1]", ">= 1"),
        (X, W, B, {"stride": 1}, "stride", "tuple of ints"),
        (X, W, B, {"stride": (1,)}, "stride", "one entry per spatial dim (2)"),
        (X, W, B, {"dilation": (0, 1)}, "dilation[0]", ">= 1"),
        (X, W, B, {"padding": ((0, -1), (0, 0))}, "padding[0][1]", ">= 0"),
        (X, W, B, {"padding": 1}, "padding", "(before, after) pair"),
        (X, W, B, {"padding": "same"}, "padding", "(before, after) pair"),
        (X, W, B, {"padding": (1, 1)}, "padding[0]", "(before, after) pair"),
        (X, W, B, {"padding": ((0, 0),)}, "padding", "one entry per spatial dim (2)"),
        (X, W, B, {"groups": 0}, "groups", ">= 1"),
        (X, W, B, {"groups": 3}, "groups", "must divide C_in=4"),
        (X, np.zeros((6, 1, 3, 2)), B, {"groups": 4}, "groups", "must divide C_out=6"),
        (X, np.zeros((6, 4, 3, 2)), B, {}, "w.shape[1]", "C_in / groups = 2"),
        (X, np.zeros((6, 2, 3, 0)), B, {}, "w.shape", "kernel sizes must be >= 1"),
        (X, np.zeros((0, 2, 3, 2)), None, {}, "C_out (w.shape[0])", ">= 1"),
        (np.zeros((2, 0, 6, 5)), W, B, {}, "C_in", ">= 1"),
        (X, W, np.zeros(5), {}, "b.shape", "(C_out,) = (6,)"),
        (X, W, np.zeros((6, 1)), {}, "b.ndim", "(1,)"),
        (X[0, 0], W, B, {}, "x.ndim", "(3, 4, 5)"),
        (X[..., None], W, B, {}, "w.ndim", "(5,)"),
        (X, W[..., None], B, {}, "w.ndim", "(4,)"),
        (X.astype(np.int32), W, B, {}, "x.dtype", "floating dtype"),
        (X, W.astype(np.float32), B, {}, "w.dtype", "must equal x.dtype (float64)"),
        (X, W, B.astype(np.float16), {}, "b.dtype", "must equal x.dtype (float64)"),
        (X, np.zeros((6, 2, 8, 2)), B, {}, "output size of spatial dim 0", ">= 1"),
        (X, W, B, {"dilation": (1, 6)}, "output size of spatial dim 1", ">= 1"),
        (X.tolist(), W, B, {}, "type(x)", "numpy.ndarray"),
    ],
)
def test_conv_output_shape_errors(
    x: Any, w: Any, b: Any, changes: dict[str, Any], parameter: str, requirement: str
) -> None:
    err = raised(lambda: spec.conv_output_shape(x, w, b, **{**CONV_OK, **changes}))
    assert_names(err, parameter, requirement)


@st.composite
def conv_shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], spec.ConvParams]:
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    spatial = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    params = spec.conv_params(
        spatial, kernel,
        stride=tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))),
        padding=[(p[0], p[1]) for p in draw(st.lists(st.lists(st.integers(0, 3), min_size=2, max_size=2),
                                                  min_size=ndim, max_size=ndim))],
        dilation=tuple(draw(st.lists(st.integers(1, 2), min_size=ndim, max_size=ndim))),
        groups=groups,
    )
    x_shape = (draw(st.integers(0, 3)), groups * draw(st.integers(1, 3)), *spatial)
    w_shape = (groups * draw(st.integers(1, 3)), x_shape[1] // groups, *kernel)
    return x_shape, w_shape, params


@FAST
@given(conv_shapes())
def test_conv_output_shape_matches_output_size(case: tuple[tuple[int, ...], tuple[int, ...], spec.ConvParams]) -> None:
    x_shape, w_shape, p = case
    sizes = [
        spec.output_size(n, k, stride=s, padding=pad, dilation=d)
        for n, k, s, pad, d in zip(x_shape[2:], w_shape[2:], p.stride, p.padding, p.dilation)
    ]
    x, w = np.zeros(x_shape), np.zeros(w_shape)
    if min(sizes) < 1:
        assert_names(raised(lambda: spec.conv_output_shape(x, w, None, **p._asdict())), "output size of spatial dim "
                     f"{sizes.index(min(sizes))}", ">= 1")
    else:
        assert spec.conv_output_shape(x, w, None, **p._asdict()) == (x_shape[0], w_shape[0], *sizes)


# ---- pool_output_shape ----------------------------------------------------------------------------------

POOL_OK: dict[str, Any] = {"kernel_size": (2, 3), "stride": (2, 1), "padding": ((0, 0), (1, 1)), "dilation": (1, 2),
                           "ceil_mode": False}


def test_pool_output_shape() -> None:
    x = np.zeros((3, 2, 5, 4))
    # dim 0: (5 - 2) // 2 + 1 = 2 (ceil: 3); dim 1: (4 + 2 - 4 - 1) // 1 + 1 = 2
    assert spec.pool_output_shape(x, **POOL_OK) == (3, 2, 2, 2)
    assert spec.pool_output_shape(x, **{**POOL_OK, "ceil_mode": True}) == (3, 2, 3, 2)


@pytest.mark.parametrize(
    ("x", "changes", "parameter", "requirement"),
    [
        (np.zeros((1, 2, 5, 4)), {"kernel_size": (0, 3)}, "kernel_size[0]", ">= 1"),
        (np.zeros((1, 2, 5, 4)), {"kernel_size": 2}, "kernel_size", "tuple of ints"),
        (np.zeros((1, 2, 5, 4)), {"stride": (2, 0)}, "stride[1]", ">= 1"),
        (np.zeros((1, 2, 5, 4)), {"dilation": (1, 0)}, "dilation[1]", ">= 1"),
        (np.zeros((1, 2, 5, 4)), {"padding": ((0, 0), (-1, 1))}, "padding[1][0]", ">= 0"),
        (np.zeros((1, 2, 5, 4)), {"ceil_mode": 0}, "ceil_mode", "bool"),
        (np.zeros((1, 2, 5, 4)), {"kernel_size": (6, 3)}, "output size of spatial dim 0", ">= 1"),
        (np.zeros((1, 0, 5, 4)), {}, "C", ">= 1"),
        (np.zeros((5, 4)), {}, "x.ndim", "(3, 4, 5)"),
        (np.zeros((1, 2, 5, 4), dtype=np.uint8), {}, "x.dtype", "floating dtype"),
    ],
)
def test_pool_output_shape_errors(x: Any, changes: dict[str, Any], parameter: str, requirement: str) -> None:
    assert_names(raised(lambda: spec.pool_output_shape(x, **{**POOL_OK, **changes})), parameter, requirement)


# ---- linear_output_shape --------------------------------------------------------------------------------


def test_linear_output_shape() -> None:
    assert spec.linear_output_shape(np.zeros((4, 784)), np.zeros((100, 784)), np.zeros(100)) == (4, 100)
    assert spec.linear_output_shape(np.zeros((0, 3)), np.zeros((2, 3)), None) == (0, 2)


@pytest.mark.parametrize(
    ("x", "w", "b", "parameter", "requirement"),
    [
        (np.zeros((4, 3)), np.zeros((3, 2)), None, "w.shape[1]", "in_features = x.shape[1] = 3"),
        (np.zeros((4, 3)), np.zeros((2, 3)), np.zeros(3), "b.shape", "(out_features,) = (2,)"),
        (np.zeros((4, 0)), np.zeros((2, 0)), None, "x.shape[1]", ">= 1"),
        (np.zeros((4, 3)), np.zeros((0, 3)), None, "w.shape[0]", ">= 1"),
        (np.zeros((4, 3, 1)), np.zeros((2, 3)), None, "x.ndim", "(2,)"),
        (np.zeros((4, 3)), np.zeros(3), None, "w.ndim", "(2,)"),
        (np.zeros((4, 3), np.float16), np.zeros((2, 3), np.float32), None, "w.dtype", "float16"),
        (np.zeros((4, 3)), np.zeros((2, 3)), np.zeros(2, np.float32), "b.dtype", "float64"),
        (np.zeros((4, 3), np.int64), np.zeros((2, 3), np.int64), None, "x.dtype", "floating dtype"),
    ],
)
def test_linear_output_shape_errors(x: Any, w: Any, b: Any, parameter: str, requirement: str) -> None:
    assert_names(raised(lambda: spec.linear_output_shape(x, w, b)), parameter, requirement)


def test_worked_example_shapes() -> None:
    conv = spec.conv_output_shape(np.zeros((1, 1, 28, 28)), np.zeros((16, 1, 4, 4)), None,
                                  stride=(2, 2), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)
    assert conv == (1, 16, 13, 13)
    features = math.prod(conv[1:])
    assert features == 2704
    assert spec.linear_output_shape(np.zeros((1, features)), np.zeros((10, features)), None) == (1, 10)

"""spec.accuracy and its use by the suite: the bounds, the checkable range, the precision diagnosis.

The cases the issue named are here verbatim: an all-zero float16 dW at K = 3600
must fail (or be reported as not checked, never passed), one float16 output off
by 1.0 must fail under the fast class too, and TF32 arithmetic in a float32
convolution must fail with the precision named.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

import reference
import spec
from conformance.compare import Unchecked, Violation, backward_bounds, compare, expected_forward, forward_bound
from conformance.strategies import Case, Inputs, Problem, conv_problems, linear_problems, pool_problems
from spec import Capabilities
from spec.accuracy import checkable_terms, max_abs_ratio, round_to_bits, ulps

FAST = settings(max_examples=100, deadline=None, database=None)
F16_ACC = Capabilities(accumulation={"float16": "float16", "bfloat16": "bfloat16"})


@pytest.mark.parametrize(("dtype", "u"), [("float64", 2.0**-53), ("float32", 2.0**-24), ("float16", 2.0**-11),
                                          ("bfloat16", 2.0**-8), ("tf32", 2.0**-11)])
def test_unit_roundoff(dtype: str, u: float) -> None:
    assert spec.unit_roundoff(dtype) == u
    if dtype != "tf32":
        assert spec.unit_roundoff(np.dtype(dtype)) == u


def test_gamma() -> None:
    u = 2.0**-24
    assert spec.gamma(10, u) == pytest.approx(10 * u / (1 - 10 * u), rel=1e-15)
    assert spec.gamma(0, u) == 0.0
    assert spec.gamma(2048, 2.0**-11) == math.inf       # k u = 1: no bound
    values = [spec.gamma(k, u) for k in range(1, 100)]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_probabilistic_bound_grows_like_sqrt_k() -> None:
    u = 2.0**-11
    small, large = spec.accuracy.gamma_tilde(100, 2.0**-24), spec.accuracy.gamma_tilde(10_000, 2.0**-24)
    assert 10 < large / small < 13                       # sqrt(100) = 10, times the slowly growing lambda
    # lambda meets the stated failure probability: 2 K exp(-lambda^2 (1 - u)^2 / 2) = P
    lam = spec.accuracy.probabilistic_lambda(3600, u)
    assert 2 * 3600 * math.exp(-(lam * (1 - u)) ** 2 / 2) == pytest.approx(spec.accuracy.FAILURE_PROBABILITY)
    # the coefficient takes the smaller bound: rigorous for short sums, probabilistic for long ones
    assert spec.accuracy.accumulation_coefficient(8, u) == spec.gamma(8, u)
    assert spec.accuracy.accumulation_coefficient(3600, u) == spec.accuracy.gamma_tilde(3600, u) < spec.gamma(3600, u)


def test_elementwise_bound_shape_and_monotonicity() -> None:
    magnitude = np.array([[0.0, 1.0], [2.0, 1e3]])
    bound = spec.elementwise_bound(magnitude, 9, "float32")
    assert bound.shape == magnitude.shape
    assert np.all(bound > 0)                             # the underflow term keeps 0 magnitudes positive
    assert bound[0, 1] < bound[1, 0] < bound[1, 1]
    assert np.all(spec.elementwise_bound(magnitude, 10, "float32") > bound)
    assert np.all(spec.elementwise_bound(magnitude, 9, "float16") > bound)
    assert np.all(spec.elementwise_bound(magnitude, 9, "float16", accumulation="float16")
                  > spec.elementwise_bound(magnitude, 9, "float16"))
    assert np.all(spec.elementwise_bound(magnitude, 9, "float64") < bound)


def test_elementwise_bound_value() -> None:
    k, u, u16 = 16, 2.0**-24, 2.0**-11
    expected = spec.gamma(k + 2, u) * 16.0 + spec.gamma(k + 2, 2.0**-53) * 16.0 + 2 * (k + 2) * 2.0**-149 + 2.0**-149
    assert float(spec.elementwise_bound(np.array([16.0]), k, "float32")[0]) == pytest.approx(expected, rel=1e-12)
    # float16 summed in float32: float32's accumulation, then one rounding of the exact result to float16
    half = (spec.gamma(k + 2, u) * (1 + u16) + spec.gamma(k + 2, 2.0**-53)) * 16.0 + u16 * 3.0
    tiny = 2 * (k + 2) * 2.0**-149 + 2.0**-24
    got = float(spec.elementwise_bound(np.array([16.0]), k, "float16", result=np.array([-3.0]))[0])
    assert got == pytest.approx(half + tiny, rel=1e-12)


def test_elementwise_bound_is_infinite_only_without_any_bound() -> None:
    assert np.isinf(spec.elementwise_bound(np.array([1.0]), 10**9, "float16", accumulation="bfloat16")).all()
    assert np.isfinite(spec.elementwise_bound(np.array([1.0]), 5000, "float16", accumulation="float16")).all()


@FAST
@given(k=st.integers(1, 400), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(["float32", "float16", "bfloat16"]))
def test_elementwise_bound_holds_for_sequential_dot_products_in_the_dtype(k: int, seed: int, dtype: str) -> None:
    """A left-to-right dot product with every operation in the dtype is within the bound of that accumulation."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(k).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    acc = np.zeros((), dtype=dtype)
    for ai, bi in zip(a, b):
        acc = (acc + ai * bi).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = float(np.dot(a64, b64))
    magnitude = np.array([float(np.dot(np.abs(a64), np.abs(b64)))])
    bound = spec.elementwise_bound(magnitude, k, dtype, result=np.array([exact]), accumulation=dtype)[0]
    assert abs(float(acc) - exact) <= bound


@settings(max_examples=20, deadline=None, database=None)
@given(k=st.integers(2048, 6000), seed=st.integers(0, 2**32 - 1))
def test_probabilistic_bound_holds_where_the_rigorous_one_is_infinite(k: int, seed: int) -> None:
    """float16 accumulated in float16 over K >= 2048 terms: gamma_K is infinite, the probabilistic bound holds."""
    rng = np.random.default_rng(seed)
    products = (rng.standard_normal(k) * rng.standard_normal(k)).astype(np.float16)
    acc = np.zeros((), dtype=np.float16)
    for p in products:
        acc = (acc + p).astype(np.float16)
    exact = float(products.astype(np.float64).sum())
    magnitude = np.array([float(np.abs(products.astype(np.float64)).sum())])
    assert spec.gamma(k, 2.0**-11) == math.inf
    bound = spec.elementwise_bound(magnitude, k, "float16", result=np.array([exact]), accumulation="float16")[0]
    assert abs(float(acc) - exact) <= bound < magnitude[0]


def test_bound_is_tight_for_one_rounding() -> None:
    """One product rounded to float16 (summed in float32) reaches at least 40% of its bound: no idle slack."""
    x = np.array([[1.5 + 2.0**-10]], dtype=np.float16)
    w = np.array([[1.0 + 2.0**-10]], dtype=np.float16)
    y16 = reference.linear_forward(x, w, None)
    exact = (1.5 + 2.0**-10) * (1.0 + 2.0**-10)
    bound = spec.elementwise_bound(np.array([exact]), 1, "float16", result=np.array([exact]))[0]
    assert 0.4 * bound <= abs(float(y16[0, 0]) - exact) <= bound


def test_checkable_terms() -> None:
    assert checkable_terms("float16", "float16") == 121 and checkable_terms("bfloat16", "bfloat16") == 22
    assert checkable_terms("float16") > 900_000 and checkable_terms("float64") == 2**30
    for dtype, acc in (("float16", "float16"), ("bfloat16", "bfloat16"), ("float32", None)):
        k = checkable_terms(dtype, acc)
        u = spec.unit_roundoff(acc or dtype)
        assert spec.accuracy.accumulation_coefficient(k + 2, u) * math.sqrt(k) <= 0.5
        assert spec.accuracy.accumulation_coefficient(k + 3, u) * math.sqrt(k + 1) > 0.5


def test_normwise_bound() -> None:
    eps = float(np.finfo(np.float32).eps)
    bound = spec.normwise_bound(np.array([1.0, 3.0]), 256, "float32")
    assert bound.tolist() == pytest.approx([4 * eps * 8, 12 * eps * 8], rel=1e-12)
    # fewer than two points: log2 is clamped at 1
    assert spec.normwise_bound(np.array([1.0]), 1, "float64")[0] == 4 * float(np.finfo(np.float64).eps)
    # float16 transforms in float32, plus the final rounding of the slice to float16
    half = spec.normwise_bound(np.array([1.0]), 256, "float16", result_norms=np.array([2.0]))[0]
    assert half == pytest.approx(4 * eps * 8 + 2.0**-11 * 2.0, rel=1e-12)


def test_ulps_and_rounding_helpers() -> None:
    assert float(ulps(2.0**-23, 1.0, "float32")) == 1.0
    assert float(ulps(2.0**-7, 1.5, "bfloat16")) == 1.0
    assert float(ulps(2.0**-24, 0.0, "float16")) == 1.0              # smallest subnormal at 0
    assert round_to_bits(np.array([1.0 + 2.0**-9]), 8).tolist() == [1.0]
    assert round_to_bits(np.array([3.0 + 2.0**-6, -0.0]), 8).tolist() == [3.0 + 2.0**-6, 0.0]


def test_max_abs_ratio() -> None:
    assert max_abs_ratio(np.array([0.0, 1.0, -3.0]), np.array([0.0, 2.0, 4.0])) == 0.75
    assert max_abs_ratio(np.array([1e-300]), np.array([0.0])) == math.inf
    assert max_abs_ratio(np.array([]), np.array([])) == 0.0


# --------------------------------------------------------------------------- the suite's use of the model

def _conv_case(x: np.ndarray[Any, Any], w: np.ndarray[Any, Any], dy: np.ndarray[Any, Any] | None = None,
               padding: int = 0) -> Case:
    rank = x.ndim - 2
    params = {"stride": (1,) * rank, "padding": ((padding, padding),) * rank, "dilation": (1,) * rank, "groups": 1}
    problem = Problem("conv", x.dtype.name, x.shape, w.shape, False, params)
    if dy is None:
        dy = np.zeros(problem.output_shape(), dtype=x.dtype)
    return Case(problem, Inputs(x, w, None, dy, "floats"))


@pytest.mark.parametrize("dtype", spec.DTYPES)
@pytest.mark.parametrize("accuracy", ["direct", "fast"])
def test_one_border_output_off_by_its_typical_size_fails_in_every_dtype(dtype: str, accuracy: str) -> None:
    """The issue's case: 24x24, 3x3, pad 1, one corner output off by the result's typical magnitude."""
    rng = np.random.default_rng(0)
    case = _conv_case(rng.standard_normal((1, 1, 24, 24)).astype(dtype),
                      rng.standard_normal((1, 1, 3, 3)).astype(dtype), padding=1)
    exact = expected_forward(case)
    actual = exact.copy()
    actual[0, 0, 0, 0] += float(np.sqrt(np.mean(exact ** 2)))
    bound = forward_bound(case, Capabilities(accuracy=accuracy))  # type: ignore[arg-type]
    with pytest.raises(Violation):
        compare("forward-values", "y", actual.astype(dtype), exact, bound, case, [])
    compare("forward-values", "y", exact.astype(dtype), exact, bound, case, [])   # the correctly rounded one passes


def _long_dw_case(dtype: str) -> Case:
    """dW of a 1x1 convolution over N = 4 samples of 30x30: K = 3600 terms."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1, 30, 30)).astype(dtype)
    w = rng.standard_normal((1, 1, 1, 1)).astype(dtype)
    dy = rng.standard_normal((4, 1, 30, 30)).astype(dtype)
    return _conv_case(x, w, dy)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_all_zero_dw_at_k_3600_fails_under_the_default_accumulation(dtype: str) -> None:
    case = _long_dw_case(dtype)
    dw = reference.conv_backward(*(np.asarray(a, np.float64) for a in (case.inputs.x, case.inputs.w, case.inputs.dy)),
                                 **case.problem.params)[1]
    bounds = backward_bounds(case, Capabilities())
    with pytest.raises(Violation, match="dw differs"):
        compare("backward-values", "dw", np.zeros_like(dw).astype(dtype), dw, bounds["dw"], case, [])
    compare("backward-values", "dw", dw.astype(dtype), dw, bounds["dw"], case, [])


def test_all_zero_dw_at_k_3600_is_not_checked_under_float16_accumulation() -> None:
    """With float16 sums the bound at K = 3600 exceeds |dW|: reported as not checked, never passed."""
    case = _long_dw_case("float16")
    dw = reference.conv_backward(*(np.asarray(a, np.float64) for a in (case.inputs.x, case.inputs.w, case.inputs.dy)),
                                 **case.problem.params)[1]
    with pytest.raises(Unchecked, match="not checked"):
        compare("backward-values", "dw", np.zeros_like(dw, dtype=np.float16), dw,
                backward_bounds(case, F16_ACC)["dw"], case, [])


@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data(), dtype=st.sampled_from(["float16", "bfloat16"]))
def test_generated_reductions_stay_checkable_under_narrow_accumulation(data: st.DataObject, dtype: str) -> None:
    limit = checkable_terms(dtype, dtype)
    problem = data.draw(st.one_of(conv_problems(F16_ACC, dtype), linear_problems(F16_ACC, dtype),
                                  pool_problems(F16_ACC, dtype, "avg_pool")))
    if problem.op == "conv":
        assert problem.w_shape is not None
        taps = math.prod(problem.w_shape[2:])
        out = problem.output_shape()
        groups = problem.params["groups"]
        terms = [problem.w_shape[1] * taps, problem.w_shape[0] // groups * taps, out[0] * math.prod(out[2:])]
        # padding alone can leave more outputs than the limit: then the input and batch are minimal
        if out[0] * math.prod(out[2:]) > limit:
            assert out[0] <= 1 and all(n == max(1, (k - 1) * d + 1 - lo - hi) for n, k, d, (lo, hi) in zip(
                problem.x_shape[2:], problem.w_shape[2:], problem.params["dilation"], problem.params["padding"]))
            terms = terms[:2]
    elif problem.op == "linear":
        assert problem.w_shape is not None
        terms = [problem.x_shape[1], problem.w_shape[0], problem.x_shape[0]]
    else:
        terms = [math.prod(problem.params["kernel_size"])]
    assert max(terms) <= limit, (problem.describe(), terms, limit)


def test_long_reductions_are_generated_by_default() -> None:
    """Bugs that live at long reductions need them: float16 dW sums over 1000 terms within a few dozen examples."""
    def dw_terms(problem: Problem) -> int:
        out = problem.output_shape()
        return out[0] * math.prod(out[2:])

    found = find(conv_problems(Capabilities(), "float16"), lambda p: dw_terms(p) > 1000,
                 settings=settings(max_examples=60, database=None, phases=[Phase.generate]))
    assert dw_terms(found) > 1000


# --------------------------------------------------------------------------- failure messages

def _failure(case: Case, actual: np.ndarray[Any, Any]) -> str:
    with pytest.raises(Violation) as info:
        compare("forward-values", "y", actual, expected_forward(case), forward_bound(case, Capabilities()), case, [])
    return str(info.value)


def _rounded_conv(case: Case, bits: int) -> np.ndarray[Any, Any]:
    x, w = (round_to_bits(np.asarray(a, np.float64), bits) for a in (case.inputs.x, case.inputs.w))
    return np.asarray(reference.conv_forward(x, w, None, **case.problem.params), dtype=case.problem.dtype)


@pytest.mark.parametrize(("bits", "named"), [(11, "TF32"), (8, "bfloat16")])
def test_diagnosis_names_the_precision_of_the_arithmetic(bits: int, named: str) -> None:
    rng = np.random.default_rng(2)
    case = _conv_case(rng.standard_normal((2, 3, 8, 8)).astype(np.float32),
                      rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    text = _failure(case, _rounded_conv(case, bits))
    assert f"errors consistent with ~{bits} significant bits" in text and named in text, text


def test_diagnosis_calls_a_wrong_result_wrong() -> None:
    rng = np.random.default_rng(3)
    case = _conv_case(rng.standard_normal((1, 2, 6, 6)).astype(np.float32),
                      rng.standard_normal((2, 2, 3, 3)).astype(np.float32))
    exact = expected_forward(case)
    text = _failure(case, (exact * 1.5).astype(np.float32))
    assert "a wrong result, not a precision problem" in text, text


def test_failure_prints_enough_digits_and_ulps() -> None:
    """expected and actual one float32 ulp apart print differently, as plain numbers, with the error in ulps."""
    x = np.array([[[1.0 / 3.0]]], dtype=np.float32)
    case = _conv_case(x, np.ones((1, 1, 1), dtype=np.float32))
    exact = expected_forward(case)
    off = exact.astype(np.float32)
    for _ in range(4):
        off = np.nextafter(off, np.float32(1))
    text = _failure(case, off)
    line = next(t for t in text.splitlines() if "expected" in t and "actual" in t)
    expected_text, actual_text = line.split("expected ")[1].split(",")[0], line.split("actual ")[1].split(",")[0]
    assert expected_text != actual_text and "np.float" not in text, text
    assert "(4 ulp of float32)" in text, text

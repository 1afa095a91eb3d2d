"""spec.accuracy: unit roundoff, gamma, the elementwise and normwise bounds, max_abs_ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spec
from spec.accuracy import max_abs_ratio

FAST = settings(max_examples=100, deadline=None, database=None)


@pytest.mark.parametrize(("dtype", "u"), [("float64", 2.0**-53), ("float32", 2.0**-24), ("float16", 2.0**-11)])
def test_unit_roundoff(dtype: str, u: float) -> None:
    assert spec.unit_roundoff(dtype) == u
    assert spec.unit_roundoff(np.dtype(dtype)) == u


def test_gamma() -> None:
    u = 2.0**-24
    assert spec.gamma(10, u) == pytest.approx(10 * u / (1 - 10 * u), rel=1e-15)
    assert spec.gamma(0, u) == 0.0
    assert spec.gamma(2048, 2.0**-11) == math.inf       # k u = 1: no bound
    assert spec.gamma(3000, 2.0**-11) == math.inf
    values = [spec.gamma(k, u) for k in range(1, 100)]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_elementwise_bound_shape_and_monotonicity() -> None:
    magnitude = np.array([[0.0, 1.0], [2.0, 1e3]])
    bound = spec.elementwise_bound(magnitude, 9, "float32")
    assert bound.shape == magnitude.shape
    assert np.all(bound > 0)                             # the underflow term keeps 0 magnitudes positive
    assert bound[0, 1] < bound[1, 0] < bound[1, 1]
    assert np.all(spec.elementwise_bound(magnitude, 10, "float32") > bound)
    assert np.all(spec.elementwise_bound(magnitude, 9, "float16") > bound)
    assert np.all(spec.elementwise_bound(magnitude, 9, "float64") < bound)


def test_elementwise_bound_value() -> None:
    k, u = 16, 2.0**-24
    expected = (2 * spec.gamma(k + 2, u) + spec.gamma(k + 2, 2.0**-53)) * 16.0 + 2 * (k + 2) * 2.0**-149
    assert float(spec.elementwise_bound(np.array([16.0]), k, "float32")[0]) == pytest.approx(expected, rel=1e-12)


def test_elementwise_bound_is_infinite_when_no_bound_exists() -> None:
    bound = spec.elementwise_bound(np.array([0.0, 1.0]), 5000, "float16")   # K u > 1
    assert np.all(np.isinf(bound)), bound


@FAST
@given(k=st.integers(1, 400), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from(["float32", "float16"]))
def test_elementwise_bound_holds_for_sequential_dot_products(k: int, seed: int, dtype: str) -> None:
    """A left-to-right dot product in the dtype stays inside the bound (the model's "direct" class)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(k).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    acc = np.zeros((), dtype=dtype)
    for ai, bi in zip(a, b):
        acc = (acc + ai * bi).astype(dtype)
    exact = float(np.dot(a.astype(np.float64), b.astype(np.float64)))
    magnitude = np.array([float(np.dot(np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64))))])
    assert abs(float(acc) - exact) <= spec.elementwise_bound(magnitude, k, dtype)[0]


def test_elementwise_bound_catches_a_precision_loss() -> None:
    """float32 data summed in float16 is far outside the float32 bound."""
    rng = np.random.default_rng(0)
    a = rng.uniform(1, 2, 64).astype(np.float32)
    exact = float(a.astype(np.float64).sum())
    lossy = float(a.astype(np.float16).sum(dtype=np.float16))
    assert abs(lossy - exact) > spec.elementwise_bound(np.array([exact]), 64, "float32")[0]


def test_normwise_bound() -> None:
    eps = float(np.finfo(np.float32).eps)
    bound = spec.normwise_bound(np.array([1.0, 3.0]), 256, "float32")
    assert bound.tolist() == pytest.approx([4 * eps * 8, 12 * eps * 8], rel=1e-12)
    # fewer than two points: log2 is clamped at 1
    assert spec.normwise_bound(np.array([1.0]), 1, "float64")[0] == 4 * float(np.finfo(np.float64).eps)


def test_max_abs_ratio() -> None:
    assert max_abs_ratio(np.array([0.0, 1.0, -3.0]), np.array([0.0, 2.0, 4.0])) == 0.75
    assert max_abs_ratio(np.array([1e-300]), np.array([0.0])) == math.inf
    assert max_abs_ratio(np.array([]), np.array([])) == 0.0

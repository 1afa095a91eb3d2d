"""The accuracy model: how far a *correct* backend may be from the exact result.

Inputs are given in the backend's dtype, so they are exact; the reference
result is computed in float64 from the same values. What remains is the
rounding of the backend's own arithmetic. Two classes of implementation:

**direct** — every output is an accumulation of ``K`` products (or, for
pooling, ``K`` inputs) in any order, in the dtype or wider. The classical
bound for a sum of products (Higham, *Accuracy and Stability of Numerical
Algorithms*, §3.1) holds for every summation order::

    |fl(sum_i a_i b_i) - sum_i a_i b_i| <= gamma_K * sum_i |a_i b_i|,
    gamma_K = K u / (1 - K u),       u = unit roundoff = eps / 2.

We allow ``K + 2`` roundings (the products, a bias addition, the final
rounding or a division by the pooling divisor), double it for slack, add
``2 (K + 2)`` times the smallest subnormal for underflow, and add the float64
reference's own error. ``magnitude`` is the operation applied to absolute
values (for a convolution ``sum |x w| + |b|``), which the conformance suite
computes with the reference. Max pooling selects, it does not round: its
forward bound is 0.

**fast** — FFT and Winograd convolutions round in transformed space, so the
error spreads over the whole output: it is normwise, not elementwise. For each
output slice (one sample and one output channel) of a correlation over a
padded signal of ``L`` points::

    ||y_slice - exact_slice||_2 <= C * eps * log2(L) * ||x_slice||_2 * ||w_slice||_2,   C = 4

Measured on this machine with ``scipy.signal.fftconvolve`` over 300 random 2-D
cases (magnitudes spread over six decades), the worst ratio of the error to
``eps * log2(L) * ||x|| * ||w||`` was 0.63 in float64 and 0.37 in float32,
while the same cases exceeded ``K u sum|x w|`` elementwise by up to 3e5x.
C = 4 leaves a margin above 6x. A float32 accumulation of float64 inputs
errs by about 1e-7 ||x|| ||w||, a million times the float64 normwise bound,
so both classes still catch it.

A backend declares ``accuracy="direct"`` to be held to the elementwise bound
alone; by default (``"fast"``) a convolution slice passes if it meets either.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import DTypeLike, NDArray

AccuracyClass: TypeAlias = Literal["direct", "fast"]

#: C in the normwise bound of fast algorithms.
FAST_ALGORITHM_CONSTANT = 4.0
#: Slack factor applied to gamma_{K+2} in the elementwise bound.
ELEMENTWISE_SLACK = 2.0


def unit_roundoff(dtype: DTypeLike) -> float:
    """Half the machine epsilon of a floating dtype.

    >>> unit_roundoff("float64") == 2.0 ** -53
    True
    >>> unit_roundoff("float16")
    0.00048828125
    """
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def gamma(k: int, u: float) -> float:
    """gamma_k = k u / (1 - k u); infinite once k u >= 1 (no bound is possible).

    >>> gamma(2, 0.25)
    1.0
    >>> gamma(4, 0.25)
    inf
    """
    if k * u >= 1:
        return math.inf
    return k * u / (1 - k * u)


def elementwise_bound(magnitude: NDArray[np.floating[Any]], terms: int, dtype: DTypeLike) -> NDArray[np.float64]:
    """Per-element error bound of a direct implementation.

    ``magnitude`` is the float64 result of the operation on absolute values;
    ``terms`` is K, the largest number of products (or summands) per output.

    The 28x28 example's first layer: each output sums K = 16 products.

    >>> m = np.array([16.0])          # 16 products of magnitude 1
    >>> float(elementwise_bound(m, 16, "float32")[0]) < 16 * 18 * 2.0 ** -24 * 2.1
    True
    >>> float(elementwise_bound(np.array([0.0]), 4, "float32")[0]) > 0   # underflow term
    True
    """
    u = unit_roundoff(dtype)
    tiny = float(np.finfo(np.dtype(dtype)).smallest_subnormal)
    own = ELEMENTWISE_SLACK * gamma(terms + 2, u)
    reference = gamma(terms + 2, unit_roundoff(np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        bound = (own + reference) * np.asarray(magnitude, dtype=np.float64) + 2 * (terms + 2) * tiny
    # inf * 0 is NaN: an unbounded dtype gives an unbounded bound.
    return np.where(np.isnan(bound), np.inf, bound)


def normwise_bound(operand_norms: NDArray[np.float64], signal_points: int, dtype: DTypeLike) -> NDArray[np.float64]:
    """Per-slice 2-norm error bound of a fast (FFT or Winograd) convolution.

    ``operand_norms`` holds ``||x_slice|| * ||w_slice||`` for each output slice;
    ``signal_points`` is L, the number of points of the padded signal.

    >>> b = normwise_bound(np.array([1.0]), 1024, "float64")
    >>> bool(b[0] == 4.0 * np.finfo(np.float64).eps * 10)
    True
    """
    eps = float(np.finfo(np.dtype(dtype)).eps)
    return FAST_ALGORITHM_CONSTANT * eps * math.log2(max(signal_points, 2)) * operand_norms


def max_abs_ratio(error: NDArray[Any], bound: NDArray[Any]) -> float:
    """The largest ``|error| / bound`` (0 where both are 0, inf where only the bound is).

    >>> max_abs_ratio(np.array([0.0, 1.0]), np.array([0.0, 2.0]))
    0.5
    """
    err = np.abs(np.asarray(error, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / np.asarray(bound, dtype=np.float64))
    return float(np.max(ratio, initial=0.0))

"""The accuracy model: how far a *correct* backend may be from the exact result.

Inputs are given in the backend's dtype, so they are exact; the reference
result is computed in float64 from the same values. What remains is the
rounding of the backend's own arithmetic, which happens in two places:

* the **accumulation** of the ``K`` products (or summands) of each output, in
  the backend's *accumulation precision* ``u_acc``;
* the final **rounding to the output dtype**, ``u_out``.

The accumulation precision is part of the contract. float16 and bfloat16
inputs are accumulated in float32 by default — what oneDNN, cuDNN and
PyTorch's CPU kernels do (products of two float16 or bfloat16 values are exact
in float32). A backend that accumulates in float16 or bfloat16 says so:
``Capabilities(accumulation={"float16": "float16"})``. float32 and float64
accumulate in their own precision. :data:`DEFAULT_ACCUMULATION` has the table.

**Direct class (elementwise).** Every output is an accumulation of ``K``
products in any order. The classical bound for a sum of products (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002, §3.1) holds
for every summation order::

    |fl(sum_i a_i b_i) - sum_i a_i b_i| <= gamma_K(u_acc) * sum_i |a_i b_i|,
    gamma_K(u) = K u / (1 - K u),     u = unit roundoff = eps / 2.

It is rigorous, but grows like ``K u`` and is infinite once ``K u >= 1``
(float16: ``K >= 2048``). Higham and Mary (*A new approach to probabilistic
rounding error analysis*, SIAM J. Sci. Comput. 41(5), 2019, A2815–A2835,
Theorem 3.1 with Lemma 2.2) model the rounding errors as independent random
variables of mean zero bounded by ``u`` and prove, for any order::

    |fl(sum_i a_i b_i) - sum_i a_i b_i| <= gamma~_K(lambda, u) * sum_i |a_i b_i|,
    gamma~_K(lambda, u) = exp(lambda sqrt(K) u + K u^2 / (1 - u)) - 1  ~  lambda sqrt(K) u,

with probability at least ``1 - 2 K exp(-lambda^2 (1 - u)^2 / 2)``. We take
``lambda`` per ``K`` so that this failure probability is at most
:data:`FAILURE_PROBABILITY` (``2**-40``, about ``1e-12``) per output element:
``lambda = sqrt(2 ln(2 K / P)) / (1 - u)``, 7.8 at ``K = 10`` and 8.9 at
``K = 10**5``. The accumulation coefficient is the smaller of the two,
``c_K = min(gamma_K, gamma~_K)``: the rigorous bound for short sums, the
probabilistic one from ``K`` of about ``lambda**2`` (≈ 70) on. The model's
assumption can fail for inputs built to make rounding errors correlate (e.g.
adding a constant to a growing sum until it stagnates); the suite generates
random-sign data, where it holds.

With ``K + 2`` roundings allowed (the products, a bias addition, a division
by the pooling divisor), a final rounding to the output dtype, the float64
reference's own error and an underflow term, the bound on each element is::

    |y - y_exact| <= (1 + u_out) c_{K+2}(u_acc) M + u_out |y_exact| + gamma_{K+2}(u_64) M
                     + 2 (K + 2) tiny_acc + tiny_out,

where ``M`` (``magnitude``) is the operation applied to absolute values (for a
convolution ``sum |x w| + |b|``), which the conformance suite computes with
the reference, and ``tiny`` the smallest subnormal. When the accumulation
precision is the output dtype, the final rounding is one of the ``K + 2`` and
``u_out |y_exact|`` is not added. Max pooling selects, it does not round: its
forward bound is 0.

**Checkable range.** For random-sign data, ``|y_exact|`` is about
``M / sqrt(K)``, so the bound exceeds the values it checks (and an all-zero
result would pass) once ``c_{K+2} sqrt(K)`` nears 1. :func:`checkable_terms`
is the largest ``K`` with ``c_{K+2}(u_acc) sqrt(K) <= 1/2``: about 120 for
float16 accumulation, 22 for bfloat16 accumulation and 900 000 for float32.
The suite generates no reduction longer than that (dW sums over ``N`` times
the output positions), and a comparison whose bound would let an all-zero
result pass is reported as not checked, never as passed.

**Fast class (normwise).** FFT and Winograd convolutions round in transformed
space, so the error spreads over the whole output: it is normwise, not
elementwise. For each output slice (one sample and one output channel) of a
correlation over a padded signal of ``L`` points::

    ||y_slice - exact_slice||_2 <= C eps_acc log2(L) ||x_slice||_2 ||w_slice||_2 + u_out ||exact_slice||_2,

``C = 4`` (:data:`FAST_ALGORITHM_CONSTANT`), after the FFT error analysis of
Schatzman (*Accuracy of the discrete Fourier transform and the fast Fourier
transform*, SIAM J. Sci. Comput. 17(5), 1996), whose worst case grows like
``eps log2 L``. ``eps_acc`` is the machine epsilon of the accumulation
precision (float32 for float16 and bfloat16 inputs), and ``u_out ||exact||``
the final rounding, so that one wrong element of the size of the result fails
in every dtype. ``benchmarks/accuracy_slack.py`` measures how close correct
implementations come to each bound (docs/accuracy.md). A backend declares
``accuracy="fast"`` to be held to "elementwise or normwise per slice";
undeclared, it is held to the direct class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import ml_dtypes  # registers the bfloat16 dtype with NumPy
import numpy as np
from numpy.typing import DTypeLike, NDArray

AccuracyClass: TypeAlias = Literal["direct", "fast"]

#: C in the normwise bound of fast algorithms.
FAST_ALGORITHM_CONSTANT = 4.0
#: Per-element failure probability of the probabilistic bound (Higham & Mary 2019).
FAILURE_PROBABILITY = 2.0 ** -40
#: The bound relative to a random-sign sum's typical size, ``c_{K+2} sqrt(K)``, above which a reduction is not checkable.
CHECKABLE_RATIO = 0.5
#: Precisions by significant bits (implicit bit included); TF32 keeps float32's range with float16's 11 bits.
SIGNIFICANT_BITS: dict[str, int] = {"float64": 53, "float32": 24, "tf32": 11, "float16": 11, "bfloat16": 8}
#: Precisions a backend may accumulate in.
ACCUMULATIONS: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
#: Input dtype -> accumulation precision expected unless the backend declares another.
DEFAULT_ACCUMULATION: dict[str, str] = {
    "float64": "float64", "float32": "float32", "float16": "float32", "bfloat16": "float32",
}


def _name(dtype: DTypeLike | str) -> str:
    return dtype if isinstance(dtype, str) and dtype in SIGNIFICANT_BITS else np.dtype(dtype).name


def unit_roundoff(dtype: DTypeLike | str) -> float:
    """Half the machine epsilon of a floating dtype (or of ``"tf32"``): ``2**-p`` for p significant bits.

    >>> unit_roundoff("float64") == 2.0 ** -53
    True
    >>> unit_roundoff("float16"), unit_roundoff("bfloat16"), unit_roundoff("tf32")
    (0.00048828125, 0.00390625, 0.00048828125)
    """
    name = _name(dtype)
    if name in SIGNIFICANT_BITS:
        return 2.0 ** -SIGNIFICANT_BITS[name]
    return float(dtype_info(dtype).eps) / 2


def dtype_info(dtype: DTypeLike | str) -> Any:
    """``np.finfo`` of a float dtype, bfloat16 included (``ml_dtypes.finfo``: NumPy's own knows no bfloat16
    with ml_dtypes before 0.7).

    >>> float(dtype_info("bfloat16").eps), float(dtype_info("float16").eps)
    (0.0078125, 0.0009765625)
    """
    return ml_dtypes.finfo(np.dtype(dtype))  # type: ignore[no-untyped-call]


def _smallest_subnormal(dtype: str) -> float:
    return float(dtype_info("float32" if dtype == "tf32" else dtype).smallest_subnormal)


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


def probabilistic_lambda(k: int, u: float, failure: float = FAILURE_PROBABILITY) -> float:
    """lambda with ``2 k exp(-lambda^2 (1 - u)^2 / 2) = failure``: the probabilistic bound's confidence.

    >>> round(probabilistic_lambda(10, 2.0 ** -24), 2), round(probabilistic_lambda(10 ** 5, 2.0 ** -24), 2)
    (7.84, 8.94)
    """
    return math.sqrt(2 * math.log(2 * max(k, 1) / failure)) / (1 - u)


def gamma_tilde(k: int, u: float, failure: float = FAILURE_PROBABILITY) -> float:
    """Higham & Mary's probabilistic constant exp(lambda sqrt(k) u + k u^2 / (1 - u)) - 1 ~ lambda sqrt(k) u.

    >>> gamma_tilde(3600, 2.0 ** -11) < 0.3 < gamma(3600, 2.0 ** -11)
    True
    """
    exponent = probabilistic_lambda(k, u, failure) * math.sqrt(k) * u + k * u * u / (1 - u)
    return math.expm1(exponent) if exponent < 700 else math.inf


def accumulation_coefficient(k: int, u: float) -> float:
    """c_k = min(gamma_k, gamma~_k): the relative error of a sum of k products in precision u.

    >>> accumulation_coefficient(16, 2.0 ** -24) == gamma(16, 2.0 ** -24)
    True
    >>> accumulation_coefficient(4096, 2.0 ** -11) < 0.35 < gamma(4096 // 3, 2.0 ** -11)
    True
    """
    if k <= 0:
        return 0.0
    return min(gamma(k, u), gamma_tilde(k, u))


def default_accumulation(dtype: DTypeLike | str) -> str:
    """The accumulation precision expected for a dtype when the backend declares none.

    >>> default_accumulation("float16"), default_accumulation("bfloat16"), default_accumulation("float64")
    ('float32', 'float32', 'float64')
    """
    return DEFAULT_ACCUMULATION[_name(dtype)]


def accumulation_of(dtype: DTypeLike | str, declared: Mapping[str, str] | None = None) -> str:
    """The accumulation precision of ``dtype`` under a backend's declaration (default otherwise)."""
    name = _name(dtype)
    if declared and name in declared:
        return declared[name]
    return default_accumulation(name)


def elementwise_bound(magnitude: NDArray[np.floating[Any]], terms: int, dtype: DTypeLike | str, *,
                      result: NDArray[Any] | None = None, accumulation: str | None = None) -> NDArray[np.float64]:
    """Per-element error bound of a direct implementation (see the module docstring).

    ``magnitude`` is the float64 result of the operation on absolute values;
    ``terms`` is K, the largest number of products (or summands) per output;
    ``result`` the exact result (without it, ``|result| <= magnitude`` is
    used); ``accumulation`` the precision of the sums (default: per dtype).

    The 28x28 example's first layer: each output sums K = 16 products.

    >>> m = np.array([16.0])          # 16 products of magnitude 1
    >>> float(elementwise_bound(m, 16, "float32")[0]) < 16 * 18 * 2.0 ** -24 * 1.01
    True
    >>> float(elementwise_bound(np.array([0.0]), 4, "float32")[0]) > 0   # underflow term
    True

    float16 summed in float32 is held to float32's accumulation plus one rounding to float16:

    >>> float(elementwise_bound(m, 16, "float16", result=np.array([2.0]))[0]) < 2 * 2.0 ** -11 + 18 * 2.0 ** -24 * 16.1
    True
    """
    out = _name(dtype)
    acc = accumulation or default_accumulation(out)
    u_out, u_acc = unit_roundoff(out), unit_roundoff(acc)
    own = accumulation_coefficient(terms + 2, u_acc)
    final = u_out if SIGNIFICANT_BITS.get(acc, 0) > SIGNIFICANT_BITS.get(out, 0) else 0.0
    reference = gamma(terms + 2, unit_roundoff("float64"))
    tiny = 2 * (terms + 2) * _smallest_subnormal(acc) + _smallest_subnormal(out)
    m = np.asarray(magnitude, dtype=np.float64)
    exact = m if result is None else np.abs(np.asarray(result, dtype=np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        bound = (own * (1 + final) + reference) * m + final * exact + tiny
    # inf * 0 is NaN: an unbounded coefficient gives an unbounded bound.
    return np.where(np.isnan(bound), np.inf, bound)


def checkable_terms(dtype: DTypeLike | str, accumulation: str | None = None, *, limit: int = 2 ** 30) -> int:
    """The longest reduction K whose bound stays below the values it checks: ``c_{K+2} sqrt(K) <= 1/2``.

    >>> checkable_terms("float16", "float16"), checkable_terms("bfloat16", "bfloat16")
    (121, 22)
    >>> checkable_terms("float16") > 900_000          # float32 accumulation
    True
    """
    acc = accumulation or default_accumulation(dtype)
    u = unit_roundoff(acc)

    def ok(k: int) -> bool:
        return accumulation_coefficient(k + 2, u) * math.sqrt(k) <= CHECKABLE_RATIO

    if ok(limit):
        return limit
    lo, hi = 1, limit  # ok(lo) holds for every precision here, ok(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def normwise_bound(operand_norms: NDArray[np.float64], signal_points: int, dtype: DTypeLike | str, *,
                   result_norms: NDArray[np.float64] | None = None,
                   accumulation: str | None = None) -> NDArray[np.float64]:
    """Per-slice 2-norm error bound of a fast (FFT or Winograd) convolution.

    ``operand_norms`` holds ``||x_slice|| * ||w_slice||`` for each output slice;
    ``signal_points`` is L, the number of points of the padded signal;
    ``result_norms`` the 2-norms of the exact slices (for the final rounding to
    a narrower output dtype).

    >>> b = normwise_bound(np.array([1.0]), 1024, "float64")
    >>> bool(b[0] == 4.0 * np.finfo(np.float64).eps * 10)
    True
    """
    out = _name(dtype)
    acc = accumulation or default_accumulation(out)
    eps = 2 * unit_roundoff(acc)
    bound = FAST_ALGORITHM_CONSTANT * eps * math.log2(max(signal_points, 2)) * np.asarray(operand_norms, np.float64)
    if SIGNIFICANT_BITS.get(acc, 0) > SIGNIFICANT_BITS.get(out, 0):
        norms = bound if result_norms is None else np.asarray(result_norms, dtype=np.float64)
        bound = bound + unit_roundoff(out) * norms
    return bound


def ulps(error: NDArray[Any] | float, value: NDArray[Any] | float, dtype: DTypeLike | str) -> NDArray[np.float64]:
    """``|error|`` in units in the last place of ``dtype`` at ``value`` (the spacing of dtype's numbers there).

    >>> float(ulps(2.0 ** -23, 1.0, "float32")), float(ulps(1.0, 0.0, "float16")) > 1e6
    (1.0, True)
    """
    name = _name(dtype)
    info = dtype_info("float32" if name == "tf32" else name)
    p = SIGNIFICANT_BITS.get(name, int(info.nmant) + 1)
    v = np.abs(np.asarray(value, dtype=np.float64))
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log2(np.where(v > 0, v, 1.0)))
    spacing = np.maximum(np.exp2(exponent - (p - 1)), float(info.smallest_subnormal))
    spacing = np.where(v > 0, spacing, float(info.smallest_subnormal))
    return np.abs(np.asarray(error, dtype=np.float64)) / spacing


def round_to_bits(a: NDArray[Any], bits: int) -> NDArray[np.float64]:
    """``a`` (as float64) rounded to nearest with ``bits`` significant bits: how TF32 or bfloat16 sees float32 data.

    >>> round_to_bits(np.array([1.0 + 2.0 ** -12, 3.0]), 11).tolist()
    [1.0, 3.0]
    """
    mantissa, exponent = np.frexp(np.asarray(a, dtype=np.float64))
    return np.ldexp(np.round(mantissa * 2.0 ** bits) / 2.0 ** bits, exponent)


def max_abs_ratio(error: NDArray[Any], bound: NDArray[Any]) -> float:
    """The largest ``|error| / bound`` (0 where both are 0, inf where only the bound is).

    >>> max_abs_ratio(np.array([0.0, 1.0]), np.array([0.0, 2.0]))
    0.5
    """
    err = np.abs(np.asarray(error, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / np.asarray(bound, dtype=np.float64))
    return float(np.max(ratio, initial=0.0))

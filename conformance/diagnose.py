"""Naming the cause of a failure where the suite can tell it from the arrays.

A missing NaN in a pooling or convolution output has three usual causes, and
each needs a different fix: the window held a NaN that the backend dropped
(``fmax``, ``a > b`` comparisons), the window lies entirely in padding so the
reference's NaN is average pooling's 0/0, or the windows are misplaced so the
NaNs appear one position over (padding on the wrong side, a wrong stride).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import reference
import spec
from conformance.strategies import Case

F64 = np.float64


def _window_holds_nan(case: Case) -> np.ndarray[Any, Any]:
    """For each output element: whether its window (or row, for linear) holds a NaN or infinity of x.

    The reference's own forward on x's non-finite flags (ones as weights, no bias) is positive exactly
    where a flag reaches: a sum of products of non-negative numbers, or a maximum (for indices: of the
    operation they locate).
    """
    p, i = case.problem, case.inputs
    record = p.operation
    forward = spec.OPERATIONS[record.locates].forward if record.locates is not None else record.forward
    flags = (~np.isfinite(np.asarray(i.x, dtype=F64))).astype(F64)  # inf x 0 and inf - inf are NaN too
    arrays = {"x": flags, "w": None if i.w is None else np.ones(i.w.shape), "b": None}
    return np.asarray(getattr(reference, forward)(*(arrays[a] for a in record.forward_args), **p.params)) > 0


def _shift(expected: np.ndarray[Any, Any], actual: np.ndarray[Any, Any]) -> tuple[int, int] | None:
    """(spatial dim, offset) such that actual's NaNs are expected's moved by offset along dim, or None.

    A move keeps the number of NaNs: a backend that lost some has not merely misplaced them.
    """
    if int(expected.sum()) != int(actual.sum()):
        return None
    for dim in range(2, expected.ndim):
        for offset in (-2, -1, 1, 2):
            moved = np.roll(expected, offset, axis=dim)
            inner = [slice(None)] * expected.ndim
            n = expected.shape[dim]
            inner[dim] = slice(max(offset, 0), n + min(offset, 0))
            window = tuple(inner)
            if n > abs(offset) and moved[window].any() and np.array_equal(moved[window], actual[window]):
                return dim - 2, offset
    return None


def missing_nan_summary(case: Case, y: np.ndarray[Any, Any], want: np.ndarray[Any, Any], where: tuple[int, ...]) -> str:
    """The summary of a NaN the reference has at ``where`` and the backend does not, naming its likely cause."""
    value = f"y{list(where)} = {float(y[where])!r}, but should be nan"
    try:
        holds = bool(_window_holds_nan(case)[where])
    except Exception:  # the diagnosis is a courtesy: never lose the finding to it
        return f"a NaN or infinity in x was dropped: {value}"
    if not holds:
        if not case.problem.params.get("count_include_pad", True):
            return (f"an average-pool window entirely in padding must give NaN (0/0 with count_include_pad=False): "
                    f"{value}")
        return f"a NaN appears in the reference where no NaN or infinity of x reaches: {value}"
    if case.problem.operation.windowing != "none":
        moved = _shift(np.isnan(want), np.isnan(y))
        if moved is not None:
            dim, offset = moved
            return (f"the NaNs of y sit {abs(offset)} position(s) {'after' if offset > 0 else 'before'} where they "
                    f"should along spatial dim {dim}: the windows are misplaced (padding or stride), not NaN "
                    f"handling: {value}")
    return f"a NaN or infinity in x was dropped: {value}"

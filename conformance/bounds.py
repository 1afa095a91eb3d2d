"""The algebra of accuracy bounds: how the bound of a derived quantity follows from the bounds of its parts.

A :class:`~conformance.compare.Bound` holds an elementwise bound and, for fast algorithms, a bound on
the norm of each slice. The rules combine them when they compare two backend results with each other
(a sum of errors, a dot product with an error, a channel selection) instead of one result with the
reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance.compare import Bound

F64 = np.float64


def dot_bound(weights: np.ndarray[Any, Any], bound: Bound) -> float:
    """A bound on |<weights, e>| for an error e within ``bound`` (elementwise, or per-slice norms)."""
    w = np.abs(np.asarray(weights, dtype=F64))
    total = float(np.sum(w * bound.elementwise))
    if bound.normwise is not None and bound.slice_axes is not None:
        other = tuple(i for i in range(w.ndim) if i not in bound.slice_axes)
        norms = np.sqrt(np.sum(w ** 2, axis=other)) if other else w
        total = max(total, float(np.sum(norms * bound.normwise)))
    return total


def slice_norms(elementwise: np.ndarray[Any, Any], shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray[Any, Any]:
    other = tuple(k for k in range(len(shape)) if k not in axes)
    full = np.broadcast_to(np.asarray(elementwise, dtype=F64), shape)
    return np.sqrt(np.sum(full ** 2, axis=other)) if other else full


def sum_bounds(*bounds: Bound) -> Bound:
    """The bound on a sum of errors, each within one of ``bounds``.

    Elementwise bounds add. When some bound is normwise (a fast algorithm),
    each error meets its elementwise bound or its per-slice norm bound, so the
    slice norm of the sum is at most the sum over terms of
    max(normwise, slice norm of elementwise) (triangle inequality).
    """
    elementwise = sum((b.elementwise for b in bounds), np.zeros(()))
    fast = [b for b in bounds if b.normwise is not None and b.slice_axes is not None]
    if not fast:
        return Bound(elementwise)
    axes = fast[0].slice_axes
    assert axes is not None and all(b.slice_axes == axes for b in fast)
    shape = np.broadcast_shapes(*(np.shape(b.elementwise) for b in bounds))
    normwise = sum((slice_norms(b.elementwise, shape, axes) if b.normwise is None
                    else np.maximum(b.normwise, slice_norms(b.elementwise, shape, axes)) for b in bounds),
                   np.zeros(()))
    return Bound(elementwise, axes, normwise)


def take_channels(bound: Bound, perm: np.ndarray[Any, Any]) -> Bound:
    """The bound of ``y[:, perm]`` given the bound of ``y``."""
    elementwise = bound.elementwise[:, perm] if bound.elementwise.ndim else bound.elementwise
    normwise = None if bound.normwise is None else bound.normwise[:, perm]
    return Bound(elementwise, bound.slice_axes, normwise)



"""Fully connected (linear) layer: y = x · Wᵀ + b, with W stored (out, in) as in PyTorch."""

from __future__ import annotations

import numpy as np

import spec
from reference.blas import with_blas_threads
from reference.conv import compute_dtype
from spec import Array


@with_blas_threads
def linear_forward(x: Array, w: Array, b: Array | None) -> Array:
    """x (N, in), w (out, in), b (out,) or None -> y (N, out)."""
    spec.linear_output_shape(x, w, b)
    dtype = compute_dtype(x.dtype)
    y = x.astype(dtype, copy=False) @ w.astype(dtype, copy=False).T
    if b is not None:
        y += b.astype(dtype, copy=False)  # y is the product's fresh array: add in place
    return np.ascontiguousarray(y, dtype=x.dtype)


@with_blas_threads
def linear_backward(x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
    """dx = dy · W, dW = dyᵀ · x, db = sum of dy over the batch."""
    out_shape = spec.linear_output_shape(x, w, None)
    spec.check_dy(dy, out_shape, x.dtype)
    dtype = compute_dtype(x.dtype)
    xc, wc, dyc = (a.astype(dtype, copy=False) for a in (x, w, dy))
    return (
        np.ascontiguousarray(dyc @ wc, dtype=x.dtype),
        np.ascontiguousarray(dyc.T @ xc, dtype=x.dtype),
        np.ascontiguousarray(dyc.sum(axis=0), dtype=x.dtype),
    )

"""Convolution (cross-correlation), forward and backward, in any number of spatial dims.

Forward, for sample n, output channel o in group g and output position p::

    y[n, o, p] = b[o] + sum_{c in group g} sum_j  w[o, c - g*C_in/G, j] * x_pad[n, c, p*s + j*d]

The kernel is not flipped. Computed as im2col + one batched matrix product per
group: ``cols[g, c, j, n, p] = x_pad[n, g*Cg + c, p*s + j*d]`` and
``y[n, g*Og + o, p] = sum_{c, j} w[g*Og + o, c, j] * cols[g, c, j, n, p]``.
Backward reuses ``cols``: dW = dY . colsᵀ (the correlation of X with dY),
dcols = Wᵀ . dY, scattered back offset by offset (col2im: the full convolution
of dY, zero-inserted by the stride, with W), and db sums dY over batch and space.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

import spec
from reference.windows import WindowGrid, crop, pad, window_grid, zeros_padded
from spec import Array, Padding


def compute_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """float16 is computed in float32 (NumPy has no fast float16 matmul); others in place."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def _grid(x: Array, w: Array, out_shape: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
          dilation: tuple[int, ...]) -> WindowGrid:
    return window_grid(
        x.shape[2:], kernel_size=w.shape[2:], stride=stride, padding=padding, dilation=dilation,
        out_spatial=out_shape[2:],
    )


def _im2col(x: Array, grid: WindowGrid, groups: int, dtype: np.dtype[Any]) -> NDArray[Any]:
    """cols[g, c, j..., n, p...]: the input element each (offset, output position) reads."""
    n, c = x.shape[:2]
    xp = pad(x.astype(dtype, copy=False), grid, 0.0)
    cg = c // groups
    kernel = tuple(len(p[0]) for p in grid.positions)
    cols = np.empty((groups, cg, *kernel, n, *grid.out_spatial), dtype=dtype)
    xg = xp.reshape(n, groups, cg, *xp.shape[2:])
    for offset, slices in zip(grid.offsets, grid.slices):
        window = xg[(slice(None),) * 3 + slices]  # (N, G, Cg, *out)
        at: tuple[slice | int, ...] = (slice(None), slice(None), *offset)
        cols[at] = np.moveaxis(window, 0, 2)
    return cols


def conv_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> Array:
    """y = conv(x, w) + b. Shapes: x (N, C_in, *S), w (C_out, C_in/groups, *K), y (N, C_out, *S_out)."""
    out_shape = spec.conv_output_shape(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    dtype = compute_dtype(x.dtype)
    grid = _grid(x, w, out_shape, stride, padding, dilation)
    cols = _im2col(x, grid, groups, dtype)
    n, c_out = out_shape[:2]
    og = c_out // groups
    wg = w.astype(dtype, copy=False).reshape(groups, og, -1)
    positions = math.prod(out_shape[2:])
    y = wg @ cols.reshape(groups, wg.shape[2], n * positions)  # (G, Og, N * P)
    y = np.moveaxis(y.reshape(groups, og, n, positions), 2, 0).reshape(out_shape)
    if b is not None:
        y = y + b.astype(dtype).reshape((1, c_out) + (1,) * (len(out_shape) - 2))
    return np.ascontiguousarray(y, dtype=x.dtype)


def conv_backward(
    x: Array, w: Array, dy: Array, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> tuple[Array, Array, Array]:
    """(dx, dw, db) for upstream gradient ``dy`` of the forward output's shape."""
    out_shape = spec.conv_output_shape(x, w, None, stride=stride, padding=padding, dilation=dilation, groups=groups)
    spec.check_dy(dy, out_shape, x.dtype)
    dtype = compute_dtype(x.dtype)
    grid = _grid(x, w, out_shape, stride, padding, dilation)
    cols = _im2col(x, grid, groups, dtype)
    n, c_out = out_shape[:2]
    og = c_out // groups
    cg = x.shape[1] // groups
    wg = w.astype(dtype, copy=False).reshape(groups, og, -1)
    spatial = math.prod(out_shape[2:])
    dyg = np.moveaxis(dy.astype(dtype, copy=False).reshape(n, groups, og, spatial), 0, 2).reshape(groups, og, n * spatial)
    cols2 = cols.reshape(groups, wg.shape[2], n * spatial)
    dw = (dyg @ cols2.transpose(0, 2, 1)).reshape(w.shape)
    dcols = (wg.transpose(0, 2, 1) @ dyg).reshape(cols.shape)  # (G, Cg, *K, N, *out)
    dxp = zeros_padded(x.shape, grid, dtype)
    dxg = dxp.reshape(n, groups, cg, *dxp.shape[2:])
    for offset, slices in zip(grid.offsets, grid.slices):
        at: tuple[slice | int, ...] = (slice(None), slice(None), *offset)
        dxg[(slice(None),) * 3 + slices] += np.moveaxis(dcols[at], 2, 0)
    db = dy.astype(dtype).sum(axis=(0, *range(2, dy.ndim)))
    return (
        np.ascontiguousarray(crop(dxp, grid), dtype=x.dtype),
        np.ascontiguousarray(dw, dtype=x.dtype),
        np.ascontiguousarray(db, dtype=x.dtype),
    )

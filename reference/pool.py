"""Max and average pooling, forward and backward, in any number of spatial dims.

Max pooling pads with -inf (never 0), propagates a NaN in a window to its
output, and routes each window's gradient to the *first* real input element
that attains the maximum in row-major window order. A window holding no real
element outputs -inf and routes its gradient nowhere.

Average pooling divides the window sum by the number of its positions inside
the padded input (``count_include_pad=True``; the ceil-mode overhang is never
counted) or inside the real input (``False``; a window with no real element
then outputs NaN = 0/0 and routes its gradient nowhere).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

import spec
from reference.conv import compute_dtype
from reference.windows import WindowGrid, crop, inside_mask, pad, window_counts, window_grid, zeros_padded
from spec import Array, Padding


def _pool_grid(
    x: Array, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> tuple[tuple[int, ...], WindowGrid]:
    out_shape = spec.pool_output_shape(
        x, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode
    )
    grid = window_grid(
        x.shape[2:], kernel_size=tuple(kernel_size), stride=tuple(stride), padding=padding,
        dilation=tuple(dilation), out_spatial=out_shape[2:],
    )
    return out_shape, grid


def _max_and_argmax(x: Array, grid: WindowGrid) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """Window maxima (NaN-propagating) and the offset index of each window's first real maximum (-1: none)."""
    xp = pad(x, grid, -np.inf)
    lead = (slice(None), slice(None))
    out_shape = (*x.shape[:2], *grid.out_spatial)
    y = xp[lead + grid.slices[0]].copy()
    best = np.full(out_shape, -np.inf, dtype=x.dtype)
    arg = np.full(out_shape, -1, dtype=np.int64)
    for index, (offset, slices) in enumerate(zip(grid.offsets, grid.slices)):
        window = xp[lead + slices]
        np.maximum(y, window, out=y)  # NaN-propagating; padding is -inf
        # Strictly greater keeps the first of tied maxima; the first real element always enters.
        take = inside_mask(grid, offset) & ((arg < 0) | (window > best))
        best = np.where(take, window, best)
        arg = np.where(take, index, arg)
    return y, arg


def max_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """y[n, c, p] = max over the window of p of the -inf-padded input."""
    _, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    y, _ = _max_and_argmax(x, grid)
    return np.ascontiguousarray(y, dtype=x.dtype)


def max_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """dx: each dy element added to the first real maximum of its window (accumulated over windows)."""
    out_shape, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    spec.check_dy(dy, out_shape, x.dtype)
    _, arg = _max_and_argmax(x, grid)
    dtype = compute_dtype(x.dtype)
    dxp = zeros_padded(x.shape, grid, dtype)
    for index, slices in enumerate(grid.slices):
        dxp[(slice(None), slice(None)) + slices] += np.where(arg == index, dy, 0)
    return np.ascontiguousarray(crop(dxp, grid), dtype=x.dtype)


def _divisor(grid: WindowGrid, padding: Padding, count_include_pad: bool) -> NDArray[np.float64]:
    return window_counts(grid, include_padding=spec.check_flag(count_include_pad, "count_include_pad"), padding=padding)


def avg_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """y[n, c, p] = (sum of the window of p over the zero-padded input) / divisor(p)."""
    _, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    dtype = compute_dtype(x.dtype)
    xp = pad(x.astype(dtype, copy=False), grid, 0.0)
    total = np.zeros((*x.shape[:2], *grid.out_spatial), dtype=dtype)
    for slices in grid.slices:
        total += xp[(slice(None), slice(None)) + slices]
    with np.errstate(divide="ignore", invalid="ignore"):
        y = total / _divisor(grid, padding, count_include_pad).astype(dtype)
    return np.ascontiguousarray(y, dtype=x.dtype)


def avg_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """dx: each dy element divided by its window's divisor and added to every position of the window."""
    out_shape, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    spec.check_dy(dy, out_shape, x.dtype)
    dtype = compute_dtype(x.dtype)
    divisor = _divisor(grid, padding, count_include_pad).astype(dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(divisor > 0, dy.astype(dtype) / divisor, 0)
    dxp = zeros_padded(x.shape, grid, dtype)
    for slices in grid.slices:
        dxp[(slice(None), slice(None)) + slices] += share
    return np.ascontiguousarray(crop(dxp, grid), dtype=x.dtype)

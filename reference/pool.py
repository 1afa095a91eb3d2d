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

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

import spec
from reference.conv import compute_dtype
from reference.windows import WindowGrid, pad_if_needed, window_counts, window_grid, window_view
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


_LEAD = (slice(None), slice(None))


def _window_max(x: Array, grid: WindowGrid) -> NDArray[Any]:
    """Window maxima, NaN-propagating; -inf for a window holding no real element (padding is -inf)."""
    y = np.full((*x.shape[:2], *grid.out_spatial), -np.inf, dtype=x.dtype)
    for out_slices, in_slices in grid.inside_slices:
        region = y[_LEAD + out_slices]
        np.maximum(region, x[_LEAD + in_slices], out=region)
    return y


def _selected_values(x: Array, grid: WindowGrid) -> NDArray[Any]:
    """The value of the element each window routes its gradient to (-inf for an empty window).

    The rule is a running maximum over the window in row-major order that
    replaces only on strictly greater: the first real element always enters and
    nothing is greater than NaN, so it keeps a NaN first element; otherwise it
    ends at the NaN-ignoring maximum (``fmax``), first reached at the first
    element equal to it.
    """
    out_shape = (*x.shape[:2], *grid.out_spatial)
    chosen = np.full(out_shape, -np.inf, dtype=x.dtype)
    for out_slices, in_slices in grid.inside_slices:
        region = chosen[_LEAD + out_slices]
        np.fmax(region, x[_LEAD + in_slices], out=region)
    if np.isnan(x).any():
        first = np.zeros(out_shape, dtype=x.dtype)  # each window's first real element
        for out_slices, in_slices in reversed(grid.inside_slices):
            first[_LEAD + out_slices] = x[_LEAD + in_slices]
        chosen[np.isnan(first)] = np.nan
    return chosen


def max_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """y[n, c, p] = max over the window of p of the -inf-padded input."""
    _, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _window_max(x, grid)


def max_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """dx: each dy element added to the first real maximum of its window (accumulated over windows)."""
    out_shape, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    spec.check_dy(dy, out_shape, x.dtype)
    chosen = _selected_values(x, grid)
    nan_chosen = np.isnan(chosen)
    any_nan = bool(nan_chosen.any())
    finite_dy = bool(np.isfinite(dy).all())  # then dy * hit is dy where hit and 0 elsewhere
    routed = np.zeros(chosen.shape, dtype=bool)  # windows whose gradient has found its element
    dx = np.zeros(x.shape, dtype=compute_dtype(x.dtype))
    for out_slices, in_slices in grid.inside_slices:  # row-major window order: the first hit wins
        window, at = x[_LEAD + in_slices], _LEAD + out_slices
        hit = window == chosen[at]
        if any_nan:
            hit |= np.isnan(window) & nan_chosen[at]
        np.greater(hit, routed[at], out=hit)  # hit and not yet routed
        routed[at] |= hit
        dx[_LEAD + in_slices] += dy[at] * hit if finite_dy else np.where(hit, dy[at], 0)
    return np.ascontiguousarray(dx, dtype=x.dtype)


def _divisor(grid: WindowGrid, padding: Padding, count_include_pad: bool) -> NDArray[np.float64]:
    return window_counts(grid, include_padding=spec.check_flag(count_include_pad, "count_include_pad"), padding=padding)


def avg_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """y[n, c, p] = (sum of the window of p over the zero-padded input) / divisor(p)."""
    _, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    dtype = compute_dtype(x.dtype)
    taps = len(grid.offsets)
    if math.prod(grid.out_spatial) < taps:
        # Few windows of many taps (global pooling): one reduction over the window view
        # reads x once, where a pass per offset would re-read it once per tap.
        view = window_view(pad_if_needed(x.astype(dtype, copy=False), grid, 0.0), grid)
        total = view.sum(axis=tuple(range(view.ndim - len(grid.spatial), view.ndim)), dtype=dtype)
    else:
        total = np.zeros((*x.shape[:2], *grid.out_spatial), dtype=dtype)  # padding adds nothing
        for out_slices, in_slices in grid.inside_slices:
            region = total[_LEAD + out_slices]
            region += x[_LEAD + in_slices]
    with np.errstate(divide="ignore", invalid="ignore"):
        total /= _divisor(grid, padding, count_include_pad).astype(dtype)
    return np.ascontiguousarray(total, dtype=x.dtype)


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
    dx = np.zeros(x.shape, dtype=dtype)
    for out_slices, in_slices in grid.inside_slices:
        dx[_LEAD + in_slices] += share[_LEAD + out_slices]
    return np.ascontiguousarray(dx, dtype=x.dtype)

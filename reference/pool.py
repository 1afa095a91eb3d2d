"""Max and average pooling, forward and backward, in any number of spatial dims.

Max pooling pads with -inf (never 0), propagates a NaN in a window to its
output, and routes each window's gradient to the *first* real input element
that attains the maximum in row-major window order. A window holding no real
element outputs -inf and routes its gradient nowhere.

Average pooling divides the window sum by the number of its positions inside
the padded input (``count_include_pad=True``; the ceil-mode overhang is never
counted) or inside the real input (``False``; a window with no real element
then outputs NaN = 0/0 and routes its gradient nowhere).

Speed (each choice measured on the float64 pooling layers of ResNet-50, VGG-16 and
a 3-D U-Net against PyTorch's CPU kernels; docs/performance.md has the tables):

* Every operation is a short loop over kernel offsets, each step one NumPy pass
  over a strided slice of x (:mod:`reference.windows`). On a large input each
  pass streams x from memory again; so the passes run on blocks of (sample,
  channel) planes of about :data:`CACHE_BLOCK_BYTES`, which stay in the CPU
  cache across the K passes (2-3x faster backward, 1.5-3x forward). Planes are
  independent, so blocking changes no result.
* Global average pooling (one window covering the input) is one contiguous sum per
  plane instead of H * W strided passes over single elements; an average pool whose
  windows tile the input (stride == kernel, no padding) writes its backward's shares
  in one broadcast through the window view.
* Max-pool backward finds each window's maximum and routes by equality with it,
  offset by offset in row-major order with a "not yet routed" mask, so that a tie
  goes to the first maximum. Without a NaN or a -inf maximum (then the general,
  strided element-rule path runs) it works on x split by stride phase, where every
  offset's reads are contiguous (:func:`reference.windows.split_phases`; 10-20%
  faster on the large layers). Masked stores (``np.copyto(where=)``,
  ``np.add(where=)``), ``np.add.at`` and a ``np.bincount`` scatter by flat argmax
  index were tried: each is 3-10x slower per element than an unmasked pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

import spec
from reference.conv import compute_dtype
from reference.windows import (
    WindowGrid,
    covers_input,
    merge_phases,
    phase_slices,
    split_phases,
    tiles_input,
    window_counts,
    window_grid,
    window_view,
)
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

#: Bytes of input per block of (sample, channel) planes: about a per-core L2 cache, so that the
#: K passes over one block's windows read it from cache (see the module docstring).
CACHE_BLOCK_BYTES = 1 << 20


def by_plane_blocks(
    kernel: Callable[..., None], out_shape: tuple[int, ...], dtype: np.dtype[Any], *arrays: NDArray[Any],
    block_bytes: int | None = None,
) -> NDArray[Any]:
    """Run ``kernel(out_block, *array_blocks)`` on blocks of the flattened (N * C) planes.

    Every array is (N, C, *spatial) with the same N and C; each block is
    (planes, 1, *spatial). ``kernel`` must fill its whole ``out_block``.
    """
    n, c = out_shape[:2]
    flat = [a.reshape(n * c, 1, *a.shape[2:]) for a in arrays]
    out = np.empty((n * c, 1, *out_shape[2:]), dtype=dtype)
    plane_bytes = max(1, *(math.prod(shape[2:]) * np.dtype(dtype).itemsize for shape in (out_shape, *(a.shape for a in arrays))))
    step = max(1, (CACHE_BLOCK_BYTES if block_bytes is None else block_bytes) // plane_bytes)
    for start in range(0, n * c, step):
        block = slice(start, start + step)
        kernel(out[block], *(a[block] for a in flat))
    return out.reshape(out_shape)


def _window_max(y: NDArray[Any], x: NDArray[Any], grid: WindowGrid) -> None:
    """y = window maxima, NaN-propagating; -inf for a window holding no real element (padding is -inf)."""
    y.fill(-np.inf)
    for out_slices, in_slices in grid.inside_slices:
        region = y[_LEAD + out_slices]
        np.maximum(region, x[_LEAD + in_slices], out=region)


def _selected_values(x: Array, grid: WindowGrid) -> NDArray[Any]:
    """The value of the element each window routes its gradient to (-inf for an empty window).

    The rule is a running maximum over the window in row-major order that
    replaces only on strictly greater: the first real element always enters and
    nothing is greater than NaN, so it keeps a NaN first element; otherwise it
    ends at the NaN-ignoring maximum (``fmax``), first reached at the first
    element equal to it. Without a NaN in x that is the window maximum.
    """
    out_shape = (*x.shape[:2], *grid.out_spatial)
    chosen = np.empty(out_shape, dtype=x.dtype)
    if not np.isnan(x).any():
        _window_max(chosen, x, grid)
        return chosen
    chosen.fill(-np.inf)
    for out_slices, in_slices in grid.inside_slices:
        region = chosen[_LEAD + out_slices]
        np.fmax(region, x[_LEAD + in_slices], out=region)
    first = np.zeros(out_shape, dtype=x.dtype)  # each window's first real element
    for out_slices, in_slices in reversed(grid.inside_slices):
        first[_LEAD + out_slices] = x[_LEAD + in_slices]
    chosen[np.isnan(first)] = np.nan
    return chosen


def _route_max_gradient(dx: NDArray[Any], x: NDArray[Any], dy: NDArray[Any], grid: WindowGrid) -> None:
    """dx = each dy element added to the first element of its window that the element rule selects."""
    chosen = _selected_values(x, grid)
    nan_chosen = np.isnan(chosen)
    any_nan = bool(nan_chosen.any())
    finite_dy = bool(np.isfinite(dy).all())  # then dy * hit is dy where hit and 0 elsewhere
    routed = np.zeros(chosen.shape, dtype=bool)  # windows whose gradient has found its element
    dx.fill(0)
    for out_slices, in_slices in grid.inside_slices:  # row-major window order: the first hit wins
        window, at = x[_LEAD + in_slices], _LEAD + out_slices
        hit = window == chosen[at]
        if any_nan:
            hit |= np.isnan(window) & nan_chosen[at]
        np.greater(hit, routed[at], out=hit)  # hit and not yet routed
        routed[at] |= hit
        dx[_LEAD + in_slices] += dy[at] * hit if finite_dy else np.where(hit, dy[at], 0)


def _route_max_gradient_by_phase(dx: NDArray[Any], x: NDArray[Any], dy: NDArray[Any], grid: WindowGrid) -> None:
    """:func:`_route_max_gradient` with contiguous passes, for inputs without NaN (the common case).

    The same routing by equality with the window maximum, on x split by stride phase
    (every offset's reads contiguous: about twice as fast as strided passes). Falls
    back to the general path when a NaN is in x or a window's maximum is -inf (empty,
    or only real -inf, which would tie with the -inf padding).
    """
    phases = split_phases(x, grid, -np.inf)
    slices = phase_slices(grid)
    y = phases[_LEAD + slices[0]].copy()
    for index in slices[1:]:
        np.maximum(y, phases[_LEAD + index], out=y)
    if not y.min() > -np.inf:  # NaN (min is then NaN) or -inf
        _route_max_gradient(dx, x, dy, grid)
        return
    finite_dy = bool(np.isfinite(dy).all())
    routed = np.zeros(y.shape, dtype=bool)
    dphases = np.zeros(phases.shape, dtype=dx.dtype)
    for index in slices:  # row-major window order: the first hit wins
        hit = phases[_LEAD + index] == y
        np.greater(hit, routed, out=hit)
        routed |= hit
        dphases[_LEAD + index] += dy * hit if finite_dy else np.where(hit, dy, 0)
    merge_phases(dx, dphases, grid)


def max_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """y[n, c, p] = max over the window of p of the -inf-padded input."""
    out_shape, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    return by_plane_blocks(lambda y, xb: _window_max(y, xb, grid), out_shape, x.dtype, x)


def max_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """dx: each dy element added to the first real maximum of its window (accumulated over windows)."""
    out_shape, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    spec.check_dy(dy, out_shape, x.dtype)
    dx = by_plane_blocks(
        lambda dxb, xb, dyb: _route_max_gradient_by_phase(dxb, xb, dyb, grid), x.shape, compute_dtype(x.dtype), x, dy,
    )
    return np.ascontiguousarray(dx, dtype=x.dtype)


def _divisor(grid: WindowGrid, padding: Padding, count_include_pad: bool) -> NDArray[np.float64]:
    return window_counts(grid, include_padding=spec.check_flag(count_include_pad, "count_include_pad"), padding=padding)


def _window_sum(total: NDArray[Any], x: NDArray[Any], grid: WindowGrid) -> None:
    """total = window sums (padding adds nothing)."""
    total.fill(0)
    for out_slices, in_slices in grid.inside_slices:
        region = total[_LEAD + out_slices]
        region += x[_LEAD + in_slices]


def _spread(dx: NDArray[Any], share: NDArray[Any], grid: WindowGrid) -> None:
    """dx = each window's share added to every real element of the window."""
    dx.fill(0)
    for out_slices, in_slices in grid.inside_slices:
        dx[_LEAD + in_slices] += share[_LEAD + out_slices]


def avg_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """y[n, c, p] = (sum of the window of p over the zero-padded input) / divisor(p)."""
    out_shape, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
    dtype = compute_dtype(x.dtype)
    if covers_input(grid):
        # Global pooling: one contiguous reduction per plane, where a pass per offset would take
        # K = H * W strided passes over single elements (a reduction over a window view with
        # small trailing axes, e.g. 2x2x2 tiles, is slower than the passes: not used there).
        total = x.reshape(*out_shape, math.prod(grid.spatial)).sum(axis=-1, dtype=dtype)
    else:
        total = by_plane_blocks(lambda t, xb: _window_sum(t, xb, grid), out_shape, dtype, x)
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
    if tiles_input(grid):
        # Disjoint windows: each element gets at most one share, written in one broadcast
        # through the window view (elements no window reads stay 0).
        dx = np.zeros(x.shape, dtype=dtype)
        taps = (np.newaxis,) * len(grid.spatial)
        window_view(dx, grid, writeable=True)[...] = share[(Ellipsis, *taps)]
    else:
        dx = by_plane_blocks(lambda d, sb: _spread(d, sb, grid), x.shape, dtype, share)
    return np.ascontiguousarray(dx, dtype=x.dtype)

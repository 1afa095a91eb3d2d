"""Max and average pooling, forward and backward, in any number of spatial dims.

Max pooling pads with -inf (never 0), propagates a NaN in a window to its
output, and routes each window's gradient to the *first* real input element
that attains the maximum in row-major window order. A window holding no real
element outputs -inf and routes its gradient nowhere.

Average pooling divides the window sum by the number of its positions inside
the padded input (``count_include_pad=True``; the ceil-mode overhang is never
counted) or inside the real input (``False``; a window with no real element
then outputs NaN = 0/0 and routes its gradient nowhere).

Speed (each choice measured on the float64 pooling layers of ResNet-50, VGG-16, a 3-D
U-Net and the 1-D audio nets against PyTorch's CPU kernels, one thread each;
docs/performance.md has the tables). The semantics above live in one place, the loop over
kernel offsets of :mod:`reference.windows`; every fast path below computes the same
results (bitwise for maxima, indices and the max-pool gradient; sums within the accuracy
bound) and is tested against that loop:

* Every operation is a short loop over kernel offsets, each step one NumPy pass over
  what the windows read there (:func:`reference.windows.offset_reads`). On a large input
  each pass streams x from memory again; so the passes run on blocks of (sample, channel)
  planes of about :data:`CACHE_BLOCK_BYTES`, which stay in the CPU cache across the K
  passes (2-3x faster backward, 1.5-3x forward; 256 KiB and 2-4 MiB blocks were 5-40%
  slower). Planes are independent, so blocking changes no result.
* Overlapping windows in 2-D and 3-D read contiguous runs of x split by stride phase
  (one copy, then one pass per offset over a whole plane instead of one output row at a
  time: 2.6x faster per pass). Disjoint windows read x's strided slices, or reduce
  axis by axis (:func:`reference.windows.reduce_tiles`, 15-30% faster forwards).
* Global average pooling (one window covering the input) is one ``einsum`` row sum per
  plane (2.2x faster than ``ndarray.sum``'s pairwise sum on 7x7 planes), its backward one
  broadcast; a tiled average pool's backward repeats each share axis by axis
  (:func:`reference.windows.repeat_tiles`, 2x faster than a broadcast through the window view).
* Max-pool backward is where PyTorch is fastest: its forward saves each window's argmax and
  its backward only scatters. The protocol's backward is given x and dy alone, so it must
  find the maxima again: one pass per kernel offset (a running maximum replaced only by
  strictly greater elements, which ends at the first maximum, :func:`first_max_offsets`),
  then one ``np.add.at`` of dy over flat indices per block (:func:`_max_gradient_by_index`).
  A block with a NaN or -inf maximum (or an empty window) takes the general path, which
  routes by equality with the element rule's selected value offset by offset. Masked stores
  (``np.copyto(where=)``, ``np.where``) were measured 3-10x slower per element than the byte
  arithmetic the index loop uses instead.
"""

from __future__ import annotations

import functools
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
    offset_reads,
    reduce_tiles,
    repeat_tiles,
    tiles_input,
    window_counts,
    window_grid,
    windows_overlap,
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
    plane_bytes = max(
        1, math.prod(out_shape[2:]) * np.dtype(dtype).itemsize, *(math.prod(a.shape[2:]) * a.itemsize for a in arrays)
    )
    step = max(1, (CACHE_BLOCK_BYTES if block_bytes is None else block_bytes) // plane_bytes)
    for start in range(0, n * c, step):
        block = slice(start, start + step)
        kernel(out[block], *(a[block] for a in flat))
    return out.reshape(out_shape)


def _fold_windows(y: NDArray[Any], x: NDArray[Any], grid: WindowGrid, combine: np.ufunc, fill: float) -> None:
    """y = ``combine`` folded over each window's taps in row-major offset order, padding read as ``fill``.

    Max pooling folds ``np.maximum`` with -inf (NaN-propagating; -inf for a window holding no
    real element), average pooling ``np.add`` with 0. The first offset is copied rather than
    combined with a filled buffer where it covers every window, and a buffer of y's shape is y.
    """
    reads = offset_reads(x, grid, fill)
    buffer = y if reads.rows is None else np.empty(reads.buffer_shape, dtype=y.dtype)
    start_from_copy = reads.first_covers_outputs()
    if not start_from_copy:
        buffer.fill(fill)
    for k, (region, window) in enumerate(reads.reads):
        if k == 0 and start_from_copy:
            np.copyto(buffer[region], window)
        else:
            combine(buffer[region], window, out=buffer[region])
    if buffer is not y:
        y[...] = reads.outputs(buffer)


def _window_max(y: NDArray[Any], x: NDArray[Any], grid: WindowGrid) -> None:
    """y = window maxima, NaN-propagating; -inf for a window holding no real element (padding is -inf)."""
    if tiles_input(grid):  # disjoint windows: axis by axis, measured 15-30% faster on VGG-16's and U-Net's
        y[...] = reduce_tiles(x, grid, np.maximum)
    else:
        _fold_windows(y, x, grid, np.maximum, -np.inf)


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


def first_max_offsets(x: NDArray[Any], grid: WindowGrid, index_dtype: np.dtype[Any]) -> NDArray[Any] | None:
    """The row-major kernel offset of each window's first maximum, (N, C, *out); None where the general path is needed.

    A running maximum that is replaced only by a strictly greater element ends at the first
    maximum; the offset it was last replaced at is that element's. Offsets only grow through
    the loop, so the index is a running ``maximum`` of ``offset * replaced`` (byte arithmetic
    on the boolean mask, where a masked store would cost 3-10x more per element). None when a
    window's maximum is NaN or -inf (a NaN, an empty window, or only real -inf elements, which
    would tie with the -inf padding).
    """
    reads = offset_reads(x, grid, -np.inf)
    starts_full = reads.first_covers_outputs()
    best = np.empty(reads.buffer_shape, dtype=x.dtype)
    if not starts_full:
        best.fill(-np.inf)
    index = np.zeros(reads.buffer_shape, dtype=index_dtype)
    replaced = np.empty(reads.buffer_shape, dtype=bool)
    step = np.empty(reads.buffer_shape, dtype=index_dtype)
    bytes_ = index_dtype == np.uint8
    for offset, (region, window) in enumerate(reads.reads):
        if offset == 0 and starts_full:  # every window starts here: nothing to compare yet
            np.copyto(best[region], window)
            continue
        running, gt, s, at = best[region], replaced[region], step[region], index[region]
        np.greater(window, running, out=gt)
        np.maximum(running, window, out=running)
        np.multiply(gt.view(np.uint8) if bytes_ else gt, index_dtype.type(offset), out=s)
        np.maximum(at, s, out=at)
    if not reads.outputs(best).min() > -np.inf:  # NaN (min is then NaN) or -inf
        return None
    return reads.outputs(index)


def flat_positions(x_shape: tuple[int, ...], grid: WindowGrid) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Flat indices into a C-contiguous x: of each window's first element (an (N, C, *out) array,
    negative where the window starts in padding), and each kernel offset's shift from it.

    Cached (read-only): every block of planes but the last has the same shape.
    """
    return _cached_flat_positions(tuple(x_shape), grid.out_spatial, grid.stride, grid.pad_before, grid.kernel_size,
                                  grid.dilation)


@functools.lru_cache(maxsize=16)
def _cached_flat_positions(
    x_shape: tuple[int, ...], out_spatial: tuple[int, ...], stride: tuple[int, ...], pad_before: tuple[int, ...],
    kernel_size: tuple[int, ...], dilation: tuple[int, ...],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    n, c, *spatial = x_shape
    strides = [math.prod(spatial[d + 1:]) for d in range(len(spatial))]
    shift = np.array(
        [sum(j * d * st for j, d, st in zip(offset, dilation, strides)) for offset in np.ndindex(*kernel_size)],
        dtype=np.int64,
    )
    start = (np.arange(n * c, dtype=np.int64) * math.prod(spatial)).reshape(n, c, *(1,) * len(spatial))
    for axis, (o, s, lo, st) in enumerate(zip(out_spatial, stride, pad_before, strides)):
        start = start + ((np.arange(o, dtype=np.int64) * s - lo) * st).reshape((o,) + (1,) * (len(spatial) - axis - 1))
    start = np.broadcast_to(start, (n, c, *out_spatial)).copy()
    for array in (start, shift):
        array.setflags(write=False)
    return start, shift


def _max_gradient_by_index(dx: NDArray[Any], x: NDArray[Any], dy: NDArray[Any], grid: WindowGrid) -> None:
    """dx from each window's first-maximum offset and one scatter; the general path where x needs it.

    PyTorch saves these offsets in its forward; the protocol's backward is given only x, so it
    finds them again (the forward's passes plus a comparison) and then scatters dy with one
    ``np.add.at`` over flat indices, per block of planes (over the whole batch at once, the
    random writes to a large dx cost 5x more per element; ``np.bincount`` was 1.6x slower,
    with its copy into dx). Summing in reverse output order adds each element's gradients in
    row-major offset order, as :func:`_route_max_gradient` does, so both paths give bitwise
    the same dx.
    """
    index_dtype = np.dtype(np.uint8) if len(grid.offsets) <= 256 else np.dtype(np.int32)
    index = first_max_offsets(x, grid, index_dtype)
    if index is None:
        _route_max_gradient(dx, x, dy, grid)
        return
    start, shift = flat_positions(x.shape, grid)
    # Reversing every axis reverses the flat order; with disjoint windows an element gets at most
    # one gradient, so the order does not matter and the copies are saved.
    order = (slice(None, None, -1),) * index.ndim if windows_overlap(grid) else ()
    flat = shift.take(index[order])
    flat += start[order]
    if not dx.flags.c_contiguous:  # by_plane_blocks' blocks are; a reshaped copy would drop the writes
        raise ValueError("dx must be C-contiguous")
    dx.fill(0)
    np.add.at(dx.reshape(-1), flat.reshape(-1), dy[order].reshape(-1))


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
        lambda dxb, xb, dyb: _max_gradient_by_index(dxb, xb, dyb, grid), x.shape, compute_dtype(x.dtype), x, dy,
    )
    return np.ascontiguousarray(dx, dtype=x.dtype)


def _divisor(grid: WindowGrid, padding: Padding, count_include_pad: bool) -> NDArray[np.float64]:
    return window_counts(grid, include_padding=spec.check_flag(count_include_pad, "count_include_pad"), padding=padding)


def _window_sum(total: NDArray[Any], x: NDArray[Any], grid: WindowGrid) -> None:
    """total = window sums (padding adds nothing), in total's dtype."""
    if tiles_input(grid):  # disjoint windows: axis by axis (as _window_max), 15% faster on U-Net's 2x2x2
        total[...] = reduce_tiles(x.astype(total.dtype, copy=False), grid, np.add)
    else:
        _fold_windows(total, x, grid, np.add, 0.0)


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
        # Global pooling: one reduction per plane, where a pass per offset would take K = H * W
        # strided passes over single elements. einsum's row sums were measured 2.2x faster than
        # ndarray.sum's pairwise ones on ResNet-50's 7x7 planes (the order of the additions is the
        # accuracy bound's business, AVGPOOL-C14, not the spec's). Over a window view with small
        # trailing axes (2x2x2 tiles) einsum was slower than the passes: tiles use reduce_tiles.
        planes = x.reshape(*out_shape[:2], math.prod(grid.spatial)).astype(dtype, copy=False)
        total = np.einsum("ncj->nc", planes).reshape(out_shape)
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
        share = dy.astype(dtype, copy=False) / divisor
    if not divisor.all():  # a window with no counted position (all padding, count_include_pad=False) routes nothing
        share[np.broadcast_to(divisor == 0, share.shape)] = 0
    if covers_input(grid):  # global pooling: one share per plane, written in one broadcast
        dx = np.empty(x.shape, dtype=dtype)
        dx.reshape(*x.shape[:2], math.prod(grid.spatial))[...] = share.reshape(*x.shape[:2], 1)
    elif tiles_input(grid):  # disjoint windows: each element gets at most one share, no accumulation
        dx = repeat_tiles(share, grid)
    else:
        dx = by_plane_blocks(lambda d, sb: _spread(d, sb, grid), x.shape, dtype, share)
    return np.ascontiguousarray(dx, dtype=x.dtype)

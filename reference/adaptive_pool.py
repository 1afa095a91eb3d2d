"""Adaptive average and max pooling (global pooling is output size 1), forward and backward, N-d.

Window ``i`` of a dim of ``n`` positions with ``o`` outputs is the range ``[floor(i*n/o),
ceil((i+1)*n/o))`` (:func:`spec.adaptive.adaptive_windows`), and a window of the
operation is the box of one such range per dim. A sum or a maximum over a box is the
same reduction done one dim at a time, so every operation here is a few 1-D
reductions, each over one range per output along one axis (:func:`_reduce_along`):

* ranges of one length ``k`` tiling the axis (``o`` divides ``n``; then adaptive
  pooling is fixed-window pooling with kernel = stride = ``k``, ADAPTIVE-C4) are a
  reshape to ``(..., o, k, ...)``, with no copy and no index: a sum reduces its ``k``
  axis in one einsum (the PSPNet bins, whose data are large), a max takes ``k``
  passes over its views;
* otherwise a short loop over offsets ``j`` below the longest range, each step one
  gather of every range's ``j``-th element (``np.take``, on a planes-last copy)
  combined into the running result (a range shorter than ``j + 1`` keeps its result).

Global pooling (ResNet-50's head) is one reduction over each flattened plane.

The average's backward is a reduction of the same kind: the element at position ``p``
receives the share of every window covering it, and the windows covering ``p`` are a
range ``[first, last]`` of window indices per dim. The max's backward finds each
window's first maximum with the same loop, last dim first, carrying the position of
the running maximum (:func:`_first_maximum`), and adds ``dy`` there with one
``np.add.at`` over flat indices, per block of planes (:func:`_in_plane_blocks`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

import spec
from reference.conv import compute_dtype
from reference.pool import by_plane_blocks
from spec import Array
from spec.adaptive import adaptive_pool_output_shape, adaptive_windows


class _Ranges(NamedTuple):
    """One ``[start, end)`` range of positions along an axis per output (every range non-empty)."""

    starts: NDArray[np.intp]
    ends: NDArray[np.intp]

    def tile(self) -> int | None:
        """``k`` when the ranges are the consecutive blocks of length ``k`` (their union the whole axis), else None."""
        k = int(self.ends[0] - self.starts[0])
        blocks = np.arange(len(self.starts)) * k
        return k if np.array_equal(self.starts, blocks) and np.array_equal(self.ends, blocks + k) else None

    def shorter_than(self) -> list[NDArray[np.bool_] | None]:
        """Per offset ``j`` within the ranges, which ranges have a ``j``-th element (None: all)."""
        lengths = self.ends - self.starts
        return [None if (lengths > j).all() else lengths > j for j in range(int(lengths.max()))]


@functools.lru_cache(maxsize=256)
def _window_ranges(n: int, o: int) -> _Ranges:
    """The ``o`` adaptive windows over ``n`` positions (ADAPTIVE-C3)."""
    bounds = np.array(adaptive_windows(n, o), dtype=np.intp).reshape(o, 2)
    return _Ranges(bounds[:, 0], bounds[:, 1])


@functools.lru_cache(maxsize=256)
def _covering_ranges(n: int, o: int) -> _Ranges:
    """Per input position ``p``, the windows holding it: ``[first, last + 1)``, a range since starts and ends grow with i."""
    windows = _window_ranges(n, o)
    p = np.arange(n)
    return _Ranges(np.searchsorted(windows.ends, p, side="right"), np.searchsorted(windows.starts, p, side="right"))


def _by_offset(a: NDArray[Any], axis: int, ranges: _Ranges) -> Iterator[NDArray[Any]]:
    """Per offset ``j`` within the ranges, every range's ``j``-th element along ``axis``: (..., o, ...).

    A range shorter than ``j + 1`` gives its last element again. Tiling ranges give views of a
    reshape; others a gather (``np.take``).
    """
    o, k = len(ranges.starts), ranges.tile()
    if k is not None:
        blocks = a.reshape(a.shape[:axis] + (o, k) + a.shape[axis + 1:])
        for j in range(k):
            yield blocks[(slice(None),) * (axis + 1) + (j,)]
        return
    for j in range(len(ranges.shorter_than())):
        yield np.take(a, np.minimum(ranges.starts + j, ranges.ends - 1), axis=axis)


def _reduce_along(a: NDArray[Any], axis: int, ranges: _Ranges, kind: str) -> NDArray[Any]:
    """``result[..., i, ...] = sum or max of a[..., start_i:end_i, ...]`` along ``axis`` (NaN-propagating)."""
    k = ranges.tile()
    if k == 1:
        return a
    if k is not None and kind == "sum":
        # Blocks tiling the axis: a reshape, summed over k by einsum, 1.5x faster than np.sum and 1.6x
        # faster than k passes here (PSPNet's 60 -> 6, a reduction over a middle axis). A max over a
        # short middle axis of the reshape is slow in NumPy (10x the passes at k = 2): it takes the passes.
        lead, trail = math.prod(a.shape[:axis]), math.prod(a.shape[axis + 1:])
        blocks = a.reshape(lead, len(ranges.starts), k, trail)
        reduced: NDArray[Any] = np.einsum("aokb->aob", blocks)
        return reduced.reshape(a.shape[:axis] + (len(ranges.starts),) + a.shape[axis + 1:])
    combine = np.add if kind == "sum" else np.maximum
    offsets = zip(_by_offset(a, axis, ranges), ranges.shorter_than())
    result = next(offsets)[0]
    result = result if result.flags.owndata else result.copy()
    for values, real in offsets:
        if real is None or kind == "max":  # the max of a range re-reading its last element is the same
            combine(result, values, out=result)
        else:
            combine(result, values, out=result, where=_along(real, axis, a.ndim))
    return result


def _along(v: NDArray[Any], axis: int, ndim: int) -> NDArray[Any]:
    """A 1-D ``v`` shaped to broadcast along ``axis`` of an ``ndim``-d array."""
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return v.reshape(shape)


def _tiled(x_shape: tuple[int, ...], out_spatial: tuple[int, ...]) -> bool:
    """Whether every dim's windows tile it (``o`` divides ``n``)."""
    return all(_window_ranges(n, o).tile() is not None for n, o in zip(x_shape[2:], out_spatial))


def _planes_last(a: NDArray[Any]) -> NDArray[Any]:
    """(N, C, *S) as a contiguous (*S, N * C) copy.

    Where windows do not tile a dim, each offset's elements are gathered (``np.take``); along the last
    axis of (N, C, H, W) that copies one element at a time, about 2.5x slower than a strided slice,
    and dominated the max's backward (amp2d 13 -> 7: 1.5 ms of 4 ms were the three gathers of its W
    dim). With the planes last, every gather copies runs of N * C contiguous values: one transposing
    copy of x costs about what a single gather did.
    """
    planes = math.prod(a.shape[:2])
    return np.ascontiguousarray(np.moveaxis(a.reshape(planes, *a.shape[2:]), 0, -1))


def _planes_first(a: NDArray[Any], lead: tuple[int, ...]) -> NDArray[Any]:
    """The inverse of :func:`_planes_last`: (*S, N * C) as (N, C, *S) (a view)."""
    return np.moveaxis(a, -1, 0).reshape(*lead, *a.shape[:-1])


def _window_sizes(x_shape: tuple[int, ...], out_spatial: tuple[int, ...]) -> NDArray[np.float64]:
    """Each window's number of elements, (1, 1, *out_spatial)."""
    counts = np.ones((1, 1) + (1,) * len(out_spatial))
    for axis, (n, o) in enumerate(zip(x_shape[2:], out_spatial)):
        windows = _window_ranges(n, o)
        counts = counts * _along((windows.ends - windows.starts).astype(np.float64), axis + 2, len(x_shape))
    return counts


def _reduce_windows(a: NDArray[Any], out_spatial: tuple[int, ...], kind: str) -> NDArray[Any]:
    """(N, C, *S) -> (N, C, *out_spatial): the sum or max of every window, one dim at a time.

    The first dims first: their reductions run over whole contiguous rows and shrink the data before
    the last dim's reduction, which runs over short runs of elements.
    """
    out_shape = (*a.shape[:2], *out_spatial)
    if all(o == 1 for o in out_spatial):
        # Global pooling (ResNet-50's head): one reduction over each flattened plane, where one pass per
        # dim would read the data once and the partial sums again.
        planes = a.reshape(math.prod(a.shape[:2]), math.prod(a.shape[2:]))
        total: NDArray[Any] = np.einsum("pk->p", planes) if kind == "sum" else planes.max(axis=1)
        return total.reshape(out_shape)
    tiled = _tiled(a.shape, out_spatial)
    work, first = (a, 2) if tiled else (_planes_last(a), 0)
    for axis, (n, o) in enumerate(zip(a.shape[2:], out_spatial)):
        work = _reduce_along(work, first + axis, _window_ranges(n, o), kind)
    return work if tiled else _planes_first(work, a.shape[:2])


def adaptive_avg_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """y[n, c, i] = mean of x[n, c] over window i (the product of each dim's window)."""
    out_shape = adaptive_pool_output_shape(x, output_size=output_size)
    dtype = compute_dtype(x.dtype)
    total = _reduce_windows(x.astype(dtype, copy=False), out_shape[2:], "sum")
    total = total / _window_sizes(x.shape, out_shape[2:]).astype(dtype)
    return np.ascontiguousarray(total, dtype=x.dtype)


def adaptive_avg_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """dx: each dy element divided by its window's size and added to every element of the window."""
    out_shape = adaptive_pool_output_shape(x, output_size=output_size)
    spec.check_dy(dy, out_shape, x.dtype)
    dtype = compute_dtype(x.dtype)
    share = dy.astype(dtype) / _window_sizes(x.shape, out_shape[2:]).astype(dtype)
    if all(o == 1 for o in out_shape[2:]):  # global pooling: every element gets its plane's one share
        dx = np.empty(x.shape, dtype=x.dtype)
        dx[...] = share
        return dx
    # dx[p] = the sum of the shares of the windows covering p: per dim a range of windows (one window
    # when the windows tile the dim: a gather). The last dim first: the data grow back to x's size at
    # the first dim, whose gathers copy whole contiguous rows.
    tiled = _tiled(x.shape, out_shape[2:])
    work, first = (share, 2) if tiled else (_planes_last(share), 0)
    for axis in reversed(range(x.ndim - 2)):
        work = _reduce_along(work, first + axis, _covering_ranges(x.shape[axis + 2], out_shape[axis + 2]), "sum")
    dx = work if tiled else _planes_first(work, x.shape[:2])
    return np.ascontiguousarray(dx, dtype=x.dtype)


def _first_maximum(x: Array, out_spatial: tuple[int, ...]) -> NDArray[np.integer[Any]]:
    """Per window, the in-plane flat index of its first maximum in row-major order (of its first NaN
    if it holds one), (N, C, *out_spatial).

    One dim at a time, the last first: per (row, output column) the first maximum of the row's range;
    then per output the first row whose maximum is the window's, with the column found in that row.
    That is the first maximum in row-major order. The running maximum is replaced only by a strictly
    greater element; an all -inf range keeps its first element, and a range re-reading its last
    element (:func:`_by_offset`) changes nothing. NaN is rare: the first pass ignores it (the maxima
    still propagate it), and only when some window's maximum is NaN a second pass also lets a NaN
    replace a non-NaN (and nothing replace a NaN).
    """
    tiled = _tiled(x.shape, out_spatial)
    values, first = (x, 2) if tiled else (_planes_last(x), 0)
    maxima, offsets = _first_maximum_along_dims(values, first, out_spatial, nan=False)
    if np.isnan(maxima).any():
        maxima, offsets = _first_maximum_along_dims(values, first, out_spatial, nan=True)
    # The flat index from each dim's position (its window's start plus the offset found), int32 where it fits.
    spatial = x.shape[2:]
    plane = math.prod(spatial)
    chosen: NDArray[np.integer[Any]] = np.zeros(maxima.shape, dtype=np.int32 if plane < 2**31 else np.int64)
    for axis, offset in enumerate(offsets):
        starts = _window_ranges(spatial[axis], out_spatial[axis]).starts
        stride = math.prod(spatial[axis + 1:])
        chosen += offset * chosen.dtype.type(stride)
        chosen += _along(starts * stride, first + axis, maxima.ndim).astype(chosen.dtype)
    return chosen if tiled else _planes_first(chosen, x.shape[:2])


def _first_maximum_along_dims(
    values: NDArray[Any], first: int, out_spatial: tuple[int, ...], *, nan: bool,
) -> tuple[NDArray[Any], list[NDArray[np.integer[Any]]]]:
    """:func:`_first_maximum`'s passes over the dims (spatial dims from axis ``first`` on): (maxima, per
    spatial dim the offset of the chosen element within its window's range, shaped like the maxima).

    The offsets are small (uint8 where the ranges are at most 256 long): the index bookkeeping of the
    passes (replace where greater) moves a quarter of the bytes of an int32 flat index, measured
    on amp2d 13 -> 7 (a window's offsets along the dims done so far are carried, gathered per row
    like the values).
    """
    offsets: list[NDArray[np.integer[Any]]] = []  # the dims done so far, in dim order
    for axis in reversed(range(len(out_spatial))):
        ranges = _window_ranges(values.shape[first + axis], out_spatial[axis])
        length = int((ranges.ends - ranges.starts).max())
        dtype = np.dtype(np.uint8) if length <= 256 else np.dtype(np.int32)
        best: NDArray[Any] | None = None
        offset: NDArray[np.integer[Any]] | None = None
        carried: list[NDArray[np.integer[Any]]] = []
        gathers = [_by_offset(a, first + axis, ranges) for a in (values, *offsets)]
        for j, (candidate, *candidate_offsets) in enumerate(zip(*gathers)):
            if best is None or offset is None:
                best = candidate if candidate.flags.owndata else candidate.copy()
                offset = np.zeros(best.shape, dtype=dtype)
                carried = [c if c.flags.owndata else c.copy() for c in candidate_offsets]
                continue
            greater = candidate > best
            if nan:
                greater |= np.isnan(candidate) & ~np.isnan(best)
            np.maximum(best, candidate, out=best)
            replaced = greater.view(np.uint8)
            # offset = where(greater, j, offset): j grows, so a running maximum of j * greater.
            np.maximum(offset, replaced * dtype.type(j), out=offset)
            for mine, theirs in zip(carried, candidate_offsets):
                # mine = where(greater, theirs, mine) as arithmetic (np.where measured 3x slower per element);
                # unsigned wrap-around cancels exactly.
                mine += replaced * (theirs - mine)
        assert best is not None and offset is not None
        values, offsets = best, [offset, *carried]
    return values, offsets


def adaptive_max_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """y[n, c, i] = max of x[n, c] over window i; a NaN in the window makes it NaN."""
    out_shape = adaptive_pool_output_shape(x, output_size=output_size)
    if _tiled(x.shape, out_shape[2:]):
        # Reshapes and passes over views, no work arrays of x's size: by blocks was measured 1.8x slower
        # (amp2d n4 c512 60 -> 6, 18 planes per block).
        return np.array(_reduce_windows(x, out_shape[2:], "max"), dtype=x.dtype, order="C", copy=True)

    def maxima(y: NDArray[Any], xb: NDArray[Any]) -> None:
        y[...] = _reduce_windows(xb, out_shape[2:], "max")

    return _in_plane_blocks(maxima, out_shape, x.dtype, x)


#: Bytes of x per block of planes for the adaptive max: measured on amp2d n8 c256 13 -> 7 with forward and
#: backward calls alternating, 20 page faults per pair at 512 KiB against 1200 at 1 MiB and 2700 at 2 MiB or
#: unblocked (forward 2.3 / 3.3 / 6.0 ms, backward 4.3 / 4.8 / 6.2 ms, load ~8); 256 KiB was slower again.
BLOCK_BYTES = 1 << 19


def _in_plane_blocks(kernel: Any, out_shape: tuple[int, ...], dtype: np.dtype[Any], *arrays: NDArray[Any]) -> NDArray[Any]:
    """:func:`reference.pool.by_plane_blocks` with :data:`BLOCK_BYTES`: the adaptive max, a block of planes at a time.

    Over the whole batch the fresh work arrays (a planes-last copy of x, the gathers) were
    first-touch page faults on every call (the allocator hands a large freed heap back to the
    system between calls): about 2/3 of the time of amp2d n8 c256 13 -> 7's search (4.8 ms,
    against 1.5 ms on arrays already touched). Small blocks keep the work arrays small and reused.
    """
    return by_plane_blocks(kernel, out_shape, dtype, *arrays, block_bytes=BLOCK_BYTES)


def adaptive_max_pool_indices(x: Array, *, output_size: tuple[int, ...]) -> NDArray[np.int64]:
    """int64, y's shape: the in-plane row-major flat index of the element each window selects (PyTorch's indices)."""
    out_shape = adaptive_pool_output_shape(x, output_size=output_size)

    def indices(index: NDArray[np.int64], xb: NDArray[Any]) -> None:
        index[...] = _first_maximum(xb, out_shape[2:])

    return _in_plane_blocks(indices, out_shape, np.dtype(np.int64), x)


def adaptive_max_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """dx: each dy element added to the first maximum of its window (accumulated over overlapping windows)."""
    out_shape = adaptive_pool_output_shape(x, output_size=output_size)
    spec.check_dy(dy, out_shape, x.dtype)
    plane = math.prod(x.shape[2:])

    def route(dx: NDArray[np.float64], xb: NDArray[Any], dyb: NDArray[Any]) -> None:
        # Flat indices into the block's dx, in row-major window order per plane; np.add.at adds in that
        # order from 0, as np.bincount did (in float64 for every dtype, as bincount's weights are).
        planes = (np.arange(xb.shape[0], dtype=np.int64) * plane).reshape((-1,) + (1,) * (xb.ndim - 1))
        flat = _first_maximum(xb, out_shape[2:]) + planes
        dx.fill(0)
        np.add.at(dx.reshape(-1), flat.reshape(-1), dyb.astype(np.float64).reshape(-1))

    dx = _in_plane_blocks(route, x.shape, np.dtype(np.float64), x, dy)
    return np.ascontiguousarray(dx, dtype=x.dtype)

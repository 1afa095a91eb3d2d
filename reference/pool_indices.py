"""Max-pool indices: which input element each max-pooling window selects.

For every output element, the row-major flat index within its input plane
``x[n, c]`` of the element the gradient rule routes to: the first real element
attaining the window's maximum, in row-major order of the kernel offsets. A
window holding a NaN selects its first NaN; a window with no real element
(only padding or the ceil-mode overhang) gets -1.

Where every window's maximum is finite or +inf, the indices are the max-pool
backward's: the first-maximum offset of each window
(:func:`reference.pool.first_max_offsets`, one running maximum over the offsets)
turned into a flat position, per cache block of planes. That path was measured 4x
faster than the general one below (SegNet's 2x2 pool of 4 x 64 planes of 224 x 224:
218 ms to 53 ms), whose masked stores (``np.copyto(where=)``) cost 3-10x more per
element than arithmetic.

A block with a NaN or -inf maximum (a NaN, an empty window, or only real -inf
elements) takes two passes over the kernel offsets, each step a whole-array operation
on the slice of windows that read a real element there (the windowing primitive's
``inside_slices``): the first takes the windows' maxima (NaN-propagating), the
second walks the offsets in reverse row-major order and records, where the
element equals the maximum (or is a NaN in a NaN window), its flat index; the
last record standing is the first such element in row-major order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

import spec
from reference.pool import by_plane_blocks, first_max_offsets, flat_positions
from reference.windows import WindowGrid, window_grid
from spec import Array, Padding

_LEAD = (slice(None), slice(None))


def _offset_flat_index(grid: WindowGrid, offset: tuple[int, ...]) -> NDArray[np.int64]:
    """For one kernel offset, the flat in-plane index each window reads there, (1, 1, *out_spatial)."""
    plane_strides = [int(np.prod(grid.spatial[axis + 1:], dtype=np.int64)) for axis in range(len(grid.spatial))]
    flat: NDArray[np.int64] = np.zeros((1, 1) + (1,) * len(grid.spatial), dtype=np.int64)
    for axis, (positions, j, step) in enumerate(zip(grid.positions, offset, plane_strides)):
        shape = [1] * (len(grid.spatial) + 2)
        shape[axis + 2] = positions.shape[0]
        flat = flat + (positions[:, j] * step).reshape(shape)
    return flat


def max_pool_indices(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> NDArray[np.int64]:
    """int64 indices shaped like ``max_pool_forward``'s y: the in-plane flat index each window selects, -1 if none."""
    out_shape = spec.pool_output_shape(
        x, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
    )
    grid = window_grid(
        x.shape[2:], kernel_size=tuple(kernel_size), stride=tuple(stride), padding=padding,
        dilation=tuple(dilation), out_spatial=out_shape[2:],
    )
    return by_plane_blocks(lambda index, xb: _block_indices(index, xb, grid), out_shape, np.dtype(np.int64), x)


def _block_indices(index: NDArray[np.int64], x: NDArray[Any], grid: WindowGrid) -> None:
    """index = the in-plane flat index each window of the (planes, 1, *spatial) block ``x`` selects."""
    offsets = first_max_offsets(x, grid, np.dtype(np.uint8) if len(grid.offsets) <= 256 else np.dtype(np.int32))
    if offsets is not None:
        start, shift = flat_positions((1, 1, *grid.spatial), grid)  # window starts within one plane
        np.add(shift.take(offsets), start, out=index)
        return
    out_shape = index.shape
    # The window maxima, NaN-propagating (as max_pool_forward); -inf where a window holds no real element.
    peak: NDArray[Any] = np.full(out_shape, -np.inf, dtype=x.dtype)
    for out_slices, in_slices in grid.inside_slices:
        region = peak[_LEAD + out_slices]
        np.maximum(region, x[_LEAD + in_slices], out=region)
    nan = bool(np.isnan(x).any())
    index.fill(-1)
    # Offsets in reverse row-major order, each overwriting where its element equals the maximum (or is a NaN
    # where the maximum is NaN): the last write is the first such element. Empty windows are never written.
    for offset, (out_slices, in_slices) in reversed(list(zip(grid.offsets, grid.inside_slices))):
        at = _LEAD + out_slices
        value, target = x[_LEAD + in_slices], peak[at]
        if value.size == 0:
            continue
        hit = value == target
        if nan:
            hit |= np.isnan(value) & np.isnan(target)
        np.copyto(index[at], _offset_flat_index(grid, offset)[at], where=hit)

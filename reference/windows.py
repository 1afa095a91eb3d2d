"""The one windowing primitive behind convolution, max pooling and average pooling.

A window operation reads, for every output position ``o`` and kernel offset
``j`` (per spatial dim), the input element at ``o * stride + j * dilation -
pad_before``. For a *fixed* offset ``j`` those elements form a strided slice of
the padded input with the output's shape. So every operation here is a short
loop over kernel offsets (row-major order), each step a whole-array NumPy
operation on one slice: no loop over batch or output positions.

>>> g = window_grid((5,), kernel_size=(2,), stride=(2,), padding=((0, 0),), dilation=(1,), out_spatial=(3,))
>>> g.pad_after       # ceil mode's third window overhangs the input by one element
(1,)
>>> [s[0] for s in g.slices]
[slice(0, 5, 2), slice(1, 6, 2)]
>>> g.positions[0].tolist()    # input index read by output o at offset j
[[0, 1], [2, 3], [4, 5]]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from spec import Padding


class WindowGrid(NamedTuple):
    """Where every window of a window operation reads, per spatial dimension."""

    spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    pad_before: tuple[int, ...]
    #: Padding after the input, including any ceil-mode overhang.
    pad_after: tuple[int, ...]
    #: Kernel offsets in row-major order, and the padded-input slice of each.
    offsets: tuple[tuple[int, ...], ...]
    slices: tuple[tuple[slice, ...], ...]
    #: Per dim, an (out, k) array of the (unpadded) input index each window reads.
    positions: tuple[NDArray[np.int64], ...]


def window_grid(
    spatial: tuple[int, ...],
    *,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: Padding,
    dilation: tuple[int, ...],
    out_spatial: tuple[int, ...],
) -> WindowGrid:
    """Lay out the windows of an operation whose output size is already known."""
    pad_after = []
    positions = []
    for n, k, s, (lo, hi), d, o in zip(spatial, kernel_size, stride, padding, dilation, out_spatial):
        needed = (o - 1) * s + d * (k - 1) + 1  # padded length the last window reaches
        pad_after.append(max(hi, needed - n - lo))
        positions.append(np.arange(o)[:, None] * s + np.arange(k)[None, :] * d - lo)
    offsets = tuple(np.ndindex(*kernel_size))
    slices = tuple(
        tuple(slice(j * d, j * d + (o - 1) * s + 1, s) for j, d, o, s in zip(offset, dilation, out_spatial, stride))
        for offset in offsets
    )
    return WindowGrid(
        spatial, out_spatial, tuple(lo for lo, _ in padding), tuple(pad_after), offsets, slices, tuple(positions)
    )


def pad(x: NDArray[Any], grid: WindowGrid, value: float) -> NDArray[Any]:
    """Pad the spatial dims of (N, C, *spatial) ``x`` so that every window is in bounds."""
    widths = [(0, 0), (0, 0), *zip(grid.pad_before, grid.pad_after)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def crop(xp: NDArray[Any], grid: WindowGrid) -> NDArray[Any]:
    """The inverse of :func:`pad`: the region of the padded array holding the input."""
    index = (slice(None), slice(None)) + tuple(slice(lo, lo + n) for lo, n in zip(grid.pad_before, grid.spatial))
    return xp[index]


def zeros_padded(shape: tuple[int, ...], grid: WindowGrid, dtype: np.dtype[Any]) -> NDArray[Any]:
    """A zero array shaped like ``pad(x)`` for an ``x`` of ``shape``: where gradients accumulate."""
    padded = tuple(lo + n + hi for lo, n, hi in zip(grid.pad_before, grid.spatial, grid.pad_after))
    return np.zeros((*shape[:2], *padded), dtype=dtype)


def _outer_product(per_dim: list[NDArray[Any]]) -> NDArray[Any]:
    """Broadcast one 1-D array per spatial dim to the (1, 1, *out_spatial) grid and multiply."""
    result: NDArray[Any] = np.ones((1, 1) + (1,) * len(per_dim), dtype=per_dim[0].dtype)
    for axis, values in enumerate(per_dim):
        shape = [1] * (len(per_dim) + 2)
        shape[axis + 2] = values.shape[0]
        result = result * values.reshape(shape)
    return result


def inside_mask(grid: WindowGrid, offset: tuple[int, ...]) -> NDArray[np.bool_]:
    """For one kernel offset, which windows read a real input element (not padding)."""
    per_dim = [
        (pos[:, j] >= 0) & (pos[:, j] < n) for pos, j, n in zip(grid.positions, offset, grid.spatial)
    ]
    return _outer_product(per_dim).astype(bool)


def window_counts(grid: WindowGrid, *, include_padding: bool, padding: Padding) -> NDArray[np.float64]:
    """How many positions of each window lie inside the input (or inside the padded input).

    The region is a box, so the count is a product of per-dim counts. The
    ceil-mode overhang beyond the padded input is never counted.
    """
    per_dim = []
    for pos, n, (lo, hi) in zip(grid.positions, grid.spatial, padding):
        first, end = (-lo, n + hi) if include_padding else (0, n)
        per_dim.append(((pos >= first) & (pos < end)).sum(axis=1).astype(np.float64))
    return _outer_product(per_dim)

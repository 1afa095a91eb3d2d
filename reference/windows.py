"""The one windowing primitive behind convolution, max pooling and average pooling.

A window operation reads, for every output position ``o`` and kernel offset
``j`` (per spatial dim), the input element at ``o * stride + j * dilation -
pad_before``. For a *fixed* offset ``j`` those elements form a strided slice of
the padded input with the output's shape. So every operation here is a short
loop over kernel offsets (row-major order), each step a whole-array NumPy
operation on one slice: no loop over batch or output positions. Where one pass is
better (im2col, global pooling), :func:`window_view` gives all the windows at once
as a strided view, copied or reduced by a single NumPy call.

>>> g = window_grid((5,), kernel_size=(2,), stride=(2,), padding=((0, 0),), dilation=(1,), out_spatial=(3,))
>>> g.pad_after       # ceil mode's third window overhangs the input by one element
(1,)
>>> [s[0] for s in g.slices]
[slice(0, 5, 2), slice(1, 6, 2)]
>>> g.positions[0].tolist()    # input index read by output o at offset j
[[0, 1], [2, 3], [4, 5]]

Without the padded copy: at each offset, the outputs whose windows read a real
element there, and the input elements they read (offset 1 of output 2 is the overhang):

>>> [(out[0], inp[0]) for out, inp in g.inside_slices]
[(slice(0, 3, None), slice(0, 5, 2)), (slice(0, 2, None), slice(1, 4, 2))]
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
    #: The operation's kernel size, stride and dilation, one entry per spatial dim.
    kernel_size: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    #: Per kernel offset (row-major), ``(out_slices, in_slices)``: the output positions whose
    #: window reads a real input element at that offset, and those elements of the *unpadded*
    #: input (both regions have the same shape; empty when every read falls in padding).
    inside_slices: tuple[tuple[tuple[slice, ...], tuple[slice, ...]], ...] = ()


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
    inside = tuple(
        _inside_slices(offset, spatial, out_spatial, stride, padding, dilation) for offset in offsets
    )
    return WindowGrid(
        spatial, out_spatial, tuple(lo for lo, _ in padding), tuple(pad_after), offsets, slices, tuple(positions),
        tuple(kernel_size), tuple(stride), tuple(dilation), inside,
    )


def _inside_slices(
    offset: tuple[int, ...], spatial: tuple[int, ...], out_spatial: tuple[int, ...], stride: tuple[int, ...],
    padding: Padding, dilation: tuple[int, ...],
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Output o reads input o * s + (j * d - lo); keep the run of o for which that is in [0, n)."""
    out_slices, in_slices = [], []
    for j, n, o, s, (lo, _), d in zip(offset, spatial, out_spatial, stride, padding, dilation):
        shift = j * d - lo
        first = max(0, -(shift // s))  # smallest o with o * s + shift >= 0
        stop = min(o, (n - 1 - shift) // s + 1)  # one past the largest o with o * s + shift < n
        if stop <= first:
            out_slices.append(slice(0, 0))
            in_slices.append(slice(0, 0))
            continue
        start = first * s + shift
        out_slices.append(slice(first, stop))
        in_slices.append(slice(start, start + (stop - first - 1) * s + 1, s))
    return tuple(out_slices), tuple(in_slices)


def pad(x: NDArray[Any], grid: WindowGrid, value: float) -> NDArray[Any]:
    """Pad the spatial dims of (N, C, *spatial) ``x`` so that every window is in bounds."""
    widths = [(0, 0), (0, 0), *zip(grid.pad_before, grid.pad_after)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def pad_if_needed(x: NDArray[Any], grid: WindowGrid, value: float) -> NDArray[Any]:
    """:func:`pad`, or ``x`` itself when no window reaches outside it (callers only read the result)."""
    if any(grid.pad_before) or any(grid.pad_after):
        return pad(x, grid, value)
    return x


def window_view(xp: NDArray[Any], grid: WindowGrid) -> NDArray[Any]:
    """A read-only (N, C, *out_spatial, *kernel_size) view of a padded ``xp``, no copy.

    ``view[n, c, o..., j...] = xp[n, c, o * stride + j * dilation]`` per spatial dim.

    >>> g = window_grid((5,), kernel_size=(2,), stride=(2,), padding=((0, 0),), dilation=(2,), out_spatial=(2,))
    >>> window_view(np.arange(5.0).reshape(1, 1, 5), g)[0, 0].tolist()
    [[0.0, 2.0], [2.0, 4.0]]
    """
    ndim = len(grid.spatial)
    dilated = tuple(d * (k - 1) + 1 for k, d in zip(grid.kernel_size, grid.dilation))
    view = np.lib.stride_tricks.sliding_window_view(xp, dilated, axis=tuple(range(2, 2 + ndim)))
    starts = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(grid.out_spatial, grid.stride))
    taps = tuple(slice(None, None, d) for d in grid.dilation)
    return view[(slice(None), slice(None)) + starts + taps]


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

"""Adaptive average and max pooling (global pooling is output size 1), forward and backward, N-d.

Window ``i`` of a dim of ``n`` positions with ``o`` outputs is ``[floor(i*n/o),
ceil((i+1)*n/o))`` (:func:`spec.adaptive.adaptive_windows`). Windows differ in
length, so they are laid out per dim as an ``(o, L)`` array of positions, ``L``
the longest window, with a mask of the real ones (a shorter window's tail
repeats its last position and is masked out). One fancy-indexing gather reads
every window at once as ``(N, C, o_1, L_1, ..., o_k, L_k)``, in row-major
order of the offsets within each window; the forward reduces it (sum / count,
or max with masked positions at -inf), the backward adds each window's share
back with one ``bincount`` over the flat input indices.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

import spec
from reference.conv import compute_dtype
from spec import Array
from spec.adaptive import adaptive_pool_output_shape, adaptive_windows


class _Layout(NamedTuple):
    out_shape: tuple[int, ...]
    #: Per dim, the (o, L) input positions, shaped to broadcast over (o_1, L_1, ..., o_k, L_k).
    positions: tuple[NDArray[np.intp], ...]
    #: Which gathered positions are real, (o_1, L_1, ..., o_k, L_k).
    mask: NDArray[np.bool_]
    #: Window sizes, (o_1, ..., o_k).
    counts: NDArray[np.float64]


def _layout(x: Array, output_size: tuple[int, ...]) -> _Layout:
    out_shape = adaptive_pool_output_shape(x, output_size=output_size)
    ndim = x.ndim - 2
    positions, mask = [], np.ones((1,) * (2 * ndim), dtype=bool)
    counts = np.ones((1,) * ndim)
    for axis, (n, o) in enumerate(zip(x.shape[2:], out_shape[2:])):
        bounds = np.array(adaptive_windows(n, o)).reshape(o, 2)
        starts, lengths = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
        offsets = np.arange(int(lengths.max()))
        real = offsets[None, :] < lengths[:, None]
        at = np.where(real, starts[:, None] + offsets[None, :], (bounds[:, 1] - 1)[:, None])
        shape = [1] * (2 * ndim)
        shape[2 * axis: 2 * axis + 2] = at.shape
        positions.append(at.reshape(shape).astype(np.intp))
        mask = mask & real.reshape(shape)
        count_shape = [1] * ndim
        count_shape[axis] = o
        counts = counts * lengths.reshape(count_shape)
    return _Layout(out_shape, tuple(positions), mask, counts)


def _gather(x: NDArray[Any], layout: _Layout) -> NDArray[Any]:
    """Every window, (N, C, o_1, L_1, ..., o_k, L_k)."""
    index: tuple[Any, ...] = (slice(None), slice(None), *layout.positions)
    windows: NDArray[Any] = x[index]
    return windows


def _window_axes(ndim: int) -> tuple[int, ...]:
    return tuple(3 + 2 * axis for axis in range(ndim))


def _flat_input_index(x_shape: tuple[int, ...], layout: _Layout) -> NDArray[np.intp]:
    """The flat index into x of every gathered element, (N, C, o_1, L_1, ..., o_k, L_k)."""
    n, c = x_shape[:2]
    ndim = len(x_shape) - 2
    plane = np.ravel_multi_index(np.broadcast_arrays(*layout.positions), x_shape[2:])
    base = (np.arange(n * c) * math.prod(x_shape[2:])).reshape((n, c) + (1,) * (2 * ndim))
    flat: NDArray[np.intp] = base + plane
    return flat


def _scatter(x: Array, flat: NDArray[np.intp], weights: NDArray[Any]) -> Array:
    """dx: the sum of ``weights`` at each flat input index."""
    dx = np.bincount(flat.ravel(), weights=weights.ravel(), minlength=x.size)
    return np.ascontiguousarray(dx.reshape(x.shape), dtype=x.dtype)


def adaptive_avg_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """y[n, c, i] = mean of x[n, c] over window i (the product of each dim's window)."""
    layout = _layout(x, output_size)
    dtype = compute_dtype(x.dtype)
    windows = np.where(layout.mask, _gather(x.astype(dtype, copy=False), layout), 0)
    total = windows.sum(axis=_window_axes(x.ndim - 2), dtype=dtype)
    total /= layout.counts.astype(dtype)
    return np.ascontiguousarray(total, dtype=x.dtype)


def adaptive_avg_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """dx: each dy element divided by its window's size and added to every element of the window."""
    layout = _layout(x, output_size)
    spec.check_dy(dy, layout.out_shape, x.dtype)
    dtype = compute_dtype(x.dtype)
    share = dy.astype(dtype) / layout.counts.astype(dtype)
    ndim = x.ndim - 2
    expanded = np.expand_dims(share, _window_axes(ndim))  # (N, C, o_1, 1, ..., o_k, 1)
    weights = np.where(layout.mask, expanded, 0)
    return _scatter(x, _flat_input_index(x.shape, layout), weights)


def _taps(layout: _Layout) -> int:
    """Offsets per gathered window: the product of the longest window of each dim."""
    return math.prod(layout.mask.shape[1::2])


def _first_maximum(x: Array, layout: _Layout) -> NDArray[np.intp]:
    """Per window, the position (in row-major order of its offsets) of its first maximum; a NaN's if it holds one."""
    ndim = x.ndim - 2
    windows = np.where(layout.mask, _gather(x, layout), -np.inf)
    order = (0, 1, *range(2, 2 + 2 * ndim, 2), *_window_axes(ndim))
    flat = windows.transpose(order).reshape(*x.shape[:2], *layout.out_shape[2:], _taps(layout))
    choice = np.argmax(flat, axis=-1)  # the first maximum, or the first NaN (argmax treats NaN as largest)
    # A window whose real elements are all -inf: a masked -inf may come first; take the first real element,
    # offset 0, which every window has.
    all_minus_inf = np.take_along_axis(flat, choice[..., None], axis=-1)[..., 0] == -np.inf
    return np.where(all_minus_inf, 0, choice)


def _selected_flat_index(x: Array, layout: _Layout) -> NDArray[np.intp]:
    """Per output element, the flat index into x of the element its window selects."""
    ndim = x.ndim - 2
    choice = _first_maximum(x, layout)
    flat = _flat_input_index(x.shape, layout)
    flat = np.broadcast_to(flat, (*x.shape[:2], *flat.shape[2:]))
    order = (0, 1, *range(2, 2 + 2 * ndim, 2), *_window_axes(ndim))
    flat = flat.transpose(order).reshape(*x.shape[:2], *layout.out_shape[2:], _taps(layout))
    selected: NDArray[np.intp] = np.take_along_axis(flat, choice[..., None], axis=-1)[..., 0]
    return selected


def adaptive_max_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """y[n, c, i] = max of x[n, c] over window i; a NaN in the window makes it NaN."""
    layout = _layout(x, output_size)
    windows = np.where(layout.mask, _gather(x, layout), -np.inf)
    y = windows.max(axis=_window_axes(x.ndim - 2))
    return np.ascontiguousarray(y, dtype=x.dtype)


def adaptive_max_pool_indices(x: Array, *, output_size: tuple[int, ...]) -> NDArray[np.int64]:
    """int64, y's shape: the in-plane row-major flat index of the element each window selects (PyTorch's indices)."""
    layout = _layout(x, output_size)
    plane = math.prod(x.shape[2:])
    return (_selected_flat_index(x, layout) % max(plane, 1)).astype(np.int64)


def adaptive_max_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """dx: each dy element added to the first maximum of its window (accumulated over overlapping windows)."""
    layout = _layout(x, output_size)
    spec.check_dy(dy, layout.out_shape, x.dtype)
    dtype = compute_dtype(x.dtype)
    return _scatter(x, _selected_flat_index(x, layout), dy.astype(dtype))

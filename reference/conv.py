"""Convolution (cross-correlation), forward and backward, in any number of spatial dims.

Forward, for sample n, output channel o in group g and output position p::

    y[n, o, p] = b[o] + sum_{c in group g} sum_j  w[o, c - g*C_in/G, j] * x_pad[n, c, p*s + j*d]

The kernel is not flipped. Computed as im2col + matrix products: ``cols`` holds,
for every kernel offset j and output position p, the input element the window
of p reads at j: ``cols[., (c, j), p] = x_pad[n, g*Cg + c, p*s + j*d]``, built by
one copy from a strided window view of the padded input (no padded copy when
nothing is padded). Forward: per sample and group, ``y[n, g] = W[g] . cols[n, g]``,
written straight into y's memory; for a 1x1, stride-1, unpadded convolution
``cols`` is x itself and this is a plain matmul. (Below BATCH_MAJOR_MIN_POSITIONS
output positions per sample, one product per group over the whole batch instead,
then transposed into y.) Backward: ``cols`` laid out
group-major over the whole batch gives dW = dY . colsᵀ (the correlation of X with
dY) in one product per group, db sums dY over batch and space, and
dcols = Wᵀ . dY is added back offset by offset into the unpadded dx (col2im: the
full convolution of dY, zero-inserted by the stride, with W); when the windows
tile the input (stride == kernel, no padding) col2im is one copy instead.

The products run on one BLAS thread by default (:mod:`reference.blas`): on a
shared machine OpenBLAS's threads wait for each other on every product, and a busy
neighbour then multiplies the reference's time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

import spec
from reference.blas import with_blas_threads
from reference.windows import WindowGrid, pad_if_needed, tiles_input, window_grid, window_view
from spec import Array, Padding

#: Output positions per sample from which the forward product and dcols run per sample
#: (batch-major); below it, one product per group over the whole batch, because a
#: product with few columns spends its time re-packing W once per sample.
BATCH_MAJOR_MIN_POSITIONS = 128


def compute_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """float16 and bfloat16 are computed in float32 (the spec's default accumulation; NumPy has no
    fast matmul for them); the others in place."""
    return np.dtype(np.float32) if dtype.name in ("float16", "bfloat16") else dtype


def _grid(x: Array, w: Array, out_shape: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
          dilation: tuple[int, ...]) -> WindowGrid:
    return window_grid(
        x.shape[2:], kernel_size=w.shape[2:], stride=stride, padding=padding, dilation=dilation,
        out_spatial=out_shape[2:],
    )


def im2col(x: Array, grid: WindowGrid, groups: int, dtype: np.dtype[Any], *, batch_major: bool) -> NDArray[Any]:
    """The input element each (kernel offset, output position) reads, laid out for a matmul.

    ``batch_major``: (N, G, Cg * K, P), ``cols[n, g, (c, j...), p...]``, one product per
    sample and group. Otherwise (G, Cg * K, N * P), ``cols[g, (c, j...), (n, p...)]``,
    one product per group over the whole batch. K kernel taps, P output positions.
    """
    n, c = x.shape[:2]
    cg, ndim = c // groups, len(grid.spatial)
    taps, positions = math.prod(grid.kernel_size), math.prod(grid.out_spatial)
    view = window_view(pad_if_needed(x.astype(dtype, copy=False), grid, 0.0), grid)  # (N, C, *out, *K)
    view = view.reshape(n, groups, cg, *view.shape[2:])
    out_axes, tap_axes = tuple(range(3, 3 + ndim)), tuple(range(3 + ndim, 3 + 2 * ndim))
    if batch_major:  # a 1x1 stride-1 unpadded view is x itself, already contiguous: no copy
        return np.ascontiguousarray(view.transpose(0, 1, 2, *tap_axes, *out_axes)).reshape(n, groups, cg * taps, positions)
    return np.ascontiguousarray(view.transpose(1, 2, *tap_axes, 0, *out_axes)).reshape(groups, cg * taps, n * positions)


def col2im(dcols: NDArray[Any], grid: WindowGrid, x_shape: tuple[int, ...], groups: int) -> NDArray[Any]:
    """dx: each (N, G, Cg * K, P) column gradient added to the input element its window read there."""
    n, c = x_shape[:2]
    if tiles_input(grid):
        # Disjoint windows (stride == kernel, no padding: the U-Net's 2x2/2 up-convolutions, whose forward
        # is this col2im): every element receives at most one entry, so col2im is one copy through the
        # window view instead of K accumulating passes over dx (measured 1.2-1.5x faster on those layers).
        covered = all(o * k == size for o, k, size in zip(grid.out_spatial, grid.kernel_size, x_shape[2:]))
        dx = (np.empty if covered else np.zeros)(x_shape, dtype=dcols.dtype)
        ndim = len(grid.spatial)
        entries = dcols.reshape(n, c, *grid.kernel_size, *grid.out_spatial)  # (N, C, *K, *out)
        order = (0, 1, *range(2 + ndim, 2 + 2 * ndim), *range(2, 2 + ndim))
        window_view(dx, grid, writeable=True)[...] = entries.transpose(order)
        return dx
    dx = np.zeros(x_shape, dtype=dcols.dtype)
    dxg = dx.reshape(n, groups, c // groups, *x_shape[2:])
    windows = dcols.reshape(n, groups, c // groups, len(grid.offsets), *grid.out_spatial)
    lead = (slice(None),) * 3
    for index, (out_slices, in_slices) in enumerate(grid.inside_slices):
        dxg[lead + in_slices] += windows[lead + (index,) + out_slices]
    return dx


@with_blas_threads
def conv_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> Array:
    """y = conv(x, w) + b. Shapes: x (N, C_in, *S), w (C_out, C_in/groups, *K), y (N, C_out, *S_out)."""
    out_shape = spec.conv_output_shape(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    dtype = compute_dtype(x.dtype)
    grid = _grid(x, w, out_shape, stride, padding, dilation)
    n, c_out = out_shape[:2]
    og, positions = c_out // groups, math.prod(out_shape[2:])
    wg = w.astype(dtype, copy=False).reshape(groups, og, -1)
    y = np.empty(out_shape, dtype=dtype)
    yg = y.reshape(n, groups, og, positions)
    if positions >= BATCH_MAJOR_MIN_POSITIONS:
        np.matmul(wg, im2col(x, grid, groups, dtype, batch_major=True), out=yg)
    else:
        products = np.matmul(wg, im2col(x, grid, groups, dtype, batch_major=False))  # (G, Og, N * P)
        yg[...] = products.reshape(groups, og, n, positions).transpose(2, 0, 1, 3)
    if b is not None:
        y += b.astype(dtype, copy=False).reshape((c_out,) + (1,) * (len(out_shape) - 2))
    return np.ascontiguousarray(y, dtype=x.dtype)


@with_blas_threads
def conv_backward(
    x: Array, w: Array, dy: Array, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> tuple[Array, Array, Array]:
    """(dx, dw, db) for upstream gradient ``dy`` of the forward output's shape."""
    out_shape = spec.conv_output_shape(x, w, None, stride=stride, padding=padding, dilation=dilation, groups=groups)
    spec.check_dy(dy, out_shape, x.dtype)
    dtype = compute_dtype(x.dtype)
    grid = _grid(x, w, out_shape, stride, padding, dilation)
    n, c_out = out_shape[:2]
    og, positions = c_out // groups, math.prod(out_shape[2:])
    dyc = dy.astype(dtype, copy=False)
    # dY group-major over the batch, (G, Og, N * P): one product per group for dW, and db.
    dyg = np.ascontiguousarray(dyc.reshape(n, groups, og, positions).transpose(1, 2, 0, 3)).reshape(groups, og, n * positions)
    cols = im2col(x, grid, groups, dtype, batch_major=False)  # (G, Cg * K, N * P)
    dw = np.matmul(dyg, cols.transpose(0, 2, 1)).reshape(w.shape)
    del cols
    db = dyg.sum(axis=2).reshape(c_out)
    wt = w.astype(dtype, copy=False).reshape(groups, og, -1).transpose(0, 2, 1)  # (G, Cg * K, Og)
    if og == 1:  # a product over one output channel (depthwise): the same numbers, without N * G tiny GEMMs
        dcols = wt * dyc.reshape(n, groups, 1, positions)  # (N, G, Cg * K, P)
    elif positions >= BATCH_MAJOR_MIN_POSITIONS:
        dcols = np.matmul(wt, dyc.reshape(n, groups, og, positions))  # (N, G, Cg * K, P)
    else:
        dcols = np.matmul(wt, dyg).reshape(groups, wt.shape[1], n, positions).transpose(2, 0, 1, 3)
    return (
        np.ascontiguousarray(col2im(dcols, grid, x.shape, groups), dtype=x.dtype),
        np.ascontiguousarray(dw, dtype=x.dtype),
        np.ascontiguousarray(db, dtype=x.dtype),
    )

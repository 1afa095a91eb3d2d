"""Transposed convolution, forward and backward, in any number of spatial dims.

The adjoint of convolution with respect to its input. Input element ``i`` of
channel ``c`` (group ``g``) scatters to output position ``o = i*s + j*d - p_before``::

    y[n, g*O_g + o_c, o] = b[g*O_g + o_c]
        + sum_{c < C_g} sum_{(i, j): i*s + j*d - p_before = o} x[n, g*C_g + c, i] * w[g*C_g + c, o_c, j]

Both directions use the windows of the convolution that maps y back to x (its
window ``i`` reads y at ``i*s + j*d - p_before``), the same windowing primitive
as :mod:`reference.conv`. Forward: per group, ``cols = W_gᵀ · x`` gives every
(output channel, kernel offset, input position) product, and col2im adds each
kernel offset's slab into y where its positions land: exactly the dx of
``conv_backward``. Backward: im2col of ``dy`` over those windows (``cols[n, g,
(o_c, j), i] = dy_pad[n, g*O_g + o_c, i*s + j*d]``, one copy) serves both
products: ``dx = W_g · cols`` (the convolution of ``dy`` with ``w``, which has
x's positions by construction) and ``dw = x · colsᵀ`` summed over the batch (the
correlation of ``dy``'s windows with x); ``db`` sums ``dy``. With stride ==
kernel and no padding (the U-Net up-convolution) the windows tile y, so col2im is
one copy and im2col a permutation of ``dy``: no sums beyond the products'.
"""

from __future__ import annotations

import math

import numpy as np

import spec
from reference.blas import with_blas_threads
from reference.conv import BATCH_MAJOR_MIN_POSITIONS, col2im, compute_dtype, im2col
from reference.windows import WindowGrid, window_grid
from spec import Array, Padding
from spec.transposed import conv_transpose_output_shape


def _adjoint_grid(
    x_spatial: tuple[int, ...], y_spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
    padding: Padding, dilation: tuple[int, ...],
) -> WindowGrid:
    """The windows of the convolution from y back to x: its window ``i`` reads y at ``i*s + j*d - p_before``."""
    return window_grid(
        y_spatial, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, out_spatial=x_spatial,
    )


@with_blas_threads
def conv_transpose_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> Array:
    """y = conv_transpose(x, w) + b. Shapes: x (N, C_in, *S), w (C_in, C_out/groups, *K), y (N, C_out, *S_out)."""
    out_shape = conv_transpose_output_shape(
        x, w, b, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups,
    )
    dtype = compute_dtype(x.dtype)
    n, c_in = x.shape[:2]
    c_out, kernel = out_shape[1], tuple(w.shape[2:])
    cg, og, taps, positions = c_in // groups, c_out // groups, math.prod(kernel), math.prod(x.shape[2:])
    grid = _adjoint_grid(tuple(x.shape[2:]), tuple(out_shape[2:]), kernel, tuple(stride), padding, tuple(dilation))
    # cols[n, g, (o_c, j), i] = sum_c w[g*C_g + c, o_c, j] * x[n, g*C_g + c, i]
    wt = w.astype(dtype, copy=False).reshape(groups, cg, og * taps).transpose(0, 2, 1)  # (G, O_g * K, C_g)
    cols = np.matmul(wt, x.astype(dtype, copy=False).reshape(n, groups, cg, positions))  # (N, G, O_g * K, P)
    y = col2im(cols, grid, out_shape, groups)
    if b is not None:
        y += b.astype(dtype, copy=False).reshape((c_out,) + (1,) * (len(out_shape) - 2))
    return np.ascontiguousarray(y, dtype=x.dtype)


@with_blas_threads
def conv_transpose_backward(
    x: Array, w: Array, dy: Array, *,
    stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> tuple[Array, Array, Array]:
    """(dx, dw, db) for upstream gradient ``dy`` of the forward output's shape."""
    out_shape = conv_transpose_output_shape(
        x, w, None, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups,
    )
    spec.check_dy(dy, out_shape, x.dtype)
    dtype = compute_dtype(x.dtype)
    n, c_in = x.shape[:2]
    c_out, kernel, ndim = out_shape[1], tuple(w.shape[2:]), x.ndim - 2
    cg, og, taps, positions = c_in // groups, c_out // groups, math.prod(kernel), math.prod(x.shape[2:])
    grid = _adjoint_grid(tuple(x.shape[2:]), tuple(out_shape[2:]), kernel, tuple(stride), padding, tuple(dilation))
    wg = w.astype(dtype, copy=False).reshape(groups, cg, og * taps)  # (G, C_g, O_g * K)
    xg = x.astype(dtype, copy=False).reshape(n, groups, cg, positions)
    dyc = dy.astype(dtype, copy=False)
    if positions >= BATCH_MAJOR_MIN_POSITIONS:
        cols = im2col(dyc, grid, groups, dtype, batch_major=True)  # (N, G, O_g * K, P)
        dx = np.matmul(wg, cols)  # (N, G, C_g, P)
        # dw = sum_n x[n] . cols[n]^T: a product per sample, each large enough (one product over the
        # batch would first copy x and cols into batch-minor layouts; measured 1.5-2x slower here).
        dw = np.zeros((groups, cg, og * taps), dtype=dtype)
        for sample in range(n):
            dw += np.matmul(xg[sample], cols[sample].transpose(0, 2, 1))
    else:  # few positions per sample: one product per group over the whole batch, as conv_backward
        cols = im2col(dyc, grid, groups, dtype, batch_major=False)  # (G, O_g * K, N * P)
        dx = np.matmul(wg, cols).reshape(groups, cg, n, positions).transpose(2, 0, 1, 3)
        xb = np.ascontiguousarray(xg.transpose(1, 2, 0, 3)).reshape(groups, cg, n * positions)
        dw = np.matmul(xb, cols.transpose(0, 2, 1))
    db = dyc.sum(axis=(0, *range(2, 2 + ndim)))
    if not np.isfinite(x).all():
        # The formula above reads dy zero-padded where a tap lands outside [0, out): 0 × NaN there would put into
        # dw a NaN that no term of the scatter holds (the cropped contribution does not exist, CONVT-C13), while
        # CONVT-C15 says dw propagates as the scatter does. For finite x both agree, so only then is it recomputed.
        dw = _dw_where_taps_land(x, dy, kernel, stride=tuple(stride), padding=padding, dilation=tuple(dilation),
                                 groups=groups)
    return (
        np.ascontiguousarray(dx.reshape(x.shape), dtype=x.dtype),
        np.ascontiguousarray(dw.reshape(w.shape), dtype=x.dtype),
        np.ascontiguousarray(db, dtype=x.dtype),
    )


def _dw_where_taps_land(
    x: Array, dy: Array, kernel: tuple[int, ...], *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> Array:
    """dw with each tap summed over the positions it lands on inside ``[0, out)`` alone (CONVT-C13, CONVT-C15)::

        dw[g*C_g + c, o_c, j] = sum_n sum_{i : 0 <= o < out} x[n, g*C_g + c, i] * dy[n, g*O_g + o_c, o]
            with o = i*s + j*d - p_before

    The same value as the zero-padded formula for finite x; at a NaN or infinity, only the terms that exist.
    Accumulated in ``compute_dtype(x.dtype)`` (float32 for float16 and bfloat16), returned in that dtype.
    """
    dtype = compute_dtype(x.dtype)
    n, c_in = x.shape[:2]
    cg, og = c_in // groups, dy.shape[1] // groups
    xs = x.astype(dtype, copy=False).reshape(n, groups, cg, *x.shape[2:])
    dys = dy.astype(dtype, copy=False).reshape(n, groups, og, *dy.shape[2:])
    dw = np.zeros((groups, cg, og, *kernel), dtype=dtype)
    lead = (slice(None),) * 3
    for tap in np.ndindex(*kernel):
        x_at: list[slice] = []
        dy_at: list[slice] = []
        for size, out, j, s, (before, _), d in zip(x.shape[2:], dy.shape[2:], tap, stride, padding, dilation):
            offset = j * d - before  # input i lands at i*s + offset
            first = max(0, -(offset // s))  # the least i with i*s + offset >= 0
            last = min(size - 1, (out - 1 - offset) // s)  # the greatest i with i*s + offset < out
            x_at.append(slice(first, last + 1))
            dy_at.append(slice(first * s + offset, last * s + offset + 1, s))
        if any(a.stop <= a.start for a in x_at):
            continue  # this tap lands nowhere inside: no term, dw stays 0
        xi = xs[lead + tuple(x_at)].reshape(n, groups, cg, -1)
        dyi = dys[lead + tuple(dy_at)].reshape(n, groups, og, -1)
        dw[lead + tap] = np.einsum("ngcp,ngop->gco", xi, dyi, optimize=True)
    return dw.reshape(c_in, og, *kernel)

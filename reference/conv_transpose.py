"""Transposed convolution, forward and backward, in any number of spatial dims.

The adjoint of convolution with respect to its input. Input element ``i`` of
channel ``c`` (group ``g``) scatters to output position ``o = i*s + j*d - p_before``::

    y[n, g*O_g + o_c, o] = b[g*O_g + o_c]
        + sum_{c < C_g} sum_{(i, j): i*s + j*d - p_before = o} x[n, g*C_g + c, i] * w[g*C_g + c, o_c, j]

Forward: per group, ``cols = W_gᵀ · x`` gives every (output channel, kernel
offset, input position) product, and a col2im adds each kernel offset's slab
into the output where its positions land: the windowing primitive's
``inside_slices`` of the convolution that maps y back to x say which input
positions land inside ``[0, out)`` at that offset. That is exactly the dx of
``conv_backward``. Backward: ``dx`` is the convolution of ``dy`` with the same
``w`` (``conv_forward``, cropped to x when ``output_padding`` >= stride gives that
convolution extra outputs), ``dw`` is the convolution's dW with the roles of x
and dy swapped (correlation of ``dy``'s windows with x), ``db`` sums ``dy``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

import spec
from reference.conv import compute_dtype, conv_forward
from reference.windows import WindowGrid, pad_if_needed, window_grid, window_view
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
    # cols[n, g, o_c, j, i] = sum_c w[g*C_g + c, o_c, j] * x[n, g*C_g + c, i]
    wt = w.astype(dtype, copy=False).reshape(groups, cg, og * taps).transpose(0, 2, 1)  # (G, O_g * K, C_g)
    cols = np.matmul(wt, x.astype(dtype, copy=False).reshape(n, groups, cg, positions))  # (N, G, O_g * K, P)
    cols = cols.reshape(n, groups, og, taps, *x.shape[2:])
    y = np.zeros((n, groups, og, *out_shape[2:]), dtype=dtype)
    lead = (slice(None),) * 3
    for index, (x_slices, y_slices) in enumerate(grid.inside_slices):
        y[lead + y_slices] += cols[lead + (index,) + x_slices]
    y = y.reshape(out_shape)
    if b is not None:
        y += b.astype(dtype, copy=False).reshape((c_out,) + (1,) * (len(out_shape) - 2))
    return np.ascontiguousarray(y, dtype=x.dtype)


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
    cg, og = c_in // groups, c_out // groups
    # dx: the convolution of dy with w, whose output has n + output_padding // s >= n positions per dim.
    conv = conv_forward(dy, w, None, stride=tuple(stride), padding=padding, dilation=tuple(dilation), groups=groups)
    dx = conv[(slice(None), slice(None)) + tuple(slice(0, size) for size in x.shape[2:])]
    # dw[g*C_g + c, o_c, j] = sum_n sum_i x[n, g*C_g + c, i] * dy_pad[n, g*O_g + o_c, i*s + j*d]
    grid = _adjoint_grid(tuple(x.shape[2:]), tuple(out_shape[2:]), kernel, tuple(stride), padding, tuple(dilation))
    view = window_view(pad_if_needed(dy.astype(dtype, copy=False), grid, 0.0), grid)  # (N, C_out, *S, *K)
    positions, taps = math.prod(x.shape[2:]), math.prod(kernel)
    windows: NDArray[Any] = view.reshape(n, groups, og, positions, taps)
    xg = x.astype(dtype, copy=False).reshape(n, groups, cg, positions)
    dw = np.einsum("ngcp,ngopk->gcok", xg, windows, optimize=True).reshape(w.shape)
    db = dy.astype(dtype, copy=False).sum(axis=(0, *range(2, 2 + ndim)))
    return (
        np.ascontiguousarray(dx, dtype=x.dtype),
        np.ascontiguousarray(dw, dtype=x.dtype),
        np.ascontiguousarray(db, dtype=x.dtype),
    )

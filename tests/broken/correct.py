"""Correct backends that round differently from the reference: they must pass.

* ``FFT``: convolution forward and backward through real FFTs (scipy.fft) over
  the padded signal, in the input dtype (float16 and bfloat16 in float32);
  declares ``accuracy="fast"``, so its error is judged normwise per slice.
* ``OFFSET_ORDER``: convolution, average pooling and linear layers summed
  in the input dtype itself (float16 stays float16: every product and every
  partial sum is rounded to float16), one kernel offset after another; it
  declares float16 and bfloat16 accumulation.
* ``REVERSED_PAIRWISE``: the same, with kernel offsets in reverse order and
  channels summed pairwise, checked in float32 and float64.
* ``REVERSED_PAIRWISE_F32``: that order with float16 and bfloat16 summed in
  float32 (the spec's default accumulation), rounded once at the end.

They declare nothing else: the direct class, where any summation order of K
products in the declared precision is within the elementwise bound.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import scipy.fft

import reference
import spec
from reference.pool import _pool_grid
from reference.windows import pad, window_counts, window_grid
from spec import Array, Capabilities, Padding
from tests.broken.windowing import crop, zeros_padded

LEAD = (slice(None), slice(None))


def _conv_grid(x: Array, w: Array, out: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
               dilation: tuple[int, ...]) -> Any:
    return window_grid(x.shape[2:], kernel_size=w.shape[2:], stride=stride, padding=padding, dilation=dilation,
                       out_spatial=out)


# --------------------------------------------------------------------------- FFT convolution

def _compute(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(np.float32) if dtype.name in ("float16", "bfloat16") else dtype


def _dilate(a: Array, factors: tuple[int, ...]) -> Array:
    """Insert factor - 1 zeros between neighbours along the spatial axes of (A, B, *S) ``a``."""
    shape = (*a.shape[:2], *((n - 1) * f + 1 if n else 0 for n, f in zip(a.shape[2:], factors)))
    out = np.zeros(shape, dtype=a.dtype)
    out[LEAD + tuple(slice(None, None, f) for f in factors)] = a
    return out


def fft_conv_forward(x: Array, w: Array, b: Array | None, *, stride: tuple[int, ...], padding: Padding,
                     dilation: tuple[int, ...], groups: int) -> Array:
    """y[n, o] = correlate(x_pad[n, group], w_dilated[o]) subsampled by the stride, via FFTs of the padded length."""
    out_shape = spec.conv_output_shape(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    dtype = _compute(x.dtype)
    grid = _conv_grid(x, w, out_shape[2:], stride, padding, dilation)
    xp = pad(x.astype(dtype), grid, 0.0)
    size = xp.shape[2:]
    axes = tuple(range(2, xp.ndim))
    y = np.zeros(out_shape, dtype=dtype)
    if x.shape[0]:
        xf = scipy.fft.rfftn(xp, s=size, axes=axes)
        wf = scipy.fft.rfftn(_dilate(w.astype(dtype), dilation), s=size, axes=axes)
        cg, og = x.shape[1] // groups, w.shape[0] // groups
        yf = np.concatenate([
            np.einsum("nc...,oc...->no...", xf[:, g * cg:(g + 1) * cg], np.conj(wf[g * og:(g + 1) * og]))
            for g in range(groups)], axis=1)
        full = scipy.fft.irfftn(yf, s=size, axes=axes)
        y = full[LEAD + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out_shape[2:], stride))]
    if b is not None:
        y = y + b.astype(dtype).reshape((1, -1) + (1,) * (y.ndim - 2))
    return np.ascontiguousarray(y, dtype=x.dtype)


def fft_conv_backward(x: Array, w: Array, dy: Array, *, stride: tuple[int, ...], padding: Padding,
                      dilation: tuple[int, ...], groups: int) -> tuple[Array, Array, Array]:
    """dW: correlation of x_pad with the stride-zero-inserted dY; dX: full convolution of that dY with w_dilated."""
    out_shape = spec.conv_output_shape(x, w, None, stride=stride, padding=padding, dilation=dilation, groups=groups)
    spec.check_dy(dy, out_shape, x.dtype)
    dtype = _compute(x.dtype)
    grid = _conv_grid(x, w, out_shape[2:], stride, padding, dilation)
    db = dy.astype(dtype).sum(axis=(0, *range(2, dy.ndim)))
    if x.shape[0] == 0:
        return np.zeros_like(x), np.zeros_like(w), np.ascontiguousarray(db, dtype=x.dtype)
    xp = pad(x.astype(dtype), grid, 0.0)
    size = xp.shape[2:]
    axes = tuple(range(2, xp.ndim))
    xf = scipy.fft.rfftn(xp, s=size, axes=axes)
    wf = scipy.fft.rfftn(_dilate(w.astype(dtype), dilation), s=size, axes=axes)
    dyf = scipy.fft.rfftn(_dilate(dy.astype(dtype), stride), s=size, axes=axes)
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    dwf = np.concatenate([
        np.einsum("no...,nc...->oc...", np.conj(dyf[:, g * og:(g + 1) * og]), xf[:, g * cg:(g + 1) * cg])
        for g in range(groups)], axis=0)
    dxf = np.concatenate([
        np.einsum("no...,oc...->nc...", dyf[:, g * og:(g + 1) * og], wf[g * og:(g + 1) * og])
        for g in range(groups)], axis=1)
    dw_full = scipy.fft.irfftn(dwf, s=size, axes=axes)
    dw = dw_full[LEAD + tuple(slice(0, (k - 1) * d + 1, d) for k, d in zip(w.shape[2:], dilation))]
    dx = crop(scipy.fft.irfftn(dxf, s=size, axes=axes), grid)
    return (np.ascontiguousarray(dx, dtype=x.dtype), np.ascontiguousarray(dw, dtype=x.dtype),
            np.ascontiguousarray(db, dtype=x.dtype))


FFT = SimpleNamespace(
    capabilities=Capabilities(accuracy="fast", notes=("scipy.fft real FFTs over the padded signal",)),
    conv_forward=fft_conv_forward, conv_backward=fft_conv_backward,
)


# --------------------------------------------------------------------------- direct, in-dtype, other orders

def _sum(terms: list[Array], pairwise: bool) -> Array:
    """Sum arrays in their own dtype: left to right, or pairwise (halving)."""
    if not pairwise:
        total = terms[0].copy()
        for t in terms[1:]:
            total += t
        return total
    while len(terms) > 1:
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
    return terms[0]


def _sum_axis(a: Array, axis: int, pairwise: bool) -> Array:
    if a.shape[axis] == 0:
        return np.zeros(np.delete(np.array(a.shape), axis).tolist(), dtype=a.dtype)
    return _sum([np.take(a, k, axis=axis) for k in range(a.shape[axis])], pairwise)


class InDtype:
    """Direct convolution, average pooling and linear layers computed in the input dtype.

    With ``float32_accumulation``, float16 and bfloat16 inputs are computed in float32
    instead (the spec's default) and rounded to their dtype once, at the end.
    """

    def __init__(self, *, reverse: bool, pairwise: bool, float32_accumulation: bool = False) -> None:
        self.reverse, self.pairwise, self.widen = reverse, pairwise, float32_accumulation
        narrow = {} if float32_accumulation else {"float16": "float16", "bfloat16": "bfloat16"}
        self.capabilities = Capabilities(accumulation=narrow, notes=(
            f"{'float32' if float32_accumulation else 'in-dtype'} sums, reverse={reverse}, pairwise={pairwise}",))
        self.max_pool_forward = reference.max_pool_forward
        self.max_pool_backward = reference.max_pool_backward
        for name in ("conv_forward", "conv_backward", "avg_pool_forward", "avg_pool_backward", "linear_forward",
                     "linear_backward"):
            setattr(self, name, self._widened(getattr(self, "_" + name)))

    def _widened(self, fn: Any) -> Any:
        """``fn`` on float32 copies of narrow inputs, its results rounded back, when accumulating in float32."""
        def call(*args: Any, **kwargs: Any) -> Any:
            dtype = args[0].dtype
            if not (self.widen and dtype.name in ("float16", "bfloat16")):
                return fn(*args, **kwargs)
            wide = [a.astype(np.float32) if isinstance(a, np.ndarray) else a for a in args]
            out = fn(*wide, **kwargs)
            if isinstance(out, tuple):
                return tuple(np.ascontiguousarray(o, dtype=dtype) for o in out)
            return np.ascontiguousarray(out, dtype=dtype)

        return call

    def _order(self, n: int) -> list[int]:
        return list(range(n))[::-1] if self.reverse else list(range(n))

    def _conv_forward(self, x: Array, w: Array, b: Array | None, *, stride: tuple[int, ...], padding: Padding,
                     dilation: tuple[int, ...], groups: int) -> Array:
        out_shape = spec.conv_output_shape(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        grid = _conv_grid(x, w, out_shape[2:], stride, padding, dilation)
        xp = pad(x, grid, 0.0)
        cg, og = x.shape[1] // groups, w.shape[0] // groups
        spatial = (None,) * (x.ndim - 2)
        blocks = []
        for g in range(groups):
            per_offset = []
            for index in self._order(len(grid.offsets)):
                window = xp[LEAD + grid.slices[index]][:, g * cg:(g + 1) * cg]  # (N, cg, *out)
                wk = w[(slice(g * og, (g + 1) * og), slice(None), *grid.offsets[index])]  # (og, cg)
                products = window[:, None] * wk[(None, slice(None), slice(None), *spatial)]  # (N, og, cg, *out)
                per_offset.append(_sum_axis(products, 2, self.pairwise))
            blocks.append(_sum(per_offset, False))
        y = np.concatenate(blocks, axis=1)
        if b is not None:
            y = y + b.reshape((1, -1) + (1,) * (y.ndim - 2))
        return np.ascontiguousarray(y, dtype=x.dtype)

    def _conv_backward(self, x: Array, w: Array, dy: Array, *, stride: tuple[int, ...], padding: Padding,
                      dilation: tuple[int, ...], groups: int) -> tuple[Array, Array, Array]:
        out_shape = spec.conv_output_shape(x, w, None, stride=stride, padding=padding, dilation=dilation,
                                           groups=groups)
        spec.check_dy(dy, out_shape, x.dtype)
        grid = _conv_grid(x, w, out_shape[2:], stride, padding, dilation)
        xp = pad(x, grid, 0.0)
        cg, og = x.shape[1] // groups, w.shape[0] // groups
        spatial = (None,) * (x.ndim - 2)
        dxp = zeros_padded(x.shape, grid, x.dtype)
        dw = np.zeros_like(w)
        n = x.shape[0]
        for index in self._order(len(grid.offsets)):
            offset, slices = grid.offsets[index], grid.slices[index]
            window = xp[LEAD + slices]
            for g in range(groups):
                dyg = dy[:, g * og:(g + 1) * og]  # (N, og, *out)
                wk = w[(slice(g * og, (g + 1) * og), slice(None), *offset)]  # (og, cg)
                products = dyg[:, :, None] * wk[(None, slice(None), slice(None), *spatial)]  # (N, og, cg, *out)
                dxp[LEAD + slices][:, g * cg:(g + 1) * cg] += _sum_axis(products, 1, self.pairwise)
                xs = window[:, g * cg:(g + 1) * cg]
                positions = math.prod(out_shape[2:])
                pairs = (dyg[:, :, None] * xs[:, None]).reshape(n, og, cg, positions)
                flat = np.moveaxis(pairs, 0, 2).reshape(og, cg, n * positions)
                dw[(slice(g * og, (g + 1) * og), slice(None), *offset)] = _sum_axis(flat, 2, self.pairwise)
        db = _sum_axis(np.moveaxis(dy, 1, 0).reshape(dy.shape[1], n * math.prod(out_shape[2:])), 1, self.pairwise)
        return np.ascontiguousarray(crop(dxp, grid)), dw, np.ascontiguousarray(db, dtype=x.dtype)

    def _avg_pool_forward(self, x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...],
                         padding: Padding, dilation: tuple[int, ...], ceil_mode: bool,
                         count_include_pad: bool) -> Array:
        _, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
        xp = pad(x, grid, 0.0)
        total = _sum([xp[LEAD + grid.slices[k]] for k in self._order(len(grid.slices))], self.pairwise)
        divisor = window_counts(grid, include_padding=spec.check_flag(count_include_pad, "count_include_pad"),
                                padding=padding).astype(x.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.ascontiguousarray(total / divisor)

    def _avg_pool_backward(self, x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...],
                          padding: Padding, dilation: tuple[int, ...], ceil_mode: bool,
                          count_include_pad: bool) -> Array:
        out_shape, grid = _pool_grid(x, kernel_size, stride, padding, dilation, ceil_mode)
        spec.check_dy(dy, out_shape, x.dtype)
        divisor = window_counts(grid, include_padding=count_include_pad, padding=padding).astype(x.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(divisor > 0, dy / divisor, 0).astype(x.dtype)
        dxp = zeros_padded(x.shape, grid, x.dtype)
        for k in self._order(len(grid.slices)):
            dxp[LEAD + grid.slices[k]] += share
        return np.ascontiguousarray(crop(dxp, grid))

    def _linear_forward(self, x: Array, w: Array, b: Array | None) -> Array:
        spec.linear_output_shape(x, w, b)
        products = x[:, None, :] * w[None, :, :]  # (N, out, in)
        order = self._order(w.shape[1])
        y = _sum_axis(products[:, :, order], 2, self.pairwise) if w.shape[1] else np.zeros((x.shape[0], w.shape[0]),
                                                                                          dtype=x.dtype)
        return np.ascontiguousarray(y if b is None else y + b, dtype=x.dtype)

    def _linear_backward(self, x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
        out_shape = spec.linear_output_shape(x, w, None)
        spec.check_dy(dy, out_shape, x.dtype)
        batch = self._order(x.shape[0])
        dx = _sum_axis(dy[:, :, None] * w[None, :, :], 1, self.pairwise)  # (N, in)
        dw = _sum_axis((dy[:, :, None] * x[:, None, :])[batch], 0, self.pairwise)  # (out, in)
        db = _sum_axis(dy[batch], 0, self.pairwise)
        return (np.ascontiguousarray(dx, dtype=x.dtype), np.ascontiguousarray(dw, dtype=x.dtype),
                np.ascontiguousarray(db, dtype=x.dtype))


OFFSET_ORDER = InDtype(reverse=False, pairwise=False)
REVERSED_PAIRWISE = InDtype(reverse=True, pairwise=True)
REVERSED_PAIRWISE_F32 = InDtype(reverse=True, pairwise=True, float32_accumulation=True)

# --------------------------------------------------------------------------- transposed convolution, two other ways

def _spatial_slices(starts: tuple[int, ...], steps: tuple[int, ...], counts: tuple[int, ...]) -> tuple[slice, ...]:
    return LEAD + tuple(slice(a, a + (c - 1) * s + 1, s) for a, s, c in zip(starts, steps, counts))


class _Scatter(NamedTuple):
    """What both scatter functions start from: the compute dtype, the uncropped buffer (zeros), its crop, x and w
    grouped as (N, G, C_g, *S) and (G, C_g, O_g, *K)."""

    dtype: np.dtype[Any]
    buf: Array
    crop: tuple[slice, ...]
    xg: Array
    wg: Array


def _scatter_setup(x: Array, w: Array, p: dict[str, Any]) -> _Scatter:
    """The buffer spans the full uncropped scatter plus output_padding in each dim; the crop removes the padding."""
    dtype = _compute(x.dtype)
    groups, (n, c_in) = p["groups"], x.shape[:2]
    cg, og = c_in // groups, w.shape[1]
    full = tuple((m - 1) * s + d * (k - 1) + 1 + e for m, k, s, d, e in
                 zip(x.shape[2:], w.shape[2:], p["stride"], p["dilation"], p["output_padding"]))
    crop = tuple(slice(lo, f - hi) for f, (lo, hi) in zip(full, p["padding"]))
    return _Scatter(dtype, np.zeros((n, groups, og, *full), dtype=dtype), crop,
                    x.astype(dtype).reshape(n, groups, cg, *x.shape[2:]),
                    w.astype(dtype).reshape(groups, cg, og, *w.shape[2:]))


def scatter_conv_transpose_forward(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    """Every kernel offset's products spread over an uncropped buffer (last offset first), then cropped."""
    out_shape = spec.conv_transpose_output_shape(x, w, b, **p)
    dtype, buf, crop, xg, wg = _scatter_setup(x, w, p)
    for j in reversed(list(np.ndindex(*w.shape[2:]))):
        products = np.einsum("ngc...,gco->ngo...", xg, wg[(slice(None), slice(None), slice(None), *j)])
        start = tuple(jj * d for jj, d in zip(j, p["dilation"]))
        at = (slice(None),) + _spatial_slices(start, p["stride"], x.shape[2:])
        buf[at] += products
    y = buf[(slice(None),) * 3 + crop].reshape(out_shape)
    if b is not None:
        y = y + b.astype(dtype).reshape((1, -1) + (1,) * (y.ndim - 2))
    return np.ascontiguousarray(y, dtype=x.dtype)


def scatter_conv_transpose_backward(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    """Read dy back through the same scatter: dy embedded in the uncropped buffer, gathered per kernel offset."""
    out_shape = spec.conv_transpose_output_shape(x, w, None, **p)
    spec.check_dy(dy, out_shape, x.dtype)
    dtype, buf, crop, xg, wg = _scatter_setup(x, w, p)
    n, groups, og, cg = x.shape[0], p["groups"], w.shape[1], xg.shape[2]
    buf[(slice(None),) * 3 + crop] = dy.astype(dtype).reshape(n, groups, og, *out_shape[2:])
    # Where each input lands in the buffer at a kernel offset, whether that is inside the crop: an input whose
    # offset lands outside meets no dy there, so it adds nothing to dw, a NaN included (CONVT-C15).
    inside = np.zeros(buf.shape[3:], dtype=bool)
    inside[crop] = True
    dx = np.zeros(xg.shape, dtype=dtype)
    dw = np.zeros(wg.shape, dtype=dtype)
    for j in reversed(list(np.ndindex(*w.shape[2:]))):
        start = tuple(jj * d for jj, d in zip(j, p["dilation"]))
        read = buf[(slice(None),) + _spatial_slices(start, p["stride"], x.shape[2:])]  # (N, G, O_g, *S)
        lands = inside[_spatial_slices(start, p["stride"], x.shape[2:])[2:]]  # (*S)
        at = (slice(None), slice(None), slice(None), *j)
        dx += np.einsum("ngo...,gco->ngc...", read, wg[at])
        xs = np.where(lands, xg, np.zeros((), dtype=dtype)).reshape(n, groups, cg, -1)
        dw[at] = np.einsum("ngop,ngcp->gco", read.reshape(n, groups, og, -1), xs)
    db = dy.astype(dtype).sum(axis=(0, *range(2, dy.ndim)))
    return (np.ascontiguousarray(dx.reshape(x.shape), dtype=x.dtype), np.ascontiguousarray(dw.reshape(w.shape),
            dtype=x.dtype), np.ascontiguousarray(db, dtype=x.dtype))


def _conv_of(p: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in p.items() if k != "output_padding"}


def _extended(x: Array, y_shape: tuple[int, ...], w: Array, p: dict[str, Any]) -> Array:
    """x with zeros at the end of each spatial dim, to the shape the convolution maps y's shape to (CONVT-C8)."""
    back = spec.conv_output_shape(np.empty(y_shape, dtype=x.dtype), w, None, **_conv_of(p))
    return np.pad(x, [(0, 0), (0, 0), *((0, m - n) for n, m in zip(x.shape[2:], back[2:]))])


def via_conv_transpose_forward(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    """The input gradient of the convolution it is the adjoint of, with x as that convolution's dy (in float32
    for float16 and bfloat16, so that the bias is added before the one rounding)."""
    out_shape = spec.conv_transpose_output_shape(x, w, b, **p)
    dtype = _compute(x.dtype)
    xc, wc = x.astype(dtype), w.astype(dtype)
    y = reference.conv_backward(np.zeros(out_shape, dtype=dtype), wc, _extended(xc, out_shape, wc, p), **_conv_of(p))[0]
    if b is not None:
        y = y + b.astype(dtype).reshape((1, -1) + (1,) * (y.ndim - 2))
    return np.ascontiguousarray(y, dtype=x.dtype)


def via_conv_transpose_backward(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    """dx = conv_forward(dy, w) cropped to x; dw = the convolution's weight gradient at (dy, x extended)."""
    out_shape = spec.conv_transpose_output_shape(x, w, None, **p)
    spec.check_dy(dy, out_shape, x.dtype)
    conv = reference.conv_forward(dy, w, None, **_conv_of(p))
    dx = conv[LEAD + tuple(slice(0, n) for n in x.shape[2:])]
    _, dw, _ = reference.conv_backward(dy, w, _extended(x, out_shape, w, p), **_conv_of(p))
    if not np.isfinite(x).all():
        dw = _dw_per_offset(x, w, dy, out_shape, p)
    db = dy.astype(_compute(x.dtype)).sum(axis=(0, *range(2, dy.ndim)))
    return np.ascontiguousarray(dx), dw, np.ascontiguousarray(db, dtype=x.dtype)


def _dw_per_offset(x: Array, w: Array, dy: Array, out_shape: tuple[int, ...], p: dict[str, Any]) -> Array:
    """dw at non-finite x (CONVT-C15): the convolution's weight gradient once per kernel offset, with x zeroed
    where that offset reads the convolution's padding (a cropped output: no dy, so no term, not 0 × NaN).
    Which inputs those are, the convolution of ones over y's shape with that offset's one-hot kernel says."""
    conv = _conv_of(p)
    ones = np.ones((1, 1, *out_shape[2:]))
    dw = np.empty_like(w)
    for j in np.ndindex(*w.shape[2:]):
        one_hot = np.zeros((1, 1, *w.shape[2:]))
        one_hot[(0, 0, *j)] = 1.0
        reads = reference.conv_forward(ones, one_hot, None, **{**conv, "groups": 1})
        lands = np.broadcast_to(reads[LEAD + tuple(slice(0, n) for n in x.shape[2:])] > 0, x.shape)
        masked = x.copy()
        masked[~lands] = 0
        at = (slice(None), slice(None), *j)
        dw[at] = reference.conv_backward(dy, w, _extended(masked, out_shape, w, p), **conv)[1][at]
    return dw


SCATTER = SimpleNamespace(
    capabilities=Capabilities(notes=("transposed convolution by scattering each kernel offset, last offset first",)),
    conv_transpose_forward=scatter_conv_transpose_forward, conv_transpose_backward=scatter_conv_transpose_backward,
)
VIA_CONV = SimpleNamespace(
    capabilities=Capabilities(notes=("transposed convolution through the reference's conv_backward and conv_forward",)),
    conv_transpose_forward=via_conv_transpose_forward, conv_transpose_backward=via_conv_transpose_backward,
)


# --------------------------------------------------------------------------- adaptive average by a summed-area table

def _bounds(x_spatial: tuple[int, ...], output_size: tuple[int, ...]) -> list[tuple[Array, Array]]:
    return [tuple(np.array(side) for side in zip(*spec.adaptive_windows(n, o)))  # type: ignore[misc]
            for n, o in zip(x_spatial, output_size)]


def _window_sizes(bounds: list[tuple[Array, Array]]) -> Array:
    """The number of elements of every N-d window: the product of its per-dim lengths."""
    count = np.ones(tuple(len(start) for start, _ in bounds))
    for a, (start, end) in enumerate(bounds):
        shape = [1] * len(bounds)
        shape[a] = len(start)
        count = count * (end - start).reshape(shape)
    return count


def cumsum_adaptive_avg_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """Window sums from running sums of x (float64), divided by the window sizes."""
    spec.adaptive_pool_output_shape(x, output_size=output_size)
    bounds = _bounds(x.shape[2:], output_size)
    return np.ascontiguousarray(_box_sums(x, bounds) / _window_sizes(bounds), dtype=x.dtype)


def _box_sums(a: Array, boxes: list[tuple[Array, Array]]) -> Array:
    """Sums of ``a`` over the boxes ``[start, end)``, one spatial axis at a time, in float64: along each axis a
    running sum T (from 0) gives every interval as T[end] - T[start]. (One axis at a time rather than by
    inclusion-exclusion over an N-d table, so that a box of zeros sums to exactly 0.)"""
    total = a.astype(np.float64)
    for axis, (start, end) in enumerate(boxes, start=2):
        running = np.cumsum(total, axis=axis)
        running = np.concatenate([np.zeros_like(np.take(running, [0], axis=axis)), running], axis=axis)
        total = np.take(running, end, axis=axis) - np.take(running, start, axis=axis)
    return total


def cumsum_adaptive_avg_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """Running sums over the outputs: along each dim the windows holding input i are the contiguous outputs
    [lo(i), hi(i)), so dx[i] is a box sum of the shares dy / count."""
    out_shape = spec.adaptive_pool_output_shape(x, output_size=output_size)
    spec.check_dy(dy, out_shape, x.dtype)
    bounds = _bounds(x.shape[2:], output_size)
    covering = [(np.searchsorted(end, np.arange(n), side="right"), np.searchsorted(start, np.arange(n), side="right"))
                for n, (start, end) in zip(x.shape[2:], bounds)]
    dx = _box_sums(dy.astype(np.float64) / _window_sizes(bounds), covering)
    return np.ascontiguousarray(dx, dtype=x.dtype)


SUMMED_AREA = SimpleNamespace(
    # Finite inputs only: a NaN or infinity in a running sum reaches every later box, not only the windows
    # holding it (nan-propagation, ADAPTIVE-C5), so the backend declares no non-finite inputs.
    capabilities=Capabilities(nonfinite=False, notes=(
        "adaptive average pooling by running sums in float64 (a separable summed-area table)",)),
    adaptive_avg_pool_forward=cumsum_adaptive_avg_pool_forward,
    adaptive_avg_pool_backward=cumsum_adaptive_avg_pool_backward,
)


#: name -> (backend, dtypes it is checked in, operations it implements differently from the reference).
CORRECT: dict[str, tuple[object, tuple[str, ...], tuple[spec.OpName, ...]]] = {
    "fft-conv": (FFT, spec.DTYPES, ("conv",)),
    "float16-bfloat16-in-own-dtype-offset-order": (OFFSET_ORDER, ("float16", "bfloat16"), ("conv", "avg_pool", "linear")),
    "reversed-offsets-pairwise-channels": (REVERSED_PAIRWISE, ("float32", "float64"), ("conv", "avg_pool", "linear")),
    "float16-bfloat16-in-float32-reversed-pairwise": (REVERSED_PAIRWISE_F32, ("float16", "bfloat16"),
                                                      ("conv", "avg_pool", "linear")),
    "conv-transpose-by-scatter": (SCATTER, spec.DTYPES, ("conv_transpose",)),
    "conv-transpose-via-conv-backward": (VIA_CONV, spec.DTYPES, ("conv_transpose",)),
    # Not float64: a summed-area table in float64 itself errs with the prefix sums, not the window (outside the
    # direct bound); every narrower dtype is summed in float64 and rounded once.
    "adaptive-avg-summed-area-table": (SUMMED_AREA, ("float32", "float16", "bfloat16"), ("adaptive_avg_pool",)),
}

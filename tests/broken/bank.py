"""A bank of deliberately broken backends: one realistic bug each.

Every entry wraps the reference and injects ONE bug that real implementations
have had. ``BANK`` maps a name to a :class:`Broken` entry naming the bug, the
backend object, the operations and dtypes the calibration test runs (only where
the bug lives, to keep the test fast) and the rule ids allowed to catch it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

import reference
import spec
from reference.conv import im2col
from reference.pool import _pool_grid
from reference.windows import pad, window_counts, window_grid
from spec import Array, Capabilities, OpName, Padding
from tests.broken.windowing import crop, inside_mask, zeros_padded

FUNCTIONS = spec.FUNCTION_NAMES


@dataclass(frozen=True)
class Broken:
    """One broken backend and what must catch it."""

    name: str
    bug: str
    obj: SimpleNamespace
    ops: tuple[OpName, ...]
    #: Rule ids (RuleResult.rule or Violation.rule) allowed to report the bug.
    rules: frozenset[str]
    #: A phrase the failure text must contain (expected vs actual, or the contract broken).
    says: str = "expected"
    dtypes: tuple[str, ...] = ("float64", "float32")


def backend(capabilities: Capabilities = reference.CAPABILITIES, **overrides: Any) -> SimpleNamespace:
    """The reference's protocol functions with some replaced."""
    functions = {name: getattr(reference, name) for name in FUNCTIONS}
    unknown = set(overrides) - set(functions)
    if unknown:
        raise ValueError(f"not protocol functions: {sorted(unknown)}")
    functions.update(overrides)
    return SimpleNamespace(capabilities=capabilities, **functions)


BANK: dict[str, Broken] = {}


def register(name: str, bug: str, ops: tuple[OpName, ...], rules: set[str], says: str = "expected",
             dtypes: tuple[str, ...] = ("float64", "float32"), **overrides: Any) -> None:
    if name in BANK:
        raise ValueError(f"duplicate bank entry {name!r}")
    BANK[name] = Broken(name, bug, backend(**overrides), ops, frozenset(rules), says, dtypes)


VALUES = {"forward-values", "backward-values", "correlate2d", "finite-differences", "adjoint", "metamorphic"}


# --------------------------------------------------------------------------- convolution

def _conv_backward_variant(
    x: Array, w: Array, dy: Array, *, stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...],
    groups: int, dw_unit_dilation: bool = False, dx_unit_stride: bool = False,
) -> tuple[Array, Array, Array]:
    """The reference's im2col backward with one of two switchable bugs."""
    out_shape = spec.conv_output_shape(x, w, None, stride=stride, padding=padding, dilation=dilation, groups=groups)
    spec.check_dy(dy, out_shape, x.dtype)
    out = out_shape[2:]
    grid = window_grid(x.shape[2:], kernel_size=w.shape[2:], stride=stride, padding=padding, dilation=dilation,
                       out_spatial=out)
    n, c_out = out_shape[:2]
    og, cg = c_out // groups, x.shape[1] // groups
    positions = math.prod(out)
    dyg = np.moveaxis(dy.reshape(n, groups, og, positions), 0, 2).reshape(groups, og, n * positions)
    # Bug 1: the weight gradient correlates x with dy at unit dilation.
    grid_w = window_grid(x.shape[2:], kernel_size=w.shape[2:], stride=stride, padding=padding,
                         dilation=(1,) * len(out), out_spatial=out) if dw_unit_dilation else grid
    cols = im2col(x, grid_w, groups, x.dtype, batch_major=False)  # (G, Cg * K, N * P)
    taps = cg * math.prod(w.shape[2:])
    dw = (dyg @ cols.reshape(groups, taps, n * positions).transpose(0, 2, 1)).reshape(w.shape)
    wg = w.reshape(groups, og, taps)
    dcols = (wg.transpose(0, 2, 1) @ dyg).reshape(groups, cg, *w.shape[2:], n, *out)
    dxp = zeros_padded(x.shape, grid, x.dtype)
    dxg = dxp.reshape(n, groups, cg, *dxp.shape[2:])
    for offset, slices in zip(grid.offsets, grid.slices):
        if dx_unit_stride:  # Bug 2: scatter without zero insertion (as if the stride were 1)
            slices = tuple(slice(sl.start, sl.start + o) for sl, o in zip(slices, out))
        at: tuple[slice | int, ...] = (slice(None), slice(None), *offset)
        dxg[(slice(None),) * 3 + slices] += np.moveaxis(dcols[at], 2, 0)
    db = dy.sum(axis=(0, *range(2, dy.ndim)))
    return np.ascontiguousarray(crop(dxp, grid)), np.ascontiguousarray(dw), np.ascontiguousarray(db)


def _pad_after(padding: Padding) -> Padding:
    return tuple((0, lo + hi) for lo, hi in padding)


def _flip(w: Array) -> Array:
    return np.ascontiguousarray(w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)])


def _reinterpret(w: Array) -> Array:
    """Read a (O, C, *K) kernel stored with its spatial axes in reverse order (layout confusion)."""
    k = w.shape[2:]
    stored = np.ascontiguousarray(w).reshape(*w.shape[:2], *k[::-1])
    return np.ascontiguousarray(np.transpose(stored, (0, 1, *range(w.ndim - 1, 1, -1))))


def _unreinterpret(g: Array) -> Array:
    k = g.shape[2:]
    back = np.transpose(g, (0, 1, *range(g.ndim - 1, 1, -1)))
    return np.ascontiguousarray(back).reshape(*g.shape[:2], *k)


def _interleave(c: int, groups: int) -> np.ndarray[Any, Any]:
    cg = c // groups
    return np.array([g + groups * i for g in range(groups) for i in range(cg)])


def _in(dtype: str, *arrays: Array | None) -> list[Any]:
    return [None if a is None else a.astype(dtype) for a in arrays]


def conv_forward_pad_after(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    return reference.conv_forward(x, w, b, **{**p, "padding": _pad_after(p["padding"])})


def conv_backward_pad_after(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    return reference.conv_backward(x, w, dy, **{**p, "padding": _pad_after(p["padding"])})


register("conv-padding-after", "all padding applied after the input instead of split before/after", ("conv",),
         VALUES, conv_forward=conv_forward_pad_after, conv_backward=conv_backward_pad_after)


def conv_backward_flipped(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    dx, dw, db = reference.conv_backward(x, _flip(w), dy, **p)
    return dx, _flip(dw), db


register("conv-flipped-kernel", "true convolution: the kernel is flipped (scipy.signal.convolve semantics)",
         ("conv",), VALUES, conv_forward=lambda x, w, b, **p: reference.conv_forward(x, _flip(w), b, **p),
         conv_backward=conv_backward_flipped)


def conv_backward_transposed(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    dx, dw, db = reference.conv_backward(x, _reinterpret(w), dy, **p)
    return dx, _unreinterpret(dw), db


register("conv-transposed-kernel", "kernel spatial axes read in reverse order (HW/WH layout confusion)", ("conv",),
         VALUES, conv_forward=lambda x, w, b, **p: reference.conv_forward(x, _reinterpret(w), b, **p),
         conv_backward=conv_backward_transposed)


def _last_stride_one(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "stride": (*p["stride"][:-1], 1)}


register("conv-stride-last-axis-ignored", "the stride of the last spatial axis is ignored", ("conv",),
         {"output-shape"}, says="should be",
         conv_forward=lambda x, w, b, **p: reference.conv_forward(x, w, b, **_last_stride_one(p)),
         conv_backward=lambda x, w, dy, **p: reference.conv_backward(x, w, dy, **_last_stride_one(p)))
register("conv-dilation-ignored-in-dw", "the weight gradient ignores dilation (backward only)", ("conv",),
         {"backward-values", "correlate2d", "finite-differences", "adjoint"},
         conv_backward=lambda x, w, dy, **p: _conv_backward_variant(x, w, dy, **p, dw_unit_dilation=True))
register("conv-dx-no-zero-insertion", "dx scatters dy without zero insertion: wrong for stride > 1", ("conv",),
         {"backward-values", "correlate2d", "finite-differences", "adjoint"},
         conv_backward=lambda x, w, dy, **p: _conv_backward_variant(x, w, dy, **p, dx_unit_stride=True))


def conv_forward_interleaved(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    return reference.conv_forward(np.ascontiguousarray(x[:, _interleave(x.shape[1], p["groups"])]), w, b, **p)


def conv_backward_interleaved(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    perm = _interleave(x.shape[1], p["groups"])
    dxp, dw, db = reference.conv_backward(np.ascontiguousarray(x[:, perm]), w, dy, **p)
    dx = np.empty_like(dxp)
    dx[:, perm] = dxp
    return dx, dw, db


register("conv-groups-interleaved", "group g takes channels g, g+G, ... instead of a contiguous block", ("conv",),
         VALUES, conv_forward=conv_forward_interleaved, conv_backward=conv_backward_interleaved)


def conv_forward_bias_twice(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    y = reference.conv_forward(x, w, b, **p)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


register("conv-bias-twice", "the bias is added twice", ("conv",), VALUES, conv_forward=conv_forward_bias_twice)
register("conv-bias-ignored", "the bias is ignored", ("conv",), VALUES,
         conv_forward=lambda x, w, b, **p: reference.conv_forward(x, w, None, **p))


def _with_db(fn: Any) -> Any:
    def backward(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
        dx, dw, _ = reference.conv_backward(x, w, dy, **p)
        return dx, dw, np.ascontiguousarray(fn(dy), dtype=x.dtype)

    return backward


register("conv-db-first-sample-only", "db sums dy over space but takes only the first sample of the batch",
         ("conv",), {"backward-values", "finite-differences"},
         conv_backward=_with_db(lambda dy: dy[:1].sum(axis=(0, *range(2, dy.ndim)))))
register("conv-db-mean-over-space", "db averages dy over spatial positions instead of summing", ("conv",),
         {"backward-values", "finite-differences"},
         conv_backward=_with_db(lambda dy: dy.sum(axis=0).reshape(dy.shape[1], -1).mean(axis=1)))


def conv_backward_dw_mean(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    dx, dw, db = reference.conv_backward(x, w, dy, **p)
    return dx, (dw / max(x.shape[0], 1)).astype(x.dtype), db


register("conv-dw-mean-over-batch", "dw is the batch mean instead of the sum", ("conv",),
         {"backward-values", "correlate2d", "finite-differences", "adjoint"}, conv_backward=conv_backward_dw_mean)


def _lower(compute: str) -> tuple[Any, Any]:
    def forward(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
        return reference.conv_forward(*_in(compute, x, w, b), **p).astype(x.dtype)

    def backward(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
        dx, dw, db = reference.conv_backward(*_in(compute, x, w, dy), **p)
        return dx.astype(x.dtype), dw.astype(x.dtype), db.astype(x.dtype)

    return forward, backward


_f32_fwd, _f32_bwd = _lower("float32")
register("conv-float32-accumulation", "float64 inputs computed in float32", ("conv",), VALUES,
         says="float32 arithmetic", dtypes=("float64",), conv_forward=_f32_fwd, conv_backward=_f32_bwd)
_f16_fwd, _f16_bwd = _lower("float16")
register("conv-float16-accumulation", "float32 inputs computed in float16", ("conv",), VALUES,
         says="significant bits", dtypes=("float32",), conv_forward=_f16_fwd, conv_backward=_f16_bwd)


def _tf32(a: Array) -> Array:
    """float32 values as TF32 holds them: the 13 low mantissa bits rounded away (10 explicit bits remain)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded: Array = ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)
    return rounded


def conv_forward_tf32(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    return reference.conv_forward(_tf32(x), _tf32(w), b, **p)


def conv_backward_tf32(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    return reference.conv_backward(_tf32(x), _tf32(w), _tf32(dy), **p)


register("conv-tf32-arithmetic", "a float32 convolution multiplies in TF32 (inputs rounded to 10 mantissa bits), "
         "as PyTorch's default for convolutions on recent NVIDIA GPUs does", ("conv",), VALUES, says="TF32",
         dtypes=("float32",), conv_forward=conv_forward_tf32, conv_backward=conv_backward_tf32)

#: Longest weight-gradient reduction the next bug leaves alone.
LONG_REDUCTION = 1000


def conv_backward_drops_sample(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    """dW without sample 0's contribution, only when dW sums more than LONG_REDUCTION terms (a split-K bug)."""
    dx, dw, db = reference.conv_backward(x, w, dy, **p)
    if x.shape[0] * math.prod(dy.shape[2:]) > LONG_REDUCTION:
        dw = reference.conv_backward(x[1:], w, dy[1:], **p)[1]
    return dx, dw, db


register("conv-float16-dw-drops-sample-long-reduction",
         f"float16 dW drops sample 0's contribution when it sums more than {LONG_REDUCTION} terms", ("conv",),
         {"backward-values", "finite-differences", "adjoint", "correlate2d"}, dtypes=("float16",),
         conv_backward=conv_backward_drops_sample)


def conv_forward_corner_off(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    """One border output (the first spatial corner of sample 0, channel 0) off by 1.0."""
    y = reference.conv_forward(x, w, b, **p)
    if y.size:
        y[(0, 0) + (0,) * (y.ndim - 2)] += 1
    return y


register("conv-float16-border-output-off", "float16 convolution with one border output off by 1.0 (a tile-edge "
         "bug), under the default accuracy class", ("conv",), VALUES, dtypes=("float16",),
         conv_forward=conv_forward_corner_off)


def conv_forward_3d_bug(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    if x.ndim == 5:  # only the 3-D kernel path reads the weight in the wrong layout
        w = _reinterpret(w)
    return reference.conv_forward(x, w, b, **p)


register("conv-3d-only-layout", "3-D convolution only reads the kernel with spatial axes reversed", ("conv",),
         {"forward-values", "finite-differences", "adjoint", "metamorphic"}, conv_forward=conv_forward_3d_bug)


def conv_forward_per_sample(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    return np.concatenate([reference.conv_forward(x[k:k + 1], w, b, **p) for k in range(x.shape[0])])


register("conv-empty-batch-crash", "a per-sample loop + np.concatenate fails on an empty batch", ("conv",),
         {"output-shape", "forward-values", "empty-batch"}, says="raised", conv_forward=conv_forward_per_sample)


def conv_forward_skip_zero_weights(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    """A sparse kernel: taps whose weight is 0 are never multiplied, so NaN x 0 gives 0 instead of NaN."""
    out_shape = spec.conv_output_shape(x, w, b, **p)
    grid = window_grid(x.shape[2:], kernel_size=w.shape[2:], stride=p["stride"], padding=p["padding"],
                       dilation=p["dilation"], out_spatial=out_shape[2:])
    groups = p["groups"]
    n, c_out = out_shape[:2]
    og, positions = c_out // groups, math.prod(out_shape[2:])
    cols = im2col(x, grid, groups, x.dtype, batch_major=False)  # (G, Cg * K, N * P)
    wg = w.reshape(groups, og, -1, 1)
    with np.errstate(invalid="ignore"):
        products = np.where(wg == 0, 0, wg * cols[:, None])  # (G, Og, Cg * K, N * P)
    y = products.sum(axis=2).reshape(groups, og, n, positions).transpose(2, 0, 1, 3).reshape(out_shape)
    if b is not None:
        y = y + b.reshape((c_out,) + (1,) * (len(out_shape) - 2))
    return np.ascontiguousarray(y, dtype=x.dtype)


register("conv-skips-zero-weights", "taps with a zero weight are skipped, so NaN x 0 gives 0 instead of NaN",
         ("conv",), {"nan-propagation"}, says="dropped", conv_forward=conv_forward_skip_zero_weights)


def _lenient(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "stride": tuple(max(s, 1) for s in p["stride"]),
            "padding": tuple((max(lo, 0), max(hi, 0)) for lo, hi in p["padding"])}


register("conv-invalid-accepted", "stride 0 and negative padding are silently clamped instead of rejected",
         ("conv",), {"invalid-params"}, says="instead of raising",
         conv_forward=lambda x, w, b, **p: reference.conv_forward(x, w, b, **_lenient(p)))


# --------------------------------------------------------------------------- max pooling

def _pool_windows(x: Array, fill: float, **p: Any) -> tuple[Any, Any]:
    _, grid = _pool_grid(x, p["kernel_size"], p["stride"], p["padding"], p["dilation"], p["ceil_mode"])
    return pad(x, grid, fill), grid


def max_pool_forward_zero_pad(x: Array, **p: Any) -> Array:
    xp, grid = _pool_windows(x, 0.0, **p)
    y = xp[(slice(None), slice(None)) + grid.slices[0]].copy()
    for slices in grid.slices[1:]:
        np.maximum(y, xp[(slice(None), slice(None)) + slices], out=y)
    return y


def max_pool_forward_fmax(x: Array, **p: Any) -> Array:
    xp, grid = _pool_windows(x, -np.inf, **p)
    y = xp[(slice(None), slice(None)) + grid.slices[0]].copy()
    for slices in grid.slices[1:]:
        np.fmax(y, xp[(slice(None), slice(None)) + slices], out=y)
    return y


register("maxpool-zero-padding", "max pooling pads with 0 instead of -inf", ("max_pool",),
         {"maxpool-pad-value", "forward-values", "empty-windows", "ceil-mode"}, max_pool_forward=max_pool_forward_zero_pad)
register("maxpool-nan-dropped", "np.fmax drops NaN from a window", ("max_pool",), {"nan-propagation"},
         says="dropped", max_pool_forward=max_pool_forward_fmax)


def _max_and_argmax(x: Array, grid: Any) -> tuple[Array, np.ndarray[Any, Any]]:
    """Window maxima and the offset index of each window's first real maximum (-1: none), by offset loop."""
    xp = pad(x, grid, -np.inf)
    lead = (slice(None), slice(None))
    out_shape = (*x.shape[:2], *grid.out_spatial)
    y = xp[lead + grid.slices[0]].copy()
    best = np.full(out_shape, -np.inf, dtype=x.dtype)
    arg = np.full(out_shape, -1, dtype=np.int64)
    for index, (offset, slices) in enumerate(zip(grid.offsets, grid.slices)):
        window = xp[lead + slices]
        np.maximum(y, window, out=y)
        take = inside_mask(grid, offset) & ((arg < 0) | (window > best))
        best = np.where(take, window, best)
        arg = np.where(take, index, arg)
    return y, arg


def _max_pool_backward_variant(x: Array, dy: Array, *, mode: str, **p: Any) -> Array:
    out_shape, grid = _pool_grid(x, p["kernel_size"], p["stride"], p["padding"], p["dilation"], p["ceil_mode"])
    spec.check_dy(dy, out_shape, x.dtype)
    y, arg = _max_and_argmax(x, grid)
    xp = pad(x, grid, -np.inf)
    lead = (slice(None), slice(None))
    hits = [inside_mask(grid, offset) & (xp[lead + slices] == y) for offset, slices in zip(grid.offsets, grid.slices)]
    dxp = zeros_padded(x.shape, grid, x.dtype)
    if mode == "last":
        last = np.full(y.shape, -1)
        for index, hit in enumerate(hits):
            last = np.where(hit, index, last)
        arg = last
    count = np.maximum(sum(h.astype(np.int64) for h in hits), 1)
    for index, slices in enumerate(grid.slices):
        view = dxp[lead + slices]
        if mode == "split":
            view += np.where(hits[index], dy / count, 0)
        elif mode == "assign":  # dx[argmax] = dy: the last window writing a position wins
            view[arg == index] = dy[arg == index]
        else:
            view += np.where(arg == index, dy, 0)
    return np.ascontiguousarray(crop(dxp, grid))


def _max_pool_backward_padding_candidates(x: Array, dy: Array, **p: Any) -> Array:
    """Argmax over the -inf-padded window, padding included: on a tie with a real -inf, padding wins."""
    out_shape, grid = _pool_grid(x, p["kernel_size"], p["stride"], p["padding"], p["dilation"], p["ceil_mode"])
    spec.check_dy(dy, out_shape, x.dtype)
    xp = pad(x, grid, -np.inf)
    lead = (slice(None), slice(None))
    best = np.full(out_shape, np.nan, dtype=x.dtype)
    arg = np.full(out_shape, -1, dtype=np.int64)
    for index, slices in enumerate(grid.slices):
        window = xp[lead + slices]
        take = (arg < 0) | (window > best) | (np.isnan(window) & ~np.isnan(best))
        best = np.where(take, window, best)
        arg = np.where(take, index, arg)
    dxp = zeros_padded(x.shape, grid, x.dtype)
    for index, slices in enumerate(grid.slices):
        dxp[lead + slices] += np.where(arg == index, dy, 0)
    return np.ascontiguousarray(crop(dxp, grid))  # what was routed to padding is lost


register("maxpool-neginf-tie-to-padding", "a window of real -inf routes its gradient into the -inf padding",
         ("max_pool",), {"tie-routing"}, max_pool_backward=_max_pool_backward_padding_candidates)


def max_pool_backward_raises_on_nan(x: Array, dy: Array, **p: Any) -> Array:
    if np.isnan(x).any():  # as numpy-ml's argmax bookkeeping does
        raise ValueError("cannot locate the maximum of a window holding NaN")
    return reference.max_pool_backward(x, dy, **p)


register("maxpool-backward-raises-on-nan", "max-pool backward raises on a NaN input", ("max_pool",),
         {"nonfinite-backward"}, says="raised", max_pool_backward=max_pool_backward_raises_on_nan)


register("maxpool-ties-last", "on ties the gradient goes to the last maximum", ("max_pool",),
         {"tie-routing", "backward-values"},
         max_pool_backward=lambda x, dy, **p: _max_pool_backward_variant(x, dy, mode="last", **p))
register("maxpool-ties-split", "on ties the gradient is split among the maxima", ("max_pool",),
         {"tie-routing", "backward-values"},
         max_pool_backward=lambda x, dy, **p: _max_pool_backward_variant(x, dy, mode="split", **p))
register("maxpool-grad-assigned", "dx[argmax] = dy assigns instead of accumulating over overlapping windows",
         ("max_pool",), {"backward-values", "finite-differences", "tie-routing"},
         max_pool_backward=lambda x, dy, **p: _max_pool_backward_variant(x, dy, mode="assign", **p))


def _floor(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "ceil_mode": False}


register("maxpool-ceil-mode-ignored", "ceil_mode ignored: the partial last window is dropped", ("max_pool",),
         {"output-shape", "ceil-mode"}, says="should be",
         max_pool_forward=lambda x, **p: reference.max_pool_forward(x, **_floor(p)),
         max_pool_backward=lambda x, dy, **p: reference.max_pool_backward(x, dy, **_floor(p)))


# --------------------------------------------------------------------------- average pooling

def avg_pool_backward_assigned(x: Array, dy: Array, **p: Any) -> Array:
    out_shape, grid = _pool_grid(x, p["kernel_size"], p["stride"], p["padding"], p["dilation"], p["ceil_mode"])
    spec.check_dy(dy, out_shape, x.dtype)
    divisor = window_counts(grid, include_padding=p["count_include_pad"], padding=p["padding"])
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(divisor > 0, dy / divisor, 0).astype(x.dtype)
    dxp = zeros_padded(x.shape, grid, x.dtype)
    for slices in grid.slices:
        dxp[(slice(None), slice(None)) + slices] = share  # overwrites where windows overlap
    return np.ascontiguousarray(crop(dxp, grid))


register("avgpool-grad-assigned", "dx is assigned per window instead of accumulated where windows overlap",
         ("avg_pool",), {"backward-values", "finite-differences", "adjoint", "ceil-mode", "avgpool-divisor"},
         avg_pool_backward=avg_pool_backward_assigned)


def avg_pool_forward_full_k(x: Array, **p: Any) -> Array:
    if not p["count_include_pad"]:
        return reference.avg_pool_forward(x, **p)
    xp, grid = _pool_windows(x, 0.0, **p)
    total = np.zeros((*x.shape[:2], *grid.out_spatial), dtype=x.dtype)
    for slices in grid.slices:
        total += xp[(slice(None), slice(None)) + slices]
    return np.ascontiguousarray(total / math.prod(p["kernel_size"]))


register("avgpool-divisor-full-kernel", "count_include_pad divides by the full kernel, ceil overhang included",
         ("avg_pool",), {"forward-values", "ceil-mode", "avgpool-divisor", "finite-differences", "adjoint"},
         avg_pool_forward=avg_pool_forward_full_k)
register("avgpool-count-include-pad-inverted", "count_include_pad is read inverted", ("avg_pool",),
         {"forward-values", "backward-values", "avgpool-divisor", "ceil-mode", "empty-windows"},
         avg_pool_forward=lambda x, **p: reference.avg_pool_forward(x, **{**p, "count_include_pad": not p["count_include_pad"]}),
         avg_pool_backward=lambda x, dy, **p: reference.avg_pool_backward(
             x, dy, **{**p, "count_include_pad": not p["count_include_pad"]}))


def avg_pool_backward_in_place(x: Array, dy: Array, **p: Any) -> Array:
    out_shape, grid = _pool_grid(x, p["kernel_size"], p["stride"], p["padding"], p["dilation"], p["ceil_mode"])
    divisor = window_counts(grid, include_padding=p["count_include_pad"], padding=p["padding"])
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(dy, np.where(divisor > 0, divisor, np.inf), out=dy)  # scales the caller's dy in place
    return reference.avg_pool_backward(x, dy * divisor, **p)


register("avgpool-dy-mutated", "the backward divides the caller's dy in place", ("avg_pool",),
         {"input-mutation"}, says="wrote into", avg_pool_backward=avg_pool_backward_in_place)


# --------------------------------------------------------------------------- linear

def linear_forward_transposed(x: Array, w: Array, b: Array | None) -> Array:
    # Reads the (out, in) buffer as if it were stored (in, out): x @ W instead of x @ W.T.
    y = x @ np.ascontiguousarray(w).reshape(w.shape[1], w.shape[0])
    return y if b is None else y + b


register("linear-weight-transposed", "the (out, in) weight is read as (in, out)", ("linear",),
         {"forward-values", "metamorphic", "finite-differences", "adjoint"}, linear_forward=linear_forward_transposed)


def linear_backward_db(fn: Any) -> Any:
    def backward(x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
        dx, dw, _ = reference.linear_backward(x, w, dy)
        return dx, dw, fn(dy)

    return backward


register("linear-db-mean", "db = dy.mean(axis=0) instead of the sum", ("linear",),
         {"backward-values", "finite-differences"},
         linear_backward=linear_backward_db(lambda dy: dy.mean(axis=0) if dy.shape[0] else dy.sum(axis=0)))
register("linear-db-view-of-dy", "for a batch of one, db is returned as a view of dy", ("linear",),
         {"output-contract"}, says="shares memory",
         linear_backward=linear_backward_db(lambda dy: dy[0] if dy.shape[0] == 1 else dy.sum(axis=0)))
register("linear-float32-accumulation", "float64 inputs computed in float32", ("linear",), VALUES,
         dtypes=("float64",),
         linear_forward=lambda x, w, b: reference.linear_forward(*_in("float32", x, w, b)).astype(x.dtype),
         linear_backward=lambda x, w, dy: tuple(g.astype(x.dtype) for g in reference.linear_backward(
             *_in("float32", x, w, dy))))
register("linear-float64-result", "float32 inputs give a float64 result (NumPy promotion with a float64 bias)",
         ("linear",), {"output-shape"}, says="dtype", dtypes=("float32",),
         linear_forward=lambda x, w, b: reference.linear_forward(*_in("float64", x, w, b)))


# --------------------------------------------------------------------------- transposed convolution


def _convt_conv(p: dict[str, Any]) -> dict[str, Any]:
    """The parameters of the convolution a transposed convolution is the adjoint of."""
    return {k: v for k, v in p.items() if k != "output_padding"}


def _shifted(a: Array, extra: tuple[int, ...], *, left: bool, fill: Array | None = None) -> Array:
    """``a`` moved ``extra`` positions towards the end of each spatial axis (or the start, ``left``); the
    positions it leaves hold ``fill`` (per channel) or 0."""
    out = np.zeros_like(a) if fill is None else np.broadcast_to(
        fill.reshape((1, -1) + (1,) * (a.ndim - 2)), a.shape).astype(a.dtype)
    late = (slice(None), slice(None), *(slice(e, None) for e in extra))
    early = (slice(None), slice(None), *(slice(0, n - e) for n, e in zip(a.shape[2:], extra)))
    if left:
        out[early] = a[late]
    else:
        out[late] = a[early]
    return out


def convt_forward_output_padding_first(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    """The extra output_padding positions are put before the output instead of after it: y moves by them."""
    y = reference.conv_transpose_forward(x, w, b, **p)
    return np.ascontiguousarray(_shifted(y, tuple(p["output_padding"]), left=False, fill=b))


def convt_backward_output_padding_first(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    """Its adjoint: dy moved back by output_padding; db still sums every position (the bias reaches them all)."""
    spec.conv_transpose_output_shape(x, w, None, **p)
    spec.check_dy(dy, reference.conv_transpose_forward(x, w, None, **p).shape, x.dtype)
    dx, dw, _ = reference.conv_transpose_backward(x, w, _shifted(dy, tuple(p["output_padding"]), left=True), **p)
    return dx, dw, np.ascontiguousarray(dy.sum(axis=(0, *range(2, dy.ndim))), dtype=x.dtype)


register("convt-output-padding-first", "output_padding adds its positions before the output instead of after it",
         ("conv_transpose",), VALUES | {"transpose-identity"},
         conv_transpose_forward=convt_forward_output_padding_first,
         conv_transpose_backward=convt_backward_output_padding_first)


def _crop_at_end(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "padding": _pad_after(p["padding"])}


register("convt-padding-cropped-at-end", "the padding crops the full scatter at its end only, not (before, after)",
         ("conv_transpose",), VALUES | {"transpose-identity"},
         conv_transpose_forward=lambda x, w, b, **p: reference.conv_transpose_forward(x, w, b, **_crop_at_end(p)),
         conv_transpose_backward=lambda x, w, dy, **p: reference.conv_transpose_backward(x, w, dy, **_crop_at_end(p)))


def _full_scatter(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "padding": tuple((0, 0) for _ in p["padding"])}


register("convt-padding-ignored", "padding is ignored: the full scatter is returned, uncropped", ("conv_transpose",),
         {"output-shape"}, says="should be",
         conv_transpose_forward=lambda x, w, b, **p: reference.conv_transpose_forward(x, w, b, **_full_scatter(p)),
         conv_transpose_backward=lambda x, w, dy, **p: reference.conv_transpose_backward(
             x, w, dy, **_full_scatter(p)))


def _groups_mixed(w: Array, groups: int, inverse: bool = False) -> Array:
    """The (C_in, O_g, *K) weight a backend uses that transposes w as a whole, not group by group.

    Such a backend builds the convolution weight ``w.swapaxes(0, 1).reshape(C_out, C_in / G, *K)``:
    its output channel ``f = g2 * O_g + o2`` reads the column ``(o, g) = divmod(f, G)``, i.e. the
    weights of output channel ``g * O_g + o`` of the true layout (the same for groups = 1).
    """
    c_in, og = w.shape[:2]
    cg = c_in // groups
    flat = np.moveaxis(w.reshape(groups, cg, og, *w.shape[2:]), 0, 1).reshape(cg, groups * og, *w.shape[2:])
    f = np.arange(groups * og)
    source = (f % groups) * og + f // groups
    out = np.empty_like(flat)
    if inverse:
        out[:, source] = flat
    else:
        out = flat[:, source]
    return np.ascontiguousarray(np.moveaxis(out.reshape(cg, groups, og, *w.shape[2:]), 1, 0).reshape(w.shape))


def convt_backward_groups_mixed(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    dx, dw, db = reference.conv_transpose_backward(x, _groups_mixed(w, p["groups"]), dy, **p)
    return dx, _groups_mixed(dw, p["groups"], inverse=True), db


register("convt-weight-transposed-whole", "w is transposed as one (C_in, C_out) matrix instead of per group: "
         "output channels of different groups are mixed up when groups > 1", ("conv_transpose",),
         VALUES | {"transpose-identity"},
         conv_transpose_forward=lambda x, w, b, **p: reference.conv_transpose_forward(
             x, _groups_mixed(w, p["groups"]), b, **p),
         conv_transpose_backward=convt_backward_groups_mixed)


def convt_backward_dx_flipped(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    """dx correlates dy with the flipped kernel (a true convolution): right only for symmetric kernels."""
    _, dw, db = reference.conv_transpose_backward(x, w, dy, **p)
    dx, _, _ = reference.conv_transpose_backward(x, _flip(w), dy, **p)
    return dx, dw, db


register("convt-dx-flipped-kernel", "the backward's dx uses the flipped kernel", ("conv_transpose",),
         {"backward-values", "finite-differences", "adjoint", "transpose-identity"},
         conv_transpose_backward=convt_backward_dx_flipped)


def convt_backward_dw_zero_padded(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    """dw as the convolution's weight gradient, which reads dy zero-padded, at every x: a NaN in x whose kernel
    offset lands in the crop meets a padding zero, 0 × NaN, and dw gets a NaN no term of the scatter holds."""
    dx, _, db = reference.conv_transpose_backward(x, w, dy, **p)
    conv = _convt_conv(p)
    back = spec.conv_output_shape(dy, w, None, **conv)
    extended = np.pad(x, [(0, 0), (0, 0), *((0, m - n) for n, m in zip(x.shape[2:], back[2:]))])
    return dx, reference.conv_backward(dy, w, extended, **conv)[1], db


register("convt-dw-zero-padded-dy", "dw reads dy zero-padded: a NaN in x reaches dw through kernel offsets that land "
         "in the cropped positions (PyTorch's and TensorFlow's dw, findings T17 and F14)", ("conv_transpose",),
         {"nonfinite-backward"}, dtypes=("float64",), conv_transpose_backward=convt_backward_dw_zero_padded)


def _lenient_output_padding(p: dict[str, Any]) -> dict[str, Any]:
    bound = [max(s, d) for s, d in zip(p["stride"], p["dilation"])]
    return {**p, "output_padding": tuple(min(e, m - 1) for e, m in zip(p["output_padding"], bound))}


def convt_forward_lenient(x: Array, w: Array, b: Array | None, **p: Any) -> Array:
    """output_padding >= max(stride, dilation) is accepted, its extra positions filled with the bias."""
    y = reference.conv_transpose_forward(x, w, b, **_lenient_output_padding(p))
    extra = [(0, e - c) for e, c in zip(p["output_padding"], _lenient_output_padding(p)["output_padding"])]
    return np.ascontiguousarray(np.pad(y, [(0, 0), (0, 0), *extra]))


register("convt-output-padding-unchecked", "output_padding >= max(stride, dilation) is accepted instead of rejected",
         ("conv_transpose",), {"invalid-params"}, says="instead of raising",
         conv_transpose_forward=convt_forward_lenient)


# --------------------------------------------------------------------------- max-pool indices

def _plane_coordinates(indices: np.ndarray[Any, Any], spatial: tuple[int, ...]) -> tuple[np.ndarray[Any, Any], ...]:
    return np.unravel_index(np.maximum(indices, 0), spatial)


def max_pool_indices_in_padded_plane(x: Array, **p: Any) -> np.ndarray[Any, Any]:
    """Indices counted in the padded plane (the coordinates of the padded copy the kernel reads)."""
    indices = reference.max_pool_indices(x, **p)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], p["padding"]))
    coords = [c + lo for c, (lo, _) in zip(_plane_coordinates(indices, x.shape[2:]), p["padding"])]
    return np.where(indices < 0, -1, np.ravel_multi_index(tuple(coords), padded)).astype(np.int64)


def _window_choice(x: Array, last: bool, **p: Any) -> np.ndarray[Any, Any]:
    """Per window, the in-plane index of its first (or last) maximum by a loop over kernel offsets; -1 if none."""
    out_shape, grid = _pool_grid(x, p["kernel_size"], p["stride"], p["padding"], p["dilation"], p["ceil_mode"])
    xp = pad(x, grid, -np.inf)
    lead = (slice(None), slice(None))
    peak = np.full(out_shape, -np.inf, dtype=x.dtype)
    for offset, slices in zip(grid.offsets, grid.slices):
        peak = np.where(inside_mask(grid, offset), np.maximum(peak, xp[lead + slices]), peak)
    choice = np.full(out_shape, -1, dtype=np.int64)
    offsets = list(zip(grid.offsets, grid.slices))
    for offset, slices in offsets if last else offsets[::-1]:  # the last write wins
        hit = inside_mask(grid, offset) & ((xp[lead + slices] == peak) | (np.isnan(xp[lead + slices]) & np.isnan(peak)))
        flat = np.zeros((1, 1) + (1,) * len(offset), dtype=np.int64)
        for axis, j in enumerate(offset):
            shape = [1] * len(out_shape)
            shape[axis + 2] = grid.out_spatial[axis]
            flat = flat + (grid.positions[axis][:, j] * math.prod(x.shape[3 + axis:])).reshape(shape)
        choice = np.where(hit, flat, choice)
    return choice


register("maxidx-ties-last", "on ties the index is that of the last maximum", ("max_pool_indices",),
         {"forward-values", "indices-ties"}, max_pool_indices=lambda x, **p: _window_choice(x, last=True, **p))
register("maxidx-counted-in-padded-plane", "indices count positions in the padded plane (off by the padding)",
         ("max_pool_indices",), {"forward-values", "indices-agreement", "indices-ties"},
         max_pool_indices=max_pool_indices_in_padded_plane)


def max_pool_indices_whole_tensor(x: Array, **p: Any) -> np.ndarray[Any, Any]:
    """ONNX's convention: indices count over the whole (N, C, *S) tensor, not within the plane."""
    return spec.onnx_max_pool_indices(reference.max_pool_indices(x, **p), x.shape)


register("maxidx-whole-tensor", "indices count over the whole tensor (ONNX's Indices) instead of within the plane",
         ("max_pool_indices",), {"forward-values", "indices-agreement", "indices-ties"},
         max_pool_indices=max_pool_indices_whole_tensor)


def max_pool_indices_nan_skipped(x: Array, **p: Any) -> np.ndarray[Any, Any]:
    """NaN is skipped when looking for the maximum (nanargmax): a NaN window points at a number."""
    has_nan = np.isnan(x)
    return reference.max_pool_indices(np.where(has_nan, -np.inf, x).astype(x.dtype), **p)


register("maxidx-nan-skipped", "a window holding NaN points at its largest number, not at the NaN",
         ("max_pool_indices",), {"indices-nan", "indices-agreement"}, max_pool_indices=max_pool_indices_nan_skipped)


def max_pool_indices_empty_zero(x: Array, **p: Any) -> np.ndarray[Any, Any]:
    """A window with no real element gets index 0 instead of -1 (as if the plane's first element were selected)."""
    indices = reference.max_pool_indices(x, **p)
    return np.where(indices < 0, 0, indices).astype(np.int64)


register("maxidx-empty-window-zero", "a window entirely in padding gets index 0 instead of -1",
         ("max_pool_indices",), {"indices-empty-windows", "indices-agreement", "empty-windows", "forward-values"},
         max_pool_indices=max_pool_indices_empty_zero)


# --------------------------------------------------------------------------- adaptive pooling

def _floor_windows(n: int, o: int) -> tuple[tuple[int, int], ...]:
    """The window rule with end = floor((i + 1) n / o): windows may be empty for o > n, and miss elements."""
    return tuple((i * n // o, (i + 1) * n // o) for i in range(o))


def _adaptive_loop(x: Array, output_size: tuple[int, ...], windows: Any, mode: str,
                   dy: Array | None = None) -> Array:
    """Adaptive pooling (or its backward, given dy) by a loop over output positions, with a given window rule.

    ``mode``: "avg" (the divisor is the window's size), "avg-longest" (the longest window's size),
    "max" (first maximum), "max-last" (last maximum, backward).
    """
    spec.adaptive_pool_output_shape(x, output_size=output_size)
    per_dim = [windows(n, o) for n, o in zip(x.shape[2:], output_size)]
    longest = math.prod(max(e - s for s, e in dim) for dim in per_dim)
    dtype = np.dtype(np.float32) if x.dtype.name in ("float16", "bfloat16") else x.dtype
    xc = x.astype(dtype)
    out = np.zeros((*x.shape[:2], *output_size), dtype=dtype) if dy is None else np.zeros(x.shape, dtype=dtype)
    for position in itertools.product(*(range(o) for o in output_size)):
        region = (slice(None), slice(None), *(slice(*per_dim[a][i]) for a, i in enumerate(position)))
        at = (slice(None), slice(None), *position)
        window = xc[region].reshape(*x.shape[:2], -1)
        if mode.startswith("avg"):
            count = window.shape[-1] if mode == "avg" else longest
            with np.errstate(invalid="ignore", divide="ignore"):
                if dy is None:
                    out[at] = window.sum(axis=-1) / count
                else:
                    out[region] += (dy[at].astype(dtype) / count)[(...,) + (None,) * (x.ndim - 2)]
        elif dy is None:
            out[at] = window.max(axis=-1, initial=-np.inf) if window.shape[-1] else -np.inf
        elif window.shape[-1]:
            flipped = mode == "max-last"
            pick = (window.shape[-1] - 1 - np.argmax(window[..., ::-1], axis=-1)) if flipped else np.argmax(window, -1)
            grads = np.zeros(window.shape, dtype=dtype)
            np.put_along_axis(grads, pick[..., None], dy[at].astype(dtype)[..., None], axis=-1)
            out[region] += grads.reshape(out[region].shape)
    return np.ascontiguousarray(out, dtype=x.dtype)


register("adaptive-floor-end", "adaptive windows end at floor((i+1)·n/o) instead of ceil: elements are missed, "
         "and windows are empty for o > n", ("adaptive_avg_pool", "adaptive_max_pool"),
         VALUES | {"adaptive-windows", "nan-propagation"},
         adaptive_avg_pool_forward=lambda x, *, output_size: _adaptive_loop(x, output_size, _floor_windows, "avg"),
         adaptive_avg_pool_backward=lambda x, dy, *, output_size: _adaptive_loop(
             x, output_size, _floor_windows, "avg", dy),
         adaptive_max_pool_forward=lambda x, *, output_size: _adaptive_loop(x, output_size, _floor_windows, "max"),
         adaptive_max_pool_backward=lambda x, dy, *, output_size: _adaptive_loop(
             x, output_size, _floor_windows, "max", dy))
register("adaptive-avg-longest-divisor", "the average divides by the longest window's size, not each window's own",
         ("adaptive_avg_pool",), VALUES | {"adaptive-windows"},
         adaptive_avg_pool_forward=lambda x, *, output_size: _adaptive_loop(
             x, output_size, spec.adaptive_windows, "avg-longest"),
         adaptive_avg_pool_backward=lambda x, dy, *, output_size: _adaptive_loop(
             x, output_size, spec.adaptive_windows, "avg-longest", dy))
register("adaptive-max-grad-to-last", "the max backward routes the gradient to the last maximum on ties",
         ("adaptive_max_pool",), {"backward-values", "tie-routing", "adaptive-windows", "adaptive-global"},
         adaptive_max_pool_backward=lambda x, dy, *, output_size: _adaptive_loop(
             x, output_size, spec.adaptive_windows, "max-last", dy))


# --------------------------------------------------------------------------- state between calls

_STALE: dict[tuple[Any, ...], tuple[Array, Array, Array]] = {}


def conv_backward_stale_cache(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    """Gradients cached by shapes and parameters, not values: right on the first call, stale on repeats."""
    key = (x.shape, w.shape, dy.shape, str(x.dtype), repr(sorted(p.items())))
    if key not in _STALE:
        _STALE[key] = reference.conv_backward(x, w, dy, **p)
    return tuple(g.copy() for g in _STALE[key])  # type: ignore[return-value]


register("conv-backward-stale-cache", "backward results cached by shape: right on the first call, stale on repeats",
         ("conv",), {"backward-values", "finite-differences", "adjoint", "correlate2d"},
         conv_backward=conv_backward_stale_cache)


# --------------------------------------------------------------------------- several bugs in one backend

def _three_bugs_backward(x: Array, w: Array, dy: Array, **p: Any) -> tuple[Array, Array, Array]:
    dx, dw, _ = _conv_backward_variant(x, w, dy, **p, dw_unit_dilation=True)
    db = dy.sum(axis=0).reshape(dy.shape[1], -1).mean(axis=1)
    return dx, dw, np.ascontiguousarray(db, dtype=x.dtype)


#: Three independent convolution bugs in one backend (not in BANK: each entry there has one bug):
#: the bias added twice (forward), dw ignoring dilation and db averaged over space (backward).
THREE_BUGS = backend(conv_forward=conv_forward_bias_twice, conv_backward=_three_bugs_backward)


#: The bank's backends as attributes, so a reproduction snippet can import one:
#: ``from tests.broken.bank import BACKENDS; backend = BACKENDS.conv_padding_after``
#: (target ``tests.broken.bank:BACKENDS.conv_padding_after``).
BACKENDS = SimpleNamespace(**{name.replace("-", "_"): entry.obj for name, entry in BANK.items()})


def target(name: str) -> str:
    """The ``module:attribute`` of a bank backend, as the loader and the snippets spell it."""
    return f"tests.broken.bank:BACKENDS.{name.replace('-', '_')}"


def assert_caught(entry: Broken, report: Any, how: str) -> str:
    """Assert ``report`` fails ``entry`` by one of its expected rules; the first failure's text.

    Shared by the calibration tests (``how`` says under what generation the bug must still be caught).
    """
    from conformance.report import failure_text, render_text

    assert report.failures, f"bug not caught {how}: {entry.bug}\n{render_text(report)}"
    first = report.failures[0]
    text = failure_text(first)
    assert first.status == "failed" and first.violation is not None, f"the suite itself failed:\n{text}"
    caught_by = {first.rule, first.violation.rule}
    assert caught_by & entry.rules, (
        f"caught by {sorted(caught_by)}, but should be one of {sorted(entry.rules)} [{entry.bug}]\n{text}")
    return text

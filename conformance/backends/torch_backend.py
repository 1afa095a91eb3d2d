"""PyTorch adapter: ``torch.nn.functional`` forward, autograd backward, on the CPU.

Translation rules (each chosen so that PyTorch computes exactly the protocol's
operation, and everything else PyTorch decides is passed through):

* **Padding.** PyTorch pads symmetrically. Each ``(before, after)`` pair is
  split into ``min(before, after)``, handed to PyTorch, and a non-negative
  remainder padded explicitly with ``F.pad``: zeros for convolution and for
  average pooling with ``count_include_pad=True`` (the divisor counts padded
  positions either way), -inf for max pooling. A convolution with stride 1
  whose padding is what ``"same"`` resolves to uses ``padding="same"``.
* **Ceil mode with extra padding after the input.** PyTorch drops a ceil-mode
  window that starts in its own padding, but cannot know that the explicit
  remainder is padding too, so it may keep one window the protocol drops; the
  adapter removes exactly that trailing window (its gradient is zero).
* **Not expressible:** symmetric pooling padding above half the undilated
  kernel (PyTorch's real limit, declared as ``pool_padding="half_kernel"``:
  ``spec.pool_padding_allowed``), average pooling with ``count_include_pad=False`` and
  uneven padding (pre-padded zeros would be counted) and average pooling with
  dilation raise :class:`spec.UnsupportedError`; so does any case for which
  PyTorch itself raises ``NotImplementedError`` (float16 ``avg_pool3d``).
* **Transposed convolution** is ``F.conv_transpose{1,2,3}d`` with
  ``output_padding``, ``groups`` and ``dilation`` as the protocol's. Its
  padding removes output positions; PyTorch's is symmetric, so
  ``min(before, after)`` is handed to PyTorch and the remainder is cropped
  from the output (exactly the positions the protocol's padding removes).
* **Max-pool indices** are ``return_indices=True``, already flat per
  ``(N, C)`` plane as the protocol counts them. Where the adapter pads
  explicitly, PyTorch counts in the padded plane; the indices are re-counted
  in the input's plane. Two cases are declined: a window entirely in padding
  while part of the padding is explicit (PyTorch would select an explicit -inf
  it takes for input; its own answer for such windows is finding T1), and,
  per call, a real -inf in ``x`` with explicit before-padding (a tie with an
  explicit -inf, as for the backward).
* **Adaptive pooling** is ``F.adaptive_{avg,max}_pool{1,2,3}d`` unchanged
  (PyTorch's window rule is the protocol's).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

import spec
from conformance.backends._translate import (
    as_padding,
    crop_slices,
    framework_limits,
    fresh,
    has_empty_window,
    is_symmetric,
    matches_same,
    spec_pool_slices,
    split_padding,
    unpadded_plane_indices,
)
from spec import Array, Padding

#: The framework version, shown in reports.
VERSION: str = torch.__version__

CAPABILITIES = spec.Capabilities(
    avg_pool_dilation=False,
    pool_padding="half_kernel",
    notes=(
        f"torch {torch.__version__}, CPU; backward by autograd",
        "pooling padding must be at most half the *undilated* kernel, also when dilated",
        "avg_pool: no dilation; count_include_pad=False only with before == after padding",
        "float16 avg_pool3d has no CPU kernel",
        "bfloat16 tensors are built from and read back through float32 (exact)",
        "limits per case are declared by supports(op, problem), each counted as declined in the reports",
        "conv_transpose: asymmetric padding is PyTorch's symmetric min(before, after) plus a crop of the output",
        "max_pool_indices: re-counted in the input's plane where padding is explicit; a window entirely in "
        "padding is declined when part of the padding is explicit",
    ),
)

_CONV: dict[int, Callable[..., torch.Tensor]] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAX_POOL: dict[int, Callable[..., torch.Tensor]] = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL: dict[int, Callable[..., torch.Tensor]] = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_CONV_TRANSPOSE: dict[int, Callable[..., torch.Tensor]] = {
    1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d,
}
_ADAPTIVE_AVG: dict[int, Callable[..., torch.Tensor]] = {
    1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d,
}
_ADAPTIVE_MAX: dict[int, Callable[..., torch.Tensor]] = {
    1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d,
}


def _framework_limits() -> AbstractContextManager[None]:
    return framework_limits("PyTorch")


def _tensor(a: Array, *, grad: bool = False) -> torch.Tensor:
    """A copy of ``a`` as a CPU tensor (PyTorch never sees the caller's buffer).

    NumPy's bfloat16 (ml_dtypes) is not a dtype torch.tensor reads: it goes through
    float32, which holds every bfloat16 value exactly.
    """
    if a.dtype.name == "bfloat16":
        return torch.tensor(a.astype(np.float32)).to(torch.bfloat16).requires_grad_(grad)
    return torch.tensor(a, requires_grad=grad)


def _numpy(t: torch.Tensor) -> Array:
    if t.dtype == torch.bfloat16:  # exact both ways: a bfloat16 result passes through float32 unchanged
        return fresh(t.detach().float().numpy().astype("bfloat16"))
    return fresh(t.detach().numpy())


def _spatial_op(table: dict[int, Callable[..., torch.Tensor]], x: torch.Tensor) -> Callable[..., torch.Tensor]:
    op = table.get(x.dim() - 2)
    if op is None:
        raise spec.SpecError("x.ndim", x.dim(), "must be 3, 4 or 5 (N, C and 1 to 3 spatial dims)")
    return op


def _pad(x: torch.Tensor, extra: Padding, value: float) -> torch.Tensor:
    """Pad the trailing spatial dims of ``x`` explicitly (F.pad lists the last dim first)."""
    if all(lo == 0 and hi == 0 for lo, hi in extra):
        return x
    flat = [v for lo, hi in reversed(extra) for v in (lo, hi)]
    return F.pad(x, flat, mode="constant", value=value)


def _drop_extra_ceil_windows(
    y: torch.Tensor, spatial: tuple[int, ...], kernel_size: tuple[int, ...], stride: tuple[int, ...],
    padding: Padding, dilation: tuple[int, ...], ceil_mode: bool,
) -> torch.Tensor:
    """Remove the one trailing ceil-mode window PyTorch keeps because it cannot see explicit after-padding."""
    if not ceil_mode or all(hi <= lo for lo, hi in padding):
        return y
    keep = spec_pool_slices(spatial, kernel_size, stride, padding, dilation, ceil_mode)
    # Only dims with explicit after-padding: elsewhere PyTorch's own ceil rule is under test.
    return y[keep[:2] + tuple(k if hi > lo else slice(None) for k, (lo, hi) in zip(keep[2:], padding))]


def _conv(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], groups: int,
) -> torch.Tensor:
    conv = _spatial_op(_CONV, x)
    spatial, kernel = tuple(x.shape[2:]), tuple(w.shape[2:])
    if all(s == 1 for s in stride) and matches_same(padding, spatial, kernel, stride, dilation):
        with warnings.catch_warnings():
            # A performance note ("may require a zero-padded copy of the input"), not a semantic one.
            warnings.filterwarnings("ignore", message="Using padding='same'", category=UserWarning)
            return conv(x, w, b, stride=stride, padding="same", dilation=dilation, groups=groups)
    native, extra = split_padding(padding)
    return conv(_pad(x, extra, 0.0), w, b, stride=stride, padding=native, dilation=dilation, groups=groups)


def _pool_padding_limit(padding: Padding, kernel_size: tuple[int, ...], dilation: tuple[int, ...]) -> str | None:
    """PyTorch's own limit on the symmetric padding handed to it (the rest is padded explicitly)."""
    native, _ = split_padding(padding)
    if not all(spec.pool_padding_allowed(CAPABILITIES.pool_padding, k, d, p, p)
               for p, k, d in zip(native, kernel_size, dilation)):
        return (f"PyTorch's pooling limits padding to half the undilated kernel, not the dilated one "
                f"(padding={padding}, kernel_size={kernel_size}, dilation={dilation})")
    return None


def _avg_pool_limit(padding: Padding, kernel_size: tuple[int, ...], dilation: tuple[int, ...],
                    count_include_pad: bool, ndim: int, dtype: str) -> str | None:
    if any(d != 1 for d in dilation):
        return f"PyTorch's avg_pool has no dilation parameter (dilation={dilation})"
    limit = _pool_padding_limit(padding, kernel_size, dilation)
    if limit is not None:
        return limit
    if not count_include_pad and not is_symmetric(padding):
        return (f"PyTorch's avg_pool pads symmetrically, and with count_include_pad=False explicit zeros "
                f"would be counted in the divisor (padding={padding})")
    if ndim == 3 and dtype == "float16":
        return "PyTorch has no float16 avg_pool3d CPU kernel"
    return None


def supports(op: str, problem: dict[str, Any]) -> str | None:
    """What PyTorch lacks for this case, or None (the suite asks before it generates a case).

    Pooling pads at most half the *undilated* kernel (``spec.pool_padding_allowed``); average pooling has
    no dilation, pads symmetrically when padding is left out of the divisor, and has no float16 3-D kernel.
    """
    p = problem["params"]
    if op == "max_pool":
        return _pool_padding_limit(as_padding(p["padding"]), tuple(p["kernel_size"]), tuple(p["dilation"]))
    if op == "max_pool_indices":
        padding, kernel_size, dilation = as_padding(p["padding"]), tuple(p["kernel_size"]), tuple(p["dilation"])
        return _pool_padding_limit(padding, kernel_size, dilation) or _emulated_empty_window(
            tuple(problem["x_shape"][2:]), kernel_size, tuple(p["stride"]), padding, dilation, bool(p["ceil_mode"]))
    if op == "avg_pool":
        return _avg_pool_limit(as_padding(p["padding"]), tuple(p["kernel_size"]), tuple(p["dilation"]),
                               bool(p["count_include_pad"]), len(problem["x_shape"]) - 2, str(problem["dtype"]))
    return None


def _emulated_empty_window(
    spatial: tuple[int, ...], kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> str | None:
    if is_symmetric(padding) or not has_empty_window(spatial, kernel_size, stride, padding, dilation, ceil_mode):
        return None
    return ("a window entirely in padding, with part of the padding explicit -inf elements PyTorch takes for input "
            f"(its own indices for such windows are finding T1; padding={padding})")


def _max_pool(
    x: torch.Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, *, indices: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(y, PyTorch's indices counted in the plane it was given, or None)."""
    pool = _spatial_op(_MAX_POOL, x)
    native, extra = split_padding(padding)
    limit = _pool_padding_limit(padding, kernel_size, dilation)
    if limit is not None:
        raise spec.UnsupportedError(limit)
    out = pool(
        _pad(x, extra, -np.inf), kernel_size=kernel_size, stride=stride, padding=native, dilation=dilation,
        ceil_mode=ceil_mode, return_indices=indices,
    )
    y, index = out if indices else (out, None)
    spatial = tuple(x.shape[2:])
    y = _drop_extra_ceil_windows(y, spatial, kernel_size, stride, padding, dilation, ceil_mode)
    if index is not None:
        index = _drop_extra_ceil_windows(index, spatial, kernel_size, stride, padding, dilation, ceil_mode)
    return y, index


def _avg_pool(
    x: torch.Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> torch.Tensor:
    pool = _spatial_op(_AVG_POOL, x)
    limit = _avg_pool_limit(padding, kernel_size, dilation, count_include_pad, len(x.shape) - 2,
                            str(x.dtype).replace("torch.", ""))
    if limit is not None:
        raise spec.UnsupportedError(limit)
    native, extra = split_padding(padding)  # extra is all zero when count_include_pad=False
    y = pool(
        _pad(x, extra, 0.0), kernel_size=kernel_size, stride=stride, padding=native, ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )
    return _drop_extra_ceil_windows(y, tuple(x.shape[2:]), kernel_size, stride, padding, dilation, ceil_mode)


def _gradients(y: torch.Tensor, inputs: tuple[torch.Tensor, ...], dy: Array) -> tuple[Array, ...]:
    grads = torch.autograd.grad(y, inputs, grad_outputs=_tensor(dy))
    return tuple(_numpy(g) for g in grads)


def conv_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> Array:
    """``F.conv{1,2,3}d``."""
    with _framework_limits():
        bias = None if b is None else _tensor(b)
        y = _conv(_tensor(x), _tensor(w), bias, tuple(stride), as_padding(padding), tuple(dilation), groups)
        return _numpy(y)


def conv_backward(
    x: Array, w: Array, dy: Array, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> tuple[Array, Array, Array]:
    """Autograd through ``F.conv{1,2,3}d`` with a zero bias, so PyTorch computes db too."""
    with _framework_limits():
        xt, wt = _tensor(x, grad=True), _tensor(w, grad=True)
        bt = torch.zeros(wt.shape[0], dtype=wt.dtype, requires_grad=True)
        y = _conv(xt, wt, bt, tuple(stride), as_padding(padding), tuple(dilation), groups)
        dx, dw, db = _gradients(y, (xt, wt, bt), dy)
        return dx, dw, db


def max_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """``F.max_pool{1,2,3}d``."""
    with _framework_limits():
        y, _ = _max_pool(_tensor(x), tuple(kernel_size), tuple(stride), as_padding(padding), tuple(dilation), ceil_mode)
        return _numpy(y)


def max_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """Autograd through ``F.max_pool{1,2,3}d``."""
    if np.isneginf(x).any() and any(lo > 0 for lo, _ in split_padding(as_padding(padding)).extra):
        # The asymmetric part of the padding is explicit -inf elements here, which PyTorch cannot tell
        # from a real -inf: on a tie the first one, the padding, would take the gradient (MAXPOOL-C10).
        raise spec.UnsupportedError("asymmetric before-padding is emulated with explicit -inf, which ties with "
                                    "a real -inf in x")
    with _framework_limits():
        xt = _tensor(x, grad=True)
        y, _ = _max_pool(xt, tuple(kernel_size), tuple(stride), as_padding(padding), tuple(dilation), ceil_mode)
        (dx,) = _gradients(y, (xt,), dy)
        return dx


def avg_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """``F.avg_pool{1,2,3}d``."""
    with _framework_limits():
        y = _avg_pool(
            _tensor(x), tuple(kernel_size), tuple(stride), as_padding(padding), tuple(dilation), ceil_mode,
            count_include_pad,
        )
        return _numpy(y)


def avg_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """Autograd through ``F.avg_pool{1,2,3}d``."""
    with _framework_limits():
        xt = _tensor(x, grad=True)
        y = _avg_pool(
            xt, tuple(kernel_size), tuple(stride), as_padding(padding), tuple(dilation), ceil_mode, count_include_pad
        )
        (dx,) = _gradients(y, (xt,), dy)
        return dx


def _conv_transpose(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: tuple[int, ...], padding: Padding,
    output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> torch.Tensor:
    conv_transpose = _spatial_op(_CONV_TRANSPOSE, x)
    native, extra = split_padding(padding)
    y = conv_transpose(
        x, w, b, stride=stride, padding=native, output_padding=output_padding, groups=groups, dilation=dilation,
    )
    if not any(lo or hi for lo, hi in extra):
        return y
    for i, ((lo, hi), size) in enumerate(zip(extra, y.shape[2:])):
        if size - lo - hi < 1:  # PyTorch rejects a non-positive output size; it cannot see the cropped part
            raise spec.SpecError(f"output size of spatial dim {i}", size - lo - hi, f"must be >= 1 (padding={padding})")
    return y[crop_slices(extra)]


def conv_transpose_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> Array:
    """``F.conv_transpose{1,2,3}d``, its output cropped where the padding is asymmetric."""
    with _framework_limits():
        bias = None if b is None else _tensor(b)
        y = _conv_transpose(_tensor(x), _tensor(w), bias, tuple(stride), as_padding(padding), tuple(output_padding),
                            tuple(dilation), groups)
        return _numpy(y)


def conv_transpose_backward(
    x: Array, w: Array, dy: Array, *,
    stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> tuple[Array, Array, Array]:
    """Autograd through ``F.conv_transpose{1,2,3}d`` with a zero bias, so PyTorch computes db too."""
    with _framework_limits():
        xt, wt = _tensor(x, grad=True), _tensor(w, grad=True)
        bt = torch.zeros(wt.shape[1] * groups, dtype=wt.dtype, requires_grad=True)
        y = _conv_transpose(xt, wt, bt, tuple(stride), as_padding(padding), tuple(output_padding), tuple(dilation),
                            groups)
        dx, dw, db = _gradients(y, (xt, wt, bt), dy)
        return dx, dw, db


def max_pool_indices(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> NDArray[np.int64]:
    """``F.max_pool{1,2,3}d(..., return_indices=True)``: flat per plane, re-counted where padding is explicit."""
    pads = as_padding(padding)
    extra = split_padding(pads).extra
    if np.isneginf(x).any() and any(lo > 0 for lo, _ in extra):
        raise spec.UnsupportedError("asymmetric before-padding is emulated with explicit -inf, which ties with "
                                    "a real -inf in x")
    with _framework_limits():
        _, index = _max_pool(_tensor(x), tuple(kernel_size), tuple(stride), pads, tuple(dilation), ceil_mode,
                             indices=True)
        assert index is not None
        found: NDArray[np.int64] = fresh(index.numpy())
        spatial = tuple(x.shape[2:])
        padded = tuple(n + lo + hi for n, (lo, hi) in zip(spatial, extra))
        return unpadded_plane_indices(found, padded, tuple(lo for lo, _ in extra), spatial)


def adaptive_avg_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """``F.adaptive_avg_pool{1,2,3}d``."""
    with _framework_limits():
        xt = _tensor(x)
        return _numpy(_spatial_op(_ADAPTIVE_AVG, xt)(xt, tuple(output_size)))


def adaptive_avg_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """Autograd through ``F.adaptive_avg_pool{1,2,3}d``."""
    with _framework_limits():
        xt = _tensor(x, grad=True)
        (dx,) = _gradients(_spatial_op(_ADAPTIVE_AVG, xt)(xt, tuple(output_size)), (xt,), dy)
        return dx


def adaptive_max_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """``F.adaptive_max_pool{1,2,3}d``."""
    with _framework_limits():
        xt = _tensor(x)
        return _numpy(_spatial_op(_ADAPTIVE_MAX, xt)(xt, tuple(output_size)))


def adaptive_max_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """Autograd through ``F.adaptive_max_pool{1,2,3}d``."""
    with _framework_limits():
        xt = _tensor(x, grad=True)
        (dx,) = _gradients(_spatial_op(_ADAPTIVE_MAX, xt)(xt, tuple(output_size)), (xt,), dy)
        return dx


def linear_forward(x: Array, w: Array, b: Array | None) -> Array:
    """``F.linear`` (x · Wᵀ + b)."""
    with _framework_limits():
        return _numpy(F.linear(_tensor(x), _tensor(w), None if b is None else _tensor(b)))


def linear_backward(x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
    """Autograd through ``F.linear`` with a zero bias."""
    with _framework_limits():
        xt, wt = _tensor(x, grad=True), _tensor(w, grad=True)
        bt = torch.zeros(wt.shape[0], dtype=wt.dtype, requires_grad=True)
        dx, dw, db = _gradients(F.linear(xt, wt, bt), (xt, wt, bt), dy)
        return dx, dw, db


__all__ = [
    "CAPABILITIES",
    "adaptive_avg_pool_backward", "adaptive_avg_pool_forward", "adaptive_max_pool_backward",
    "adaptive_max_pool_forward", "avg_pool_backward", "avg_pool_forward", "conv_backward", "conv_forward",
    "conv_transpose_backward", "conv_transpose_forward", "linear_backward", "linear_forward",
    "max_pool_backward", "max_pool_forward", "max_pool_indices", "supports",
]

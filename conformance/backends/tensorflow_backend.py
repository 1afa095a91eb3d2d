"""TensorFlow adapter: ``tf.nn`` forward, ``tf.GradientTape`` backward, channels-last on the CPU.

TensorFlow's CPU kernels are channels-last, so arrays are transposed
(N, C, *S) <-> (N, *S, C) and weights (O, I, *K) -> (*K, I, O) on the way in
and back on the way out. ``TF_CPP_MIN_LOG_LEVEL`` is set to 3 before the
import to keep TensorFlow's C++ logging quiet.

Translation rules:

* **Padding.** None is ``"VALID"``; exactly what ``"same"`` resolves to is
  TensorFlow's ``"SAME"`` (which puts the odd element after, as the spec does)
  wherever TensorFlow accepts it; anything else is padded explicitly, by the
  2-D convolution's own explicit padding or by ``tf.pad`` (zeros for
  convolution and ``count_include_pad=True``, -inf for max pooling) followed
  by ``"VALID"``. TensorFlow's ``"SAME"`` average pool leaves padding out of
  the divisor, i.e. it is ``count_include_pad=False``; that is the only
  padded ``count_include_pad=False`` average pool TensorFlow can express.
* **Ceil mode** does not exist in TensorFlow. For max pooling it is exactly
  extra -inf padding after the input (plus the spec's rule dropping a last
  window that starts in the after-padding); for average pooling an overhang
  that the divisor must not count is not expressible.
* **Groups** are implied by the filter shape (``w.shape[1] = C_in / groups``).
* Dilation uses ``tf.nn.convolution`` / ``tf.nn.pool``, which reject
  ``strides > 1`` together with ``dilation > 1``.
* **Transposed convolution** is ``tf.nn.conv{1,2,3}d_transpose`` with
  ``"VALID"`` padding (the full scatter) and an ``output_shape`` that extends
  it by the output positions ``output_padding`` adds beyond the after-padding;
  the protocol's padding is then cropped from the result. TensorFlow has no
  groups, dilation only outside float64 (no float64 dilated CPU kernel), and an
  ``output_shape`` at most ``stride − 1`` beyond the full scatter. It has no
  ``output_padding`` either, so the adapter rejects one outside
  ``[0, max(s, d))`` itself, and negative padding (which it would crop with).
* **Max-pool indices** are ``tf.nn.max_pool_with_argmax`` (2-D; 1-D as 2-D of
  height 1), whose index ``(y·W + x)·C + c`` becomes the plane index
  ``y·W + x``; padding other than SAME is explicit -inf (indices re-counted in
  the input's plane) and ceil mode extra -inf after-padding, as for max
  pooling. No dilation, no 3-D; a window entirely in padding is declined.
* **Adaptive pooling**: TensorFlow has none; global pooling (output size 1)
  is ``tf.reduce_mean`` / ``tf.reduce_max`` over the spatial axes (Keras'
  ``GlobalAveragePooling``/``GlobalMaxPooling``); other sizes are declined.
* Each per-call limit raises :class:`spec.UnsupportedError` with the reason.
"""

from __future__ import annotations

import os

# Unconditionally: JAX's import sets a default of "1", which setdefault would keep.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

from collections.abc import Callable  # noqa: E402 - TF_CPP_MIN_LOG_LEVEL must be set before the import
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

import spec  # noqa: E402
from conformance.backends._translate import (  # noqa: E402
    as_padding,
    ceil_overhang,
    check_global_call,
    check_transpose_params,
    crop_slices,
    fresh,
    has_empty_window,
    matches_same,
    spec_pool_slices,
    unpadded_plane_indices,
)
from spec import Array, Padding  # noqa: E402

#: The framework version, shown in reports.
VERSION: str = tf.__version__

CAPABILITIES = spec.Capabilities(
    # Global pooling (output size 1) is the only adaptive pooling the framework has.
    adaptive_output_size="global",
    notes=(
        f"tensorflow {tf.__version__}, CPU, channels-last; backward by tf.GradientTape",
        "limits per case are declared by supports(op, problem), each counted as declined in the reports:",
        "groups: forward only (no CPU gradient kernel), and no grouped Conv3D",
        "dilation > 1 only with stride 1 (conv and pooling)",
        "3-D pooling only in float32 (no float16/float64 MaxPool3D/AvgPool3D CPU kernels)",
        "avg_pool: count_include_pad=False only unpadded or with exactly SAME padding; "
        "ceil mode only when the last window does not overhang the padded input",
        "conv_transpose: no groups; dilation > 1 not in float64; output_padding at most stride - 1 beyond the "
        "after-padding",
        "max_pool_indices: tf.nn.max_pool_with_argmax, 1-D and 2-D, no dilation, no window entirely in padding",
        "adaptive pooling: global only (tf.reduce_mean / tf.reduce_max); other output sizes declined",
    ),
)

# Spatial rank -> (tf.nn function without dilation, data format).
_CONV: dict[int, tuple[Callable[..., Any], str]] = {
    1: (tf.nn.conv1d, "NWC"),
    2: (tf.nn.conv2d, "NHWC"),
    3: (tf.nn.conv3d, "NDHWC"),
}

# Spatial rank -> (max pool, average pool, data format). The rank-generic tf.nn.max_pool / avg_pool
# build 3-D ops whose gradient fails (AttributeError in TF 2.21); the rank-specific ones work.
_POOL: dict[int, tuple[Callable[..., Any], Callable[..., Any], str]] = {
    1: (tf.nn.max_pool1d, tf.nn.avg_pool1d, "NWC"),
    2: (tf.nn.max_pool2d, tf.nn.avg_pool2d, "NHWC"),
    3: (tf.nn.max_pool3d, tf.nn.avg_pool3d, "NDHWC"),
}


def _channels_last(a: Any) -> Any:
    """(N, C, *S) -> (N, *S, C)."""
    return tf.transpose(a, (0, *range(2, len(a.shape)), 1))


def _channels_first(a: Any) -> Any:
    """(N, *S, C) -> (N, C, *S)."""
    rank = len(a.shape)
    return tf.transpose(a, (0, rank - 1, *range(1, rank - 1)))


def _filter_layout(w: Any) -> Any:
    """(O, I, *K) -> (*K, I, O)."""
    rank = len(w.shape)
    return tf.transpose(w, (*range(2, rank), 1, 0))


def _filter_back(dw: Any) -> Any:
    """(*K, I, O) -> (O, I, *K)."""
    rank = len(dw.shape)
    return tf.transpose(dw, (rank - 1, rank - 2, *range(rank - 2)))


def _numpy(t: Any) -> Array:
    return fresh(t.numpy())


def _tf_pad(x: Any, padding: Padding, value: float) -> Any:
    """Pad the spatial dims of a channels-last tensor explicitly."""
    if all(lo == 0 and hi == 0 for lo, hi in padding):
        return x
    return tf.pad(x, [[0, 0], *([lo, hi] for lo, hi in padding), [0, 0]], constant_values=value)


def _dilated_strides(stride: tuple[int, ...], dilation: tuple[int, ...], what: str) -> str | None:
    if any(d > 1 for d in dilation) and any(s > 1 for s in stride):
        return f"TensorFlow's {what} rejects strides > 1 together with dilation > 1 (stride={stride}, dilation={dilation})"
    return None


def _no_dilated_strides(stride: tuple[int, ...], dilation: tuple[int, ...], what: str) -> None:
    reason = _dilated_strides(stride, dilation, what)
    if reason is not None:
        raise spec.UnsupportedError(reason)


def _grouped(groups: int, backward: bool, ndim: int) -> str | None:
    if groups != 1 and (backward or ndim == 3):
        return f"TensorFlow has no CPU {'gradient' if backward else '3-D'} kernel for grouped convolutions"
    return None


def _pool_dtype(ndim: int, dtype: str, what: str) -> str | None:
    return f"TensorFlow has no {dtype} CPU kernel for 3-D {what}" if ndim == 3 and dtype != "float32" else None


def _avg_pool_limit(spatial: tuple[int, ...], kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
                    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool) -> str | None:
    if any(ceil_overhang(spatial, kernel_size, stride, padding, dilation, ceil_mode)):
        return ("TensorFlow has no ceil mode, and a last window overhanging the padded input cannot be left out of "
                "the divisor")
    if (not count_include_pad and not all(lo == 0 and hi == 0 for lo, hi in padding)
            and not (all(d == 1 for d in dilation) and matches_same(padding, spatial, kernel_size, stride, dilation))):
        return ("TensorFlow leaves padding out of the average-pool divisor only for undilated SAME padding "
                f"(padding={padding}, count_include_pad=False)")
    return None


def _global_only(output_size: tuple[int, ...]) -> str | None:
    if all(o == 1 for o in output_size):
        return None
    return ("TensorFlow has no adaptive pooling, only global pooling (output size 1: tf.reduce_mean / tf.reduce_max; "
            f"output_size={output_size})")


def _transpose_extension(padding: Padding, output_padding: tuple[int, ...]) -> tuple[int, ...]:
    """Per dim, the output positions beyond the full scatter: output_padding not absorbed by the after-padding."""
    return tuple(max(0, e - max(hi, 0)) for (_, hi), e in zip(padding, output_padding))


def _conv_transpose_limit(spatial: tuple[int, ...], kernel: tuple[int, ...], p: dict[str, Any], dtype: str,
                          ) -> str | None:
    stride, dilation = tuple(p["stride"]), tuple(p["dilation"])
    if int(p["groups"]) != 1:
        return f"TensorFlow's conv_transpose has no groups (groups={p['groups']})"
    if any(d > 1 for d in dilation) and dtype == "float64":
        return f"TensorFlow has no float64 CPU kernel for a dilated transposed convolution (dilation={dilation})"
    extension = _transpose_extension(as_padding(p["padding"]), tuple(p["output_padding"]))
    if any(1 <= s <= a for a, s in zip(extension, stride)):
        return ("TensorFlow's output_shape may extend the full transposed convolution by at most stride - 1 "
                f"(output_padding={tuple(p['output_padding'])} beyond padding={as_padding(p['padding'])})")
    return None


def _argmax_limit(spatial: tuple[int, ...], p: dict[str, Any]) -> str | None:
    if len(spatial) == 3:
        return "TensorFlow's max_pool_with_argmax is 2-D only (1-D runs as 2-D of height 1)"
    stride, padding, kernel, dilation = tuple(p["stride"]), as_padding(p["padding"]), tuple(p["kernel_size"]), tuple(
        p["dilation"])
    if any(d > 1 for d in dilation):
        return f"TensorFlow's max_pool_with_argmax has no dilation (dilation={dilation})"
    if has_empty_window(spatial, kernel, stride, padding, dilation, bool(p["ceil_mode"])):
        return ("a window entirely in padding: TensorFlow's argmax pooling pads only with SAME, which never has one, "
                f"and would select an explicit -inf (padding={padding})")
    return None


def supports(op: str, problem: dict[str, Any]) -> str | None:
    """What TensorFlow lacks for this case, or None (the suite asks before it generates a case).

    Grouped convolutions run forward in 1-D and 2-D but have no gradient kernel; strides > 1 do not combine
    with dilation > 1; 3-D pooling runs only in float32; average pooling has no ceil mode and leaves padding
    out of the divisor only for SAME padding.
    """
    p = problem["params"]
    ndim = len(problem["x_shape"]) - 2
    if op == "linear":
        return None
    if op in ("adaptive_avg_pool", "adaptive_max_pool"):
        return _global_only(tuple(p["output_size"]))
    if op == "conv_transpose":
        return _conv_transpose_limit(tuple(problem["x_shape"][2:]), tuple(problem["w_shape"][2:]), p,
                                     str(problem["dtype"]))
    if op == "max_pool_indices":
        return _argmax_limit(tuple(problem["x_shape"][2:]), p)
    stride, dilation = tuple(p["stride"]), tuple(p["dilation"])
    if op == "conv":
        return _grouped(int(p["groups"]), problem["direction"] == "backward", ndim) or _dilated_strides(
            stride, dilation, "tf.nn.convolution")
    what = "max pooling" if op == "max_pool" else "average pooling"
    reason = _pool_dtype(ndim, str(problem["dtype"]), what) or _dilated_strides(stride, dilation, "tf.nn.pool")
    if reason is None and op == "avg_pool":
        reason = _avg_pool_limit(tuple(problem["x_shape"][2:]), tuple(p["kernel_size"]), stride,
                                 as_padding(p["padding"]), dilation, bool(p["ceil_mode"]), bool(p["count_include_pad"]))
    return reason


def _conv(
    x: Any, w: Any, stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
    *, backward: bool,
) -> Any:
    """Channels-last convolution of channels-last ``x`` with a (*K, I, O) filter."""
    ndim = len(x.shape) - 2
    if ndim not in _CONV:
        raise spec.SpecError("x.ndim", ndim + 2, "must be 3, 4 or 5 (N, C and 1 to 3 spatial dims)")
    c_in, w_in = x.shape[-1], w.shape[-2]
    if c_in != w_in * groups:
        raise spec.SpecError(
            "groups", groups, f"must equal C_in / w.shape[1] = {c_in} / {w_in}: TensorFlow infers groups from the filter"
        )
    grouped = _grouped(groups, backward, ndim)
    if grouped is not None:
        raise spec.UnsupportedError(f"{grouped} (groups={groups})")
    _no_dilated_strides(stride, dilation, "tf.nn.convolution")
    spatial, kernel = tuple(x.shape[1:-1]), tuple(w.shape[:-2])
    if all(lo == 0 and hi == 0 for lo, hi in padding):
        mode: str | list[list[int]] = "VALID"
    elif matches_same(padding, spatial, kernel, stride, dilation):
        mode = "SAME"
    elif ndim == 2 and all(d == 1 for d in dilation):
        mode = [[0, 0], *([lo, hi] for lo, hi in padding), [0, 0]]  # Conv2D's own explicit padding
    else:
        x, mode = _tf_pad(x, padding, 0.0), "VALID"
    if any(d != 1 for d in dilation):
        # The dilated path (space-to-batch); Conv3D has no dilated CPU kernel.
        return tf.nn.convolution(x, w, strides=list(stride), padding=mode, dilations=list(dilation))
    op, data_format = _CONV[ndim]
    # tf.nn.convolution's own 3-D gradient fails (AttributeError in TF 2.21); the ops themselves work.
    if ndim == 3:
        return op(x, w, [1, *stride, 1], mode, data_format=data_format, dilations=[1, *dilation, 1])
    return op(x, w, list(stride), mode, data_format=data_format, dilations=list(dilation))


def _pool_checks(x: Any, stride: tuple[int, ...], dilation: tuple[int, ...], what: str) -> None:
    if len(x.shape) - 2 not in _POOL:
        raise spec.SpecError("x.ndim", len(x.shape), "must be 3, 4 or 5 (N, C and 1 to 3 spatial dims)")
    dtype = _pool_dtype(len(x.shape) - 2, x.dtype.name, what)
    if dtype is not None:
        raise spec.UnsupportedError(dtype)
    _no_dilated_strides(stride, dilation, "tf.nn.pool")


def _pool(
    x: Any, kind: str, kernel_size: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...], mode: str,
) -> Any:
    if all(d == 1 for d in dilation):
        max_op, avg_op, data_format = _POOL[len(x.shape) - 2]
        op = max_op if kind == "MAX" else avg_op
        return op(x, list(kernel_size), list(stride), mode, data_format=data_format)
    return tf.nn.pool(x, list(kernel_size), kind, strides=list(stride), padding=mode, dilations=list(dilation))


def _max_pool(
    x: Any, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...],
    ceil_mode: bool,
) -> Any:
    """Channels-last max pooling of channels-last ``x``."""
    _pool_checks(x, stride, dilation, "max pooling")
    spatial = tuple(x.shape[1:-1])
    overhang = ceil_overhang(spatial, kernel_size, stride, padding, dilation, ceil_mode)
    if not any(overhang) and all(d == 1 for d in dilation) and matches_same(padding, spatial, kernel_size, stride, dilation):
        return _pool(x, "MAX", kernel_size, stride, dilation, "SAME")
    padded = _tf_pad(x, tuple((lo, hi + e) for (lo, hi), e in zip(padding, overhang)), -np.inf)
    y = _pool(padded, "MAX", kernel_size, stride, dilation, "VALID")
    keep = spec_pool_slices(spatial, kernel_size, stride, padding, dilation, ceil_mode)
    return y[(keep[0], *keep[2:], keep[1])]


def _avg_pool(
    x: Any, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...],
    ceil_mode: bool, count_include_pad: bool,
) -> Any:
    """Channels-last average pooling of channels-last ``x``."""
    _pool_checks(x, stride, dilation, "average pooling")
    spatial = tuple(x.shape[1:-1])
    limit = _avg_pool_limit(spatial, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad)
    if limit is not None:
        raise spec.UnsupportedError(limit)
    if all(lo == 0 and hi == 0 for lo, hi in padding):
        y = _pool(x, "AVG", kernel_size, stride, dilation, "VALID")
    elif count_include_pad:
        y = _pool(_tf_pad(x, padding, 0.0), "AVG", kernel_size, stride, dilation, "VALID")
    elif all(d == 1 for d in dilation) and matches_same(padding, spatial, kernel_size, stride, dilation):
        y = _pool(x, "AVG", kernel_size, stride, dilation, "SAME")  # SAME leaves the padding out of the divisor
    else:
        raise spec.UnsupportedError(
            "TensorFlow leaves padding out of the average-pool divisor only for undilated SAME padding "
            f"(padding={padding}, count_include_pad=False)"
        )
    keep = spec_pool_slices(spatial, kernel_size, stride, padding, dilation, ceil_mode)
    return y[(keep[0], *keep[2:], keep[1])]


def _constant(a: Array) -> Any:
    return tf.constant(a)


def conv_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> Array:
    """``tf.nn.conv{1,2,3}d`` (``tf.nn.convolution`` when dilated) plus ``tf.nn.bias_add``."""
    y = _conv(
        _channels_last(_constant(x)), _filter_layout(_constant(w)), tuple(stride), as_padding(padding),
        tuple(dilation), groups, backward=False,
    )
    if b is not None:
        y = tf.nn.bias_add(y, _constant(b))
    return _numpy(_channels_first(y))


def conv_backward(
    x: Array, w: Array, dy: Array, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> tuple[Array, Array, Array]:
    """GradientTape through the convolution and a zero ``tf.nn.bias_add``, so TensorFlow computes db too."""
    xt, wt = _constant(x), _constant(w)
    bt = tf.zeros(w.shape[:1], dtype=wt.dtype)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt, bt])
        y = _conv(_channels_last(xt), _filter_layout(wt), tuple(stride), as_padding(padding), tuple(dilation), groups,
                  backward=True)
        y = _channels_first(tf.nn.bias_add(y, bt))
    dx, dw, db = tape.gradient(y, [xt, wt, bt], output_gradients=_constant(dy))
    return _numpy(dx), _numpy(dw), _numpy(db)


def max_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """``tf.nn.max_pool`` (``tf.nn.pool`` when dilated)."""
    y = _max_pool(
        _channels_last(_constant(x)), tuple(kernel_size), tuple(stride), as_padding(padding), tuple(dilation), ceil_mode
    )
    return _numpy(_channels_first(y))


def max_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """GradientTape through the max pool."""
    xt = _constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = _max_pool(_channels_last(xt), tuple(kernel_size), tuple(stride), as_padding(padding), tuple(dilation),
                      ceil_mode)
        y = _channels_first(y)
    return _numpy(tape.gradient(y, xt, output_gradients=_constant(dy)))


def avg_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """``tf.nn.avg_pool`` (``tf.nn.pool`` when dilated)."""
    y = _avg_pool(
        _channels_last(_constant(x)), tuple(kernel_size), tuple(stride), as_padding(padding), tuple(dilation),
        ceil_mode, count_include_pad,
    )
    return _numpy(_channels_first(y))


def avg_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """GradientTape through the average pool."""
    xt = _constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = _avg_pool(_channels_last(xt), tuple(kernel_size), tuple(stride), as_padding(padding), tuple(dilation),
                      ceil_mode, count_include_pad)
        y = _channels_first(y)
    return _numpy(tape.gradient(y, xt, output_gradients=_constant(dy)))


def _conv_transpose(
    x: Any, w: Any, stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...],
    dilation: tuple[int, ...], groups: int, dtype: str,
) -> Any:
    """Channels-first transposed convolution (``tf.nn.conv{1,2,3}d_transpose``, channels-last inside)."""
    ndim = len(x.shape) - 2
    ops = {1: tf.nn.conv1d_transpose, 2: tf.nn.conv2d_transpose, 3: tf.nn.conv3d_transpose}
    if ndim not in ops:
        raise spec.SpecError("x.ndim", ndim + 2, "must be 3, 4 or 5 (N, C and 1 to 3 spatial dims)")
    spatial, kernel = tuple(x.shape[2:]), tuple(w.shape[2:])
    check_transpose_params(as_padding(padding), output_padding, stride, dilation, "TensorFlow")
    limit = _conv_transpose_limit(spatial, kernel, {"stride": stride, "padding": padding, "dilation": dilation,
                                                    "groups": groups, "output_padding": output_padding}, dtype)
    if limit is not None:
        raise spec.UnsupportedError(limit)
    extension = _transpose_extension(padding, output_padding)
    full = tuple((n - 1) * s + d * (k - 1) + 1 + a
                 for n, k, s, d, a in zip(spatial, kernel, stride, dilation, extension))
    c_out = w.shape[1] * groups
    # TensorFlow's filter is (*K, C_out, C_in): the protocol's (C_in, C_out, *K) with its axes reversed in order.
    y = ops[ndim](_channels_last(x), _filter_layout(w), [x.shape[0], *full, c_out], list(stride), "VALID",
                  dilations=list(dilation))
    y = _channels_first(y)
    crop = tuple((lo, max(0, hi - e)) for (lo, hi), e in zip(padding, output_padding))
    for i, ((lo, hi), size) in enumerate(zip(crop, full)):
        if size - lo - hi < 1:  # TensorFlow cannot see the cropped part: a non-positive size is the spec's error
            raise spec.SpecError(f"output size of spatial dim {i}", size - lo - hi, f"must be >= 1 (padding={padding})")
    return y[crop_slices(crop)] if any(lo or hi for lo, hi in crop) else y


def conv_transpose_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> Array:
    """``tf.nn.conv{1,2,3}d_transpose`` ("VALID", output_shape) cropped to the padding, plus ``tf.nn.bias_add``."""
    y = _conv_transpose(_constant(x), _constant(w), tuple(stride), as_padding(padding), tuple(output_padding),
                        tuple(dilation), groups, x.dtype.name)
    if b is not None:
        y = _channels_first(tf.nn.bias_add(_channels_last(y), _constant(b)))
    return _numpy(y)


def conv_transpose_backward(
    x: Array, w: Array, dy: Array, *,
    stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> tuple[Array, Array, Array]:
    """GradientTape through the transposed convolution and a zero ``tf.nn.bias_add``."""
    xt, wt = _constant(x), _constant(w)
    bt = tf.zeros((w.shape[1] * groups,), dtype=wt.dtype)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt, bt])
        y = _conv_transpose(xt, wt, tuple(stride), as_padding(padding), tuple(output_padding), tuple(dilation),
                            groups, x.dtype.name)
        y = _channels_first(tf.nn.bias_add(_channels_last(y), bt))
    dx, dw, db = tape.gradient(y, [xt, wt, bt], output_gradients=_constant(dy))
    return _numpy(dx), _numpy(dw), _numpy(db)


def max_pool_indices(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> NDArray[np.int64]:
    """``tf.nn.max_pool_with_argmax`` on the 2-D (or height-1) channels-last input: ``(y·W + x)·C + c`` → ``y·W + x``."""
    pads, kernel, strides, dilations = as_padding(padding), tuple(kernel_size), tuple(stride), tuple(dilation)
    spatial = tuple(x.shape[2:])
    if len(spatial) not in (1, 2):
        raise spec.UnsupportedError(_argmax_limit(spatial, {}) or "")
    for i, d in enumerate(dilations):
        if d < 1:  # TensorFlow's argmax pooling has no dilation to reject it with
            raise spec.SpecError(f"dilation[{i}]", d, "must be >= 1 (TensorFlow's argmax pooling has no dilation: "
                                 "the adapter checks it)")
    limit = _argmax_limit(spatial, {"stride": strides, "padding": pads, "kernel_size": kernel, "dilation": dilations,
                                    "ceil_mode": ceil_mode})
    if limit is not None:
        raise spec.UnsupportedError(limit)
    overhang = ceil_overhang(spatial, kernel, strides, pads, dilations, ceil_mode)
    explicit = tuple((lo, hi + e) for (lo, hi), e in zip(pads, overhang))
    same = not any(overhang) and matches_same(pads, spatial, kernel, strides, dilations)
    if not same and np.isneginf(x).any() and any(lo > 0 for lo, _ in explicit):
        raise spec.UnsupportedError("padding is emulated with explicit -inf, which ties with a real -inf in x")
    xt = _channels_last(_constant(x))
    if not same:
        xt = _tf_pad(xt, explicit, -np.inf)
    if len(spatial) == 1:  # as 2-D of height 1, as tf.nn.max_pool1d runs
        xt, kernel, strides = tf.expand_dims(xt, 1), (1, *kernel), (1, *strides)
    _, argmax = tf.nn.max_pool_with_argmax(xt, [1, *kernel, 1], [1, *strides, 1], "SAME" if same else "VALID")
    plane = _numpy(_channels_first(argmax)) // x.shape[1]
    if len(spatial) == 1:
        plane = plane[:, :, 0]
    keep = spec_pool_slices(spatial, kernel_size, stride, pads, dilation, ceil_mode)
    padded = spatial if same else tuple(n + lo + hi for n, (lo, hi) in zip(spatial, explicit))
    before = (0,) * len(spatial) if same else tuple(lo for lo, _ in explicit)
    return unpadded_plane_indices(np.ascontiguousarray(plane[keep]), padded, before, spatial)


def _global(x: Array, output_size: tuple[int, ...]) -> None:
    check_global_call(x, output_size, "TensorFlow", _global_only(tuple(output_size)))


def _global_pool(x: Any, kind: str) -> Any:
    axes = list(range(2, len(x.shape)))
    return tf.reduce_mean(x, axis=axes, keepdims=True) if kind == "avg" else tf.reduce_max(x, axis=axes, keepdims=True)


def _global_backward(x: Array, dy: Array, kind: str) -> Array:
    xt = _constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = _global_pool(xt, kind)
    return _numpy(tape.gradient(y, xt, output_gradients=_constant(dy)))


def adaptive_avg_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """Global average pooling: ``tf.reduce_mean`` over the spatial axes (output size 1 only)."""
    _global(x, output_size)
    return _numpy(_global_pool(_constant(x), "avg"))


def adaptive_avg_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """GradientTape through the global average pool."""
    _global(x, output_size)
    return _global_backward(x, dy, "avg")


def adaptive_max_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """Global max pooling: ``tf.reduce_max`` over the spatial axes (output size 1 only)."""
    _global(x, output_size)
    return _numpy(_global_pool(_constant(x), "max"))


def adaptive_max_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """GradientTape through the global max pool (TensorFlow splits the gradient between tied maxima)."""
    _global(x, output_size)
    return _global_backward(x, dy, "max")


def linear_forward(x: Array, w: Array, b: Array | None) -> Array:
    """``tf.matmul(x, w, transpose_b=True)`` plus ``tf.nn.bias_add``."""
    y = tf.matmul(_constant(x), _constant(w), transpose_b=True)
    if b is not None:
        y = tf.nn.bias_add(y, _constant(b))
    return _numpy(y)


def linear_backward(x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
    """GradientTape through the linear layer with a zero bias."""
    xt, wt = _constant(x), _constant(w)
    bt = tf.zeros(w.shape[:1], dtype=wt.dtype)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt, bt])
        y = tf.nn.bias_add(tf.matmul(xt, wt, transpose_b=True), bt)
    dx, dw, db = tape.gradient(y, [xt, wt, bt], output_gradients=_constant(dy))
    return _numpy(dx), _numpy(dw), _numpy(db)


__all__ = [
    "CAPABILITIES",
    "adaptive_avg_pool_backward", "adaptive_avg_pool_forward", "adaptive_max_pool_backward",
    "adaptive_max_pool_forward", "avg_pool_backward", "avg_pool_forward", "conv_backward", "conv_forward",
    "conv_transpose_backward", "conv_transpose_forward", "linear_backward", "linear_forward",
    "max_pool_backward", "max_pool_forward", "max_pool_indices", "supports",
]

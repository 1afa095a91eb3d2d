"""JAX adapter: ``lax.conv_general_dilated`` and ``lax.reduce_window``, ``jax.vjp`` for backward.

Importing this module enables float64 in JAX (``jax_enable_x64``) for the
whole process: without it JAX silently computes float64 inputs in float32.

Translation rules:

* **Convolution** takes the protocol's ``(before, after)`` pairs, dilation
  (``rhs_dilation``) and groups (``feature_group_count``) natively, in the
  NC*/OI* layout. Negative padding, which XLA treats as cropping, is passed on
  unchanged so that the suite can report that it is accepted.
* **Max pooling** is ``reduce_window(max)`` with initial value -inf, which is
  also what XLA pads with.
* **Average pooling** has no JAX primitive: it is ``reduce_window(add)`` of
  the input divided by ``reduce_window(add)`` of ones laid out so that the
  divisor counts the positions the spec counts (the padded input for
  ``count_include_pad=True``, the input for ``False``).
* **Ceil mode** has no JAX counterpart: the last window's overhang beyond the
  padded input is added as extra after-padding, which max pooling fills with
  -inf and the average pool's divisor never counts, and a last window that
  ceil mode adds but that starts at or beyond ``n + before`` is removed (the
  spec's ceil rule).
* JAX's own ``NotImplementedError`` (no VJP for a dilated max pool) is
  reported as :class:`spec.UnsupportedError`.
* **Transposed convolution** is ``lax.conv_general_dilated`` with
  ``lhs_dilation`` = stride (the input spread out by the stride), the kernel
  flipped and its in/out channels swapped per group, and padding
  ``d·(k − 1) − before`` / ``d·(k − 1) − after + output_padding`` (negative
  values crop, as XLA does): the formulation of ``lax.conv_transpose``, with
  groups (``feature_group_count``), which ``lax.conv_transpose`` lacks.
  JAX has no ``output_padding`` (it is padding here, which takes any value),
  so the adapter rejects one outside ``[0, max(s, d))`` itself, and negative
  padding (which would become more padding of the convolution it runs).
* **Adaptive pooling**: JAX has none. Global pooling (output size 1) is
  ``jnp.mean`` / ``jnp.max`` over the spatial axes, as JAX models write it;
  any other output size is declined by ``supports``.
* **Max-pool indices**: JAX has no argmax pooling; the adapter has no
  ``max_pool_indices``.

Every operation is ``jax.jit``-compiled once per configuration (parameters
static, shapes and dtypes as JAX specialises them); the adapter declares
``compiles_per_shape``, so the suite draws shapes from small pools and each
compiles once. Compiled code is kept between runs in XLA's persistent
compilation cache, under the user's cache directory (``~/.cache/convspec/jax``;
see :mod:`conformance.cache`; ``convspec check --no-cache`` or
``CONVSPEC_NO_CACHE=1`` turns it off).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import spec
from conformance.backends._translate import (
    as_padding,
    ceil_overhang,
    check_global_call,
    check_transpose_params,
    framework_limits,
    fresh,
    spec_pool_slices,
)
from conformance.cache import cache_dir
from spec import Array, Padding

# jax.config.update is unannotated; this is the signature it has.
_update_config: Callable[[str, Any], None] = jax.config.update
_update_config("jax_enable_x64", True)


def _use_compilation_cache() -> None:
    """XLA's persistent compilation cache in convspec's cache directory, for every kernel however small."""
    directory = cache_dir("jax")
    if directory is None:
        return
    _update_config("jax_compilation_cache_dir", str(directory))
    # The defaults skip kernels that compile in under a second or are small; the suite's are all small.
    _update_config("jax_persistent_cache_min_compile_time_secs", 0.0)
    _update_config("jax_persistent_cache_min_entry_size_bytes", -1)


_use_compilation_cache()

#: The framework version, shown in reports.
VERSION: str = jax.__version__

CAPABILITIES = spec.Capabilities(
    # Global pooling (output size 1) is the only adaptive pooling the framework has.
    adaptive_output_size="global",
    compiles_per_shape=True,
    # XLA rounds every op's result to the dtype: a bias is added to the already-rounded
    # convolution or matmul, and reduce_window sums average-pooling windows in the dtype itself.
    accumulation={"float16": "float16", "bfloat16": "bfloat16"},
    notes=(
        f"jax {jax.__version__}; backward by jax.vjp; jax_enable_x64 on",
        "float16 and bfloat16: each op rounds to the dtype (bias added after the rounded conv or matmul)",
        "average pooling is reduce_window(add) / window count; ceil mode is extra after-padding",
        "max pooling backward with dilation > 1: JAX has no VJP (declared by supports(op, problem))",
        "conv_transpose: conv_general_dilated with lhs_dilation and the flipped kernel (lax.conv_transpose's "
        "formulation, with groups)",
        "adaptive pooling: global only (jnp.mean / jnp.max); other output sizes declined",
        "no max_pool_indices: JAX has no argmax pooling",
    ),
)

_Pairs = tuple[tuple[int, int], ...]


def _dimension_numbers(ndim: int) -> lax.ConvDimensionNumbers:
    """NC<spatial> input, OI<spatial> weight, NC<spatial> output, for any rank."""
    axes = tuple(range(ndim))
    return lax.ConvDimensionNumbers(lhs_spec=axes, rhs_spec=axes, out_spec=axes)


def _conv(
    x: jax.Array, w: jax.Array, b: jax.Array | None, stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], groups: int,
) -> jax.Array:
    y = lax.conv_general_dilated(
        x, w, window_strides=stride, padding=padding, rhs_dilation=dilation,
        dimension_numbers=_dimension_numbers(x.ndim), feature_group_count=groups,
    )
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


def _window_padding(
    x: jax.Array, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> tuple[_Pairs, _Pairs]:
    """(padding of the input, ceil-mode overhang padding) for reduce_window, N and C included."""
    overhang = ceil_overhang(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    lead: _Pairs = ((0, 0), (0, 0))
    return lead + tuple(padding), lead + tuple((0, e) for e in overhang)


def _reduce(
    x: jax.Array, init: float, op: Any, kernel_size: tuple[int, ...], stride: tuple[int, ...],
    padding: _Pairs, dilation: tuple[int, ...],
) -> jax.Array:
    # reduce_window is typed for pytrees (Any); for one array operand it returns one array.
    y: jax.Array = lax.reduce_window(
        x, np.array(init, dtype=x.dtype), op, (1, 1, *kernel_size), (1, 1, *stride), padding,
        window_dilation=(1, 1, *dilation),
    )
    return y


def _max_pool(
    x: jax.Array, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> jax.Array:
    pads, overhang = _window_padding(x, kernel_size, stride, padding, dilation, ceil_mode)
    total = tuple((lo, hi + e) for (lo, hi), (_, e) in zip(pads, overhang))
    y = _reduce(x, -np.inf, lax.max, kernel_size, stride, total, dilation)
    return y[spec_pool_slices(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)]


def _avg_pool(
    x: jax.Array, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> jax.Array:
    pads, overhang = _window_padding(x, kernel_size, stride, padding, dilation, ceil_mode)
    total = tuple((lo, hi + e) for (lo, hi), (_, e) in zip(pads, overhang))
    window_sum = _reduce(x, 0.0, lax.add, kernel_size, stride, total, dilation)
    ones = jnp.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
    if count_include_pad:
        # Padded positions count, the ceil overhang does not: pad the ones with ones, the overhang with zeros.
        padded_ones = lax.pad(ones, np.array(1, dtype=x.dtype), tuple((lo, hi, 0) for lo, hi in pads))
        count = _reduce(padded_ones, 0.0, lax.add, kernel_size, stride, overhang, dilation)
    else:
        count = _reduce(ones, 0.0, lax.add, kernel_size, stride, total, dilation)
    return (window_sum / count)[spec_pool_slices(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)]


def _transposed_kernel(w: jax.Array, groups: int) -> jax.Array:
    """(C_in, C_out/g, *K) -> (C_out, C_in/g, *K), flipped: the kernel of the equivalent forward convolution."""
    c_in, og = w.shape[:2]
    kernel = w.shape[2:]
    if groups < 1 or c_in % groups:
        return w  # invalid groups: conv_general_dilated rejects them itself
    wg = w.reshape(groups, c_in // groups, og, *kernel)
    wg = jnp.swapaxes(wg, 1, 2).reshape(groups * og, c_in // groups, *kernel)
    return jnp.flip(wg, axis=tuple(range(2, w.ndim)))


def _conv_transpose(
    x: jax.Array, w: jax.Array, b: jax.Array | None, stride: tuple[int, ...], padding: Padding,
    output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> jax.Array:
    kernel = w.shape[2:]
    pads = tuple(
        (d * (k - 1) - lo, d * (k - 1) - hi + e) for k, d, (lo, hi), e in zip(kernel, dilation, padding, output_padding)
    )
    y = lax.conv_general_dilated(
        x, _transposed_kernel(w, groups), window_strides=(1,) * len(kernel), padding=pads, lhs_dilation=stride,
        rhs_dilation=dilation, dimension_numbers=_dimension_numbers(x.ndim), feature_group_count=groups,
    )
    # lax.broadcast_in_dim, not NumPy broadcasting: a bias of the wrong length must raise, not broadcast.
    return y if b is None else lax.add(y, lax.broadcast_in_dim(b, y.shape, (1,)))


def _global_pool(x: jax.Array, kind: str) -> jax.Array:
    axes = tuple(range(2, x.ndim))
    return jnp.mean(x, axis=axes, keepdims=True) if kind == "avg" else jnp.max(x, axis=axes, keepdims=True)


def _linear(x: jax.Array, w: jax.Array, b: jax.Array | None) -> jax.Array:
    y = jnp.matmul(x, w.T)
    # lax.broadcast_in_dim, not NumPy broadcasting: a bias of the wrong length must raise, not broadcast.
    return y if b is None else lax.add(y, lax.broadcast_in_dim(b, y.shape, (1,)))


_CONV_STATIC = ("stride", "padding", "dilation", "groups")
_POOL_STATIC = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")


@partial(jax.jit, static_argnames=_CONV_STATIC)
def _conv_forward(
    x: jax.Array, w: jax.Array, b: jax.Array | None, *, stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], groups: int,
) -> jax.Array:
    return _conv(x, w, b, stride, padding, dilation, groups)


@partial(jax.jit, static_argnames=_CONV_STATIC)
def _conv_backward(
    x: jax.Array, w: jax.Array, dy: jax.Array, *, stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], groups: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    b = jnp.zeros(w.shape[:1], dtype=w.dtype)
    _, pullback = jax.vjp(lambda x, w, b: _conv(x, w, b, stride, padding, dilation, groups), x, w, b)
    dx, dw, db = pullback(dy)
    return dx, dw, db


@partial(jax.jit, static_argnames=_POOL_STATIC)
def _max_pool_forward(
    x: jax.Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> jax.Array:
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode)


@partial(jax.jit, static_argnames=_POOL_STATIC)
def _max_pool_backward(
    x: jax.Array, dy: jax.Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> jax.Array:
    _, pullback = jax.vjp(lambda x: _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode), x)
    dx: jax.Array
    (dx,) = pullback(dy)
    return dx


@partial(jax.jit, static_argnames=(*_POOL_STATIC, "count_include_pad"))
def _avg_pool_forward(
    x: jax.Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> jax.Array:
    return _avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad)


@partial(jax.jit, static_argnames=(*_POOL_STATIC, "count_include_pad"))
def _avg_pool_backward(
    x: jax.Array, dy: jax.Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> jax.Array:
    def forward(x: jax.Array) -> jax.Array:
        return _avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad)

    _, pullback = jax.vjp(forward, x)
    dx: jax.Array
    (dx,) = pullback(dy)
    return dx


_TRANSPOSE_STATIC = ("stride", "padding", "output_padding", "dilation", "groups")


@partial(jax.jit, static_argnames=_TRANSPOSE_STATIC)
def _conv_transpose_forward(
    x: jax.Array, w: jax.Array, b: jax.Array | None, *, stride: tuple[int, ...], padding: Padding,
    output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> jax.Array:
    return _conv_transpose(x, w, b, stride, padding, output_padding, dilation, groups)


@partial(jax.jit, static_argnames=_TRANSPOSE_STATIC)
def _conv_transpose_backward(
    x: jax.Array, w: jax.Array, dy: jax.Array, *, stride: tuple[int, ...], padding: Padding,
    output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    b = jnp.zeros((w.shape[1] * groups,), dtype=w.dtype)

    def forward(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
        return _conv_transpose(x, w, b, stride, padding, output_padding, dilation, groups)

    _, pullback = jax.vjp(forward, x, w, b)
    dx, dw, db = pullback(dy)
    return dx, dw, db


@partial(jax.jit, static_argnames=("kind",))
def _global_pool_forward(x: jax.Array, *, kind: str) -> jax.Array:
    return _global_pool(x, kind)


@partial(jax.jit, static_argnames=("kind",))
def _global_pool_backward(x: jax.Array, dy: jax.Array, *, kind: str) -> jax.Array:
    _, pullback = jax.vjp(lambda x: _global_pool(x, kind), x)
    dx: jax.Array
    (dx,) = pullback(dy)
    return dx


@jax.jit
def _linear_forward(x: jax.Array, w: jax.Array, b: jax.Array | None) -> jax.Array:
    return _linear(x, w, b)


@jax.jit
def _linear_backward(x: jax.Array, w: jax.Array, dy: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    b = jnp.zeros(w.shape[:1], dtype=w.dtype)
    _, pullback = jax.vjp(_linear, x, w, b)
    dx, dw, db = pullback(dy)
    return dx, dw, db


def _pool_kwargs(
    kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], ceil_mode: bool,
) -> dict[str, Any]:
    """The protocol's pooling parameters as hashable static arguments (values untouched)."""
    return {
        "kernel_size": tuple(kernel_size), "stride": tuple(stride), "padding": as_padding(padding),
        "dilation": tuple(dilation), "ceil_mode": ceil_mode,
    }


def conv_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> Array:
    """``lax.conv_general_dilated`` plus a broadcast bias."""
    y = _conv_forward(
        x, w, b, stride=tuple(stride), padding=as_padding(padding), dilation=tuple(dilation), groups=groups
    )
    return fresh(y)


def conv_backward(
    x: Array, w: Array, dy: Array, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> tuple[Array, Array, Array]:
    """``jax.vjp`` of the convolution with a zero bias, so JAX computes db too."""
    dx, dw, db = _conv_backward(
        x, w, dy, stride=tuple(stride), padding=as_padding(padding), dilation=tuple(dilation), groups=groups
    )
    return fresh(dx), fresh(dw), fresh(db)


def max_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """``lax.reduce_window(x, -inf, lax.max, ...)``."""
    return fresh(_max_pool_forward(x, **_pool_kwargs(kernel_size, stride, padding, dilation, ceil_mode)))


def max_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """``jax.vjp`` of the max pool (XLA's select-and-scatter; JAX has none for a dilated window)."""
    with framework_limits("JAX"):
        return fresh(_max_pool_backward(x, dy, **_pool_kwargs(kernel_size, stride, padding, dilation, ceil_mode)))


def avg_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """Window sum / window count, both by ``lax.reduce_window(add)``."""
    kwargs = _pool_kwargs(kernel_size, stride, padding, dilation, ceil_mode)
    return fresh(_avg_pool_forward(x, count_include_pad=count_include_pad, **kwargs))


def avg_pool_backward(
    x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """``jax.vjp`` of the average pool."""
    kwargs = _pool_kwargs(kernel_size, stride, padding, dilation, ceil_mode)
    return fresh(_avg_pool_backward(x, dy, count_include_pad=count_include_pad, **kwargs))


def conv_transpose_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> Array:
    """``lax.conv_general_dilated`` with ``lhs_dilation`` and the flipped kernel, plus a broadcast bias."""
    check_transpose_params(as_padding(padding), output_padding, stride, dilation, "JAX")
    y = _conv_transpose_forward(
        x, w, b, stride=tuple(stride), padding=as_padding(padding), output_padding=tuple(output_padding),
        dilation=tuple(dilation), groups=groups,
    )
    return fresh(y)


def conv_transpose_backward(
    x: Array, w: Array, dy: Array, *,
    stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> tuple[Array, Array, Array]:
    """``jax.vjp`` of the transposed convolution with a zero bias."""
    check_transpose_params(as_padding(padding), output_padding, stride, dilation, "JAX")
    dx, dw, db = _conv_transpose_backward(
        x, w, dy, stride=tuple(stride), padding=as_padding(padding), output_padding=tuple(output_padding),
        dilation=tuple(dilation), groups=groups,
    )
    return fresh(dx), fresh(dw), fresh(db)


def _global_only(output_size: tuple[int, ...]) -> str | None:
    if all(o == 1 for o in output_size):
        return None
    return f"JAX has no adaptive pooling, only global pooling (output size 1: jnp.mean / jnp.max) (output_size={output_size})"


def _global(x: Array, output_size: tuple[int, ...]) -> None:
    check_global_call(x, output_size, "JAX", _global_only(tuple(output_size)))


def adaptive_avg_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """Global average pooling: ``jnp.mean`` over the spatial axes (output size 1 only)."""
    _global(x, output_size)
    return fresh(_global_pool_forward(x, kind="avg"))


def adaptive_avg_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """``jax.vjp`` of the global average pool."""
    _global(x, output_size)
    return fresh(_global_pool_backward(x, dy, kind="avg"))


def adaptive_max_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """Global max pooling: ``jnp.max`` over the spatial axes (output size 1 only)."""
    _global(x, output_size)
    return fresh(_global_pool_forward(x, kind="max"))


def adaptive_max_pool_backward(x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array:
    """``jax.vjp`` of the global max pool (JAX splits the gradient between tied maxima)."""
    _global(x, output_size)
    return fresh(_global_pool_backward(x, dy, kind="max"))


def linear_forward(x: Array, w: Array, b: Array | None) -> Array:
    """``x @ w.T + b``."""
    return fresh(_linear_forward(x, w, b))


def linear_backward(x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]:
    """``jax.vjp`` of the linear layer with a zero bias."""
    dx, dw, db = _linear_backward(x, w, dy)
    return fresh(dx), fresh(dw), fresh(db)


def supports(op: str, problem: dict[str, Any]) -> str | None:
    """What JAX lacks for this case, or None.

    Max pooling with dilation > 1 has no VJP (forward only); adaptive pooling exists only as global pooling.
    """
    if op == "max_pool" and problem["direction"] == "backward" and any(d > 1 for d in problem["params"]["dilation"]):
        return "JAX has no VJP for max pooling with dilation > 1"
    if op in ("adaptive_avg_pool", "adaptive_max_pool"):
        return _global_only(tuple(problem["params"]["output_size"]))
    return None


__all__ = [
    "CAPABILITIES", "supports",
    "adaptive_avg_pool_backward", "adaptive_avg_pool_forward", "adaptive_max_pool_backward",
    "adaptive_max_pool_forward", "avg_pool_backward", "avg_pool_forward", "conv_backward", "conv_forward",
    "conv_transpose_backward", "conv_transpose_forward", "linear_backward", "linear_forward",
    "max_pool_backward", "max_pool_forward",
]

"""The parameter model: normalised, validated parameters and output shapes.

Two entry points per operation:

* ``conv_params`` / ``pool_params`` turn user-friendly arguments (an int for
  every dim, ``"same"`` padding, a default stride) into the explicit
  tuples of the backend protocol;
* ``conv_output_shape`` / ``pool_output_shape`` / ``linear_output_shape``
  validate arrays and explicit parameters together, exactly as every
  reference function does before computing, and return the output shape.

Everything invalid raises :class:`spec.errors.SpecError` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import ml_dtypes  # noqa: F401  (registers bfloat16 with NumPy: np.dtype("bfloat16"))
import numpy as np

from spec.errors import SpecError
from spec.shapes import IntOrTuple, Padding, PaddingLike, normalize_tuple, output_size, resolve_padding

#: The floating dtypes the spec defines accuracy for; bfloat16 is ml_dtypes' (the type JAX and PyTorch interoperate with).
DTYPES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
#: Number of spatial dimensions an operation may have.
SPATIAL_RANKS: tuple[int, ...] = (1, 2, 3)


class ConvParams(NamedTuple):
    """Explicit convolution parameters, as the backend protocol takes them."""

    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    groups: int


class PoolParams(NamedTuple):
    """Explicit pooling parameters, as the backend protocol takes them.

    ``count_include_pad`` only matters to average pooling; pass
    ``params.max_pool_kwargs()`` to max pooling functions.
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    ceil_mode: bool
    count_include_pad: bool

    def max_pool_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``max_pool_forward`` / ``max_pool_backward``."""
        return self.max_pool()._asdict()

    def max_pool(self) -> MaxPoolParams:
        """The same window parameters as max pooling (and max-pool indices) take them."""
        return MaxPoolParams(self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class MaxPoolParams(NamedTuple):
    """Explicit max-pooling parameters (``max_pool_forward``, ``max_pool_backward``, ``max_pool_indices``)."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    ceil_mode: bool


class LinearParams(NamedTuple):
    """A linear layer has no parameters beyond its arrays: the empty call description."""


def conv_params(
    spatial_shape: Sequence[int],
    kernel_size: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
) -> ConvParams:
    """Normalise convolution arguments for an input with ``spatial_shape``.

    >>> conv_params((28, 28), (4, 4), stride=2)
    ConvParams(stride=(2, 2), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)
    >>> conv_params((6,), (4,), padding="same").padding
    ((1, 2),)
    """
    ndim = len(spatial_shape)
    strides = normalize_tuple(stride, ndim, "stride", minimum=1)
    dilations = normalize_tuple(dilation, ndim, "dilation", minimum=1)
    kernel = normalize_tuple(tuple(kernel_size), ndim, "kernel_size", minimum=1)
    pads = resolve_padding(padding, spatial_shape, kernel, strides, dilations)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise SpecError("groups", groups, "must be an int >= 1")
    return ConvParams(strides, pads, dilations, groups)


def pool_params(
    spatial_shape: Sequence[int],
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple | None = None,
    padding: PaddingLike = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> PoolParams:
    """Normalise pooling arguments; ``stride`` defaults to the kernel size.

    >>> p = pool_params((4, 4), 2)
    >>> p.kernel_size, p.stride, p.padding, p.ceil_mode, p.count_include_pad
    ((2, 2), (2, 2), ((0, 0), (0, 0)), False, True)
    """
    ndim = len(spatial_shape)
    kernel = normalize_tuple(kernel_size, ndim, "kernel_size", minimum=1)
    strides = kernel if stride is None else normalize_tuple(stride, ndim, "stride", minimum=1)
    dilations = normalize_tuple(dilation, ndim, "dilation", minimum=1)
    pads = resolve_padding(padding, spatial_shape, kernel, strides, dilations)
    ceil = check_flag(ceil_mode, "ceil_mode")
    return PoolParams(kernel, strides, pads, dilations, ceil, check_flag(count_include_pad, "count_include_pad"))


def check_flag(value: object, name: str) -> bool:
    """A bool parameter (``ceil_mode``, ``count_include_pad``); 0 and 1 are not accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise SpecError(name, value, "must be a bool")
    return bool(value)


def check_array(name: str, a: object, *, ndim: Sequence[int]) -> np.ndarray[Any, np.dtype[np.floating[Any]]]:
    """Check that ``a`` is a floating NumPy array with an allowed rank.

    >>> check_array("x", np.zeros((1, 1, 4), dtype=np.int64), ndim=(3,))
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: x.dtype=dtype('int64') is invalid: must be a floating dtype (float16, float32, float64 or bfloat16)
    """
    if not isinstance(a, np.ndarray):
        raise SpecError(f"type({name})", type(a).__name__, "must be numpy.ndarray")
    if a.ndim not in ndim:
        raise SpecError(f"{name}.ndim", a.ndim, f"must be one of {tuple(ndim)} (shape {a.shape})")
    if a.dtype.name not in DTYPES:
        raise SpecError(f"{name}.dtype", a.dtype, "must be a floating dtype (float16, float32, float64 or bfloat16)")
    return a


def _same_dtype(reference_name: str, reference: np.ndarray[Any, Any], **others: np.ndarray[Any, Any] | None) -> None:
    for name, other in others.items():
        if other is not None and other.dtype != reference.dtype:
            raise SpecError(f"{name}.dtype", other.dtype, f"must equal {reference_name}.dtype ({reference.dtype})")


def _spatial_params(
    ndim: int,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Padding,
    dilation: Sequence[int],
) -> tuple[tuple[int, ...], tuple[int, ...], Padding, tuple[int, ...]]:
    """Validate explicit (already normalised) spatial parameters: tuples, and one pair per dim for padding."""
    for name, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise SpecError(name, value, f"must be a tuple of ints, one per spatial dim ({ndim})")
    kernel = normalize_tuple(tuple(kernel_size), ndim, "kernel_size", minimum=1)
    strides = normalize_tuple(tuple(stride), ndim, "stride", minimum=1)
    dilations = normalize_tuple(tuple(dilation), ndim, "dilation", minimum=1)
    if isinstance(padding, (str, int)) or not isinstance(padding, Sequence):
        raise SpecError("padding", padding, "must be one (before, after) pair per spatial dim")
    for i, entry in enumerate(padding):
        if isinstance(entry, str) or not isinstance(entry, Sequence):
            raise SpecError(f"padding[{i}]", entry, "must be a (before, after) pair")
    pads = resolve_padding(padding, (0,) * ndim, kernel, strides, dilations)
    return kernel, strides, pads, dilations


def _spatial_output(
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Padding,
    dilations: Sequence[int],
    ceil_mode: bool,
) -> tuple[int, ...]:
    out = []
    for i, (n, k, s, p, d) in enumerate(zip(spatial, kernel, strides, pads, dilations)):
        size = output_size(n, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
        if size < 1:
            raise SpecError(
                f"output size of spatial dim {i}",
                size,
                f"must be >= 1 (input {n}, padding {p}, dilated kernel {d * (k - 1) + 1}, stride {s})",
            )
        out.append(size)
    return tuple(out)


def conv_output_shape(
    x: object,
    w: object,
    b: object,
    *,
    stride: Sequence[int],
    padding: Padding,
    dilation: Sequence[int],
    groups: int,
) -> tuple[int, ...]:
    """Validate a convolution call and return the shape of ``y``.

    x is (N, C_in, *spatial), w is (C_out, C_in / groups, *kernel), b is
    (C_out,) or None; y is (N, C_out, *out_spatial).

    >>> x = np.zeros((1, 1, 28, 28)); w = np.zeros((16, 1, 4, 4))
    >>> conv_output_shape(x, w, None, stride=(2, 2), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)
    (1, 16, 13, 13)
    >>> conv_output_shape(x, w, None, stride=(2, 2), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=2)
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: groups=2 is invalid: must divide C_in=1
    """
    xa = check_array("x", x, ndim=(3, 4, 5))
    wa = check_array("w", w, ndim=(xa.ndim,))
    ba = None if b is None else check_array("b", b, ndim=(1,))
    _same_dtype("x", xa, w=wa, b=ba)
    ndim = xa.ndim - 2
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise SpecError("groups", groups, "must be an int >= 1")
    n, c_in = xa.shape[:2]
    c_out = wa.shape[0]
    if c_in < 1:
        raise SpecError("C_in", c_in, "must be >= 1")
    if c_out < 1:
        raise SpecError("C_out (w.shape[0])", c_out, "must be >= 1")
    if c_in % groups:
        raise SpecError("groups", groups, f"must divide C_in={c_in}")
    if c_out % groups:
        raise SpecError("groups", groups, f"must divide C_out={c_out}")
    if wa.shape[1] != c_in // groups:
        raise SpecError("w.shape[1]", wa.shape[1], f"must equal C_in / groups = {c_in // groups}")
    if ba is not None and ba.shape != (c_out,):
        raise SpecError("b.shape", ba.shape, f"must be (C_out,) = ({c_out},)")
    kernel = tuple(int(k) for k in wa.shape[2:])
    if min(kernel) < 1:
        raise SpecError("w.shape", wa.shape, "kernel sizes must be >= 1")
    _, strides, pads, dilations = _spatial_params(ndim, kernel, stride, padding, dilation)
    return (n, c_out, *_spatial_output(xa.shape[2:], kernel, strides, pads, dilations, False))


def pool_output_shape(
    x: object,
    *,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Padding,
    dilation: Sequence[int],
    ceil_mode: bool,
) -> tuple[int, ...]:
    """Validate a pooling call and return the shape of ``y``: (N, C, *out_spatial).

    >>> x = np.zeros((2, 3, 5))
    >>> pool_output_shape(x, kernel_size=(2,), stride=(2,), padding=((0, 0),), dilation=(1,), ceil_mode=True)
    (2, 3, 3)
    """
    xa = check_array("x", x, ndim=(3, 4, 5))
    check_flag(ceil_mode, "ceil_mode")
    if xa.shape[1] < 1:
        raise SpecError("C", xa.shape[1], "must be >= 1")
    kernel, strides, pads, dilations = _spatial_params(xa.ndim - 2, kernel_size, stride, padding, dilation)
    return (*xa.shape[:2], *_spatial_output(xa.shape[2:], kernel, strides, pads, dilations, ceil_mode))


def linear_output_shape(x: object, w: object, b: object) -> tuple[int, ...]:
    """Validate a linear call and return the shape of ``y``: (N, out).

    x is (N, in), w is (out, in) and y = x @ w.T + b.

    >>> linear_output_shape(np.zeros((4, 784)), np.zeros((100, 784)), np.zeros(100))
    (4, 100)
    >>> linear_output_shape(np.zeros((4, 784)), np.zeros((784, 100)), None)
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: w.shape[1]=100 is invalid: must equal in_features = x.shape[1] = 784
    """
    xa = check_array("x", x, ndim=(2,))
    wa = check_array("w", w, ndim=(2,))
    ba = None if b is None else check_array("b", b, ndim=(1,))
    _same_dtype("x", xa, w=wa, b=ba)
    if xa.shape[1] < 1:
        raise SpecError("x.shape[1]", xa.shape[1], "must be >= 1 (in_features)")
    if wa.shape[0] < 1:
        raise SpecError("w.shape[0]", wa.shape[0], "must be >= 1 (out_features)")
    if wa.shape[1] != xa.shape[1]:
        raise SpecError("w.shape[1]", wa.shape[1], f"must equal in_features = x.shape[1] = {xa.shape[1]}")
    if ba is not None and ba.shape != (wa.shape[0],):
        raise SpecError("b.shape", ba.shape, f"must be (out_features,) = ({wa.shape[0]},)")
    return (xa.shape[0], wa.shape[0])


def check_dy(dy: object, expected_shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray[Any, np.dtype[np.floating[Any]]]:
    """Check that the upstream gradient has the forward output's shape and dtype.

    >>> check_dy(np.zeros((1, 2)), (1, 3), np.dtype("float64"))
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: dy.shape=(1, 2) is invalid: must equal the forward output shape (1, 3)
    """
    dya = check_array("dy", dy, ndim=(len(expected_shape),))
    if dya.shape != expected_shape:
        raise SpecError("dy.shape", dya.shape, f"must equal the forward output shape {expected_shape}")
    if dya.dtype != dtype:
        raise SpecError("dy.dtype", dya.dtype, f"must equal x.dtype ({dtype})")
    return dya

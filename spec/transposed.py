"""Transposed convolution: output sizes, parameters and their validation.

A transposed convolution is the adjoint (the transpose) of a convolution with
respect to its input. Input element ``i`` of ``x`` scatters ``x[i] * w[j]`` to
output position ``o = i * s + j * d - p_before`` (per spatial dim); positions
``o`` outside ``[0, out)`` are dropped. Along one spatial dimension::

    out = (n - 1) * s - p_before - p_after + d * (k - 1) + output_padding + 1

The convolution with the same kernel, stride, padding and dilation maps every
length in ``[out - output_padding, out - output_padding + s - 1]`` back to ``n``
positions: for stride > 1 the transposed convolution's output size is
ambiguous, and ``output_padding`` (``0 <= output_padding < max(s, d)``) says which
one is meant, adding positions at the end. PyTorch's ``output_size`` and ONNX's
``output_shape`` are resolved to it by :func:`conv_transpose_output_padding` and
:func:`onnx_conv_transpose_padding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple, TypeAlias

from spec.errors import SpecError
from spec.params import ConvParams, _same_dtype, _spatial_params, check_array
from spec.shapes import IntOrTuple, Padding, PaddingLike, PadPair, normalize_tuple, resolve_padding

OnnxAutoPad: TypeAlias = Literal["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]


class ConvTransposeParams(NamedTuple):
    """Explicit transposed-convolution parameters, as ``conv_transpose_forward`` takes them."""

    stride: tuple[int, ...]
    padding: Padding
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    def conv_params(self) -> ConvParams:
        """The convolution this one is the adjoint of: the same weight, stride, padding, dilation and groups.

        >>> ConvTransposeParams((2,), ((1, 1),), (1,), (1,), 1).conv_params()
        ConvParams(stride=(2,), padding=((1, 1),), dilation=(1,), groups=1)
        """
        return ConvParams(self.stride, self.padding, self.dilation, self.groups)


def conv_transpose_output_size(
    n: int, k: int, *, stride: int = 1, padding: PadPair = (0, 0), dilation: int = 1, output_padding: int = 0,
) -> int:
    """Output positions of a transposed convolution along one spatial dim (may be < 1: callers reject it).

    ``(n - 1) * s - p_before - p_after + d * (k - 1) + output_padding + 1``.

    A U-Net decoder doubling 28 to 56 with a 2x2 kernel of stride 2, and the
    3x3, stride 2, padding 1 layer that needs ``output_padding=1`` to do the same:

    >>> conv_transpose_output_size(28, 2, stride=2)
    56
    >>> conv_transpose_output_size(28, 3, stride=2, padding=(1, 1)), conv_transpose_output_size(
    ...     28, 3, stride=2, padding=(1, 1), output_padding=1)
    (55, 56)

    It inverts the convolution's output size: a stride-2 convolution maps both 55
    and 56 positions to 28, so the transposed one must be told which it is.

    >>> from spec.shapes import output_size
    >>> output_size(55, 3, stride=2, padding=(1, 1)), output_size(56, 3, stride=2, padding=(1, 1))
    (28, 28)
    """
    return (n - 1) * stride - padding[0] - padding[1] + dilation * (k - 1) + output_padding + 1


def conv_transpose_output_padding(
    n: int, k: int, target: int, *, stride: int = 1, padding: PadPair = (0, 0), dilation: int = 1,
) -> int:
    """The ``output_padding`` that makes the output ``target`` long (PyTorch's ``output_size`` argument).

    ``target - conv_transpose_output_size(n, k, ...)``, which must lie in ``[0, max(s, d))``.

    >>> conv_transpose_output_padding(28, 3, 56, stride=2, padding=(1, 1))
    1
    >>> conv_transpose_output_padding(28, 3, 57, stride=2, padding=(1, 1))
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: output_size=57 is invalid: must be in [55, 56] for n=28, k=3, stride 2, padding (1, 1), dilation 1
    """
    smallest = conv_transpose_output_size(n, k, stride=stride, padding=padding, dilation=dilation)
    largest = smallest + max(stride, dilation) - 1
    if not smallest <= target <= largest:
        raise SpecError(
            "output_size", target,
            f"must be in [{smallest}, {largest}] for n={n}, k={k}, stride {stride}, padding {padding}, dilation {dilation}",
        )
    return target - smallest


def onnx_conv_transpose_padding(
    n: int, k: int, *, stride: int = 1, dilation: int = 1, output_padding: int = 0,
    output_shape: int | None = None, auto_pad: OnnxAutoPad = "NOTSET", pads: PadPair = (0, 0),
) -> tuple[PadPair, int]:
    """Map one dim of an ONNX ``ConvTranspose`` onto ``(padding, output_padding)`` of the protocol.

    ONNX gives either ``pads`` or, through ``output_shape`` or ``auto_pad`` =
    ``SAME_UPPER`` / ``SAME_LOWER`` (whose output is ``n * s``), a total padding
    ``total = s * (n - 1) + output_padding + d * (k - 1) + 1 - out``, split as
    ``(total // 2, total - total // 2)`` for ``SAME_UPPER`` and the other way
    round otherwise. A negative total asks for *more* output than the full
    scatter; its positions go at the end, i.e. become ``output_padding`` (what
    ONNX's reference evaluator computes; they must then still be < max(s, d)).

    >>> onnx_conv_transpose_padding(3, 3, stride=3, output_shape=10)   # ONNX test_convtranspose_output_shape
    ((0, 0), 1)
    >>> onnx_conv_transpose_padding(3, 3, stride=2, auto_pad="SAME_UPPER")   # out = 6: total 1
    ((0, 1), 0)
    >>> onnx_conv_transpose_padding(3, 3, stride=2, auto_pad="SAME_LOWER")
    ((1, 0), 0)
    >>> onnx_conv_transpose_padding(3, 3, stride=3, pads=(1, 2))
    ((1, 2), 0)
    """
    if output_shape is None and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return (pads, output_padding)
    out = n * stride if output_shape is None else output_shape
    total = stride * (n - 1) + output_padding + dilation * (k - 1) + 1 - out
    if total < 0:
        return ((0, 0), output_padding - total)
    small, large = total // 2, total - total // 2
    return ((small, large) if auto_pad == "SAME_UPPER" else (large, small)), output_padding


def conv_transpose_params(
    spatial_shape: Sequence[int],
    kernel_size: Sequence[int],
    *,
    stride: IntOrTuple = 1,
    padding: PaddingLike = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    output_size: Sequence[int] | None = None,
) -> ConvTransposeParams:
    """Normalise transposed-convolution arguments for an input with ``spatial_shape``.

    ``output_size`` (one int per dim, PyTorch's argument) replaces
    ``output_padding``. Padding modes (``"same"``) are not defined here: give
    ``output_size`` instead.

    >>> conv_transpose_params((28, 28), (3, 3), stride=2, padding=1, output_size=(56, 55))
    ConvTransposeParams(stride=(2, 2), padding=((1, 1), (1, 1)), output_padding=(1, 0), dilation=(1, 1), groups=1)
    """
    ndim = len(spatial_shape)
    strides = normalize_tuple(stride, ndim, "stride", minimum=1)
    dilations = normalize_tuple(dilation, ndim, "dilation", minimum=1)
    kernel = normalize_tuple(tuple(kernel_size), ndim, "kernel_size", minimum=1)
    if isinstance(padding, str):
        raise SpecError("padding", padding, "must be ints or (before, after) pairs: modes are not defined for "
                        "transposed convolution (give output_size)")
    pads = resolve_padding(padding, spatial_shape, kernel, strides, dilations)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise SpecError("groups", groups, "must be an int >= 1")
    if output_size is None:
        extra = normalize_tuple(output_padding, ndim, "output_padding", minimum=0)
    else:
        sizes = normalize_tuple(tuple(output_size), ndim, "output_size", minimum=1)
        extra = tuple(
            conv_transpose_output_padding(n, k, t, stride=s, padding=p, dilation=d)
            for n, k, t, s, p, d in zip(spatial_shape, kernel, sizes, strides, pads, dilations)
        )
    return ConvTransposeParams(strides, pads, extra, dilations, groups)


def conv_transpose_output_shape(
    x: object,
    w: object,
    b: object,
    *,
    stride: Sequence[int],
    padding: Padding,
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> tuple[int, ...]:
    """Validate a transposed-convolution call and return the shape of ``y``.

    x is (N, C_in, *S), w is (C_in, C_out / groups, *K) (PyTorch's and ONNX's
    layout: the weight of the convolution it transposes), b is (C_out,) or None;
    y is (N, C_out, *S_out).

    >>> import numpy as np
    >>> x = np.zeros((1, 4, 3, 3)); w = np.zeros((4, 1, 3, 3))
    >>> conv_transpose_output_shape(x, w, None, stride=(2, 2), padding=((1, 1), (1, 1)), output_padding=(1, 0),
    ...                             dilation=(1, 1), groups=2)
    (1, 2, 6, 5)
    >>> conv_transpose_output_shape(x, w, None, stride=(2, 2), padding=((1, 1), (1, 1)), output_padding=(2, 0),
    ...                             dilation=(1, 1), groups=2)
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: output_padding[0]=2 is invalid: must be < max(stride, dilation) = 2
    """
    xa = check_array("x", x, ndim=(3, 4, 5))
    wa = check_array("w", w, ndim=(xa.ndim,))
    ba = None if b is None else check_array("b", b, ndim=(1,))
    _same_dtype("x", xa, w=wa, b=ba)
    ndim = xa.ndim - 2
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise SpecError("groups", groups, "must be an int >= 1")
    n, c_in = xa.shape[:2]
    if c_in < 1:
        raise SpecError("C_in", c_in, "must be >= 1")
    if c_in % groups:
        raise SpecError("groups", groups, f"must divide C_in={c_in}")
    if wa.shape[0] != c_in:
        raise SpecError("w.shape[0]", wa.shape[0], f"must equal C_in = x.shape[1] = {c_in}")
    if wa.shape[1] < 1:
        raise SpecError("w.shape[1]", wa.shape[1], "must be >= 1 (C_out / groups)")
    c_out = wa.shape[1] * groups
    if ba is not None and ba.shape != (c_out,):
        raise SpecError("b.shape", ba.shape, f"must be (C_out,) = ({c_out},)")
    kernel = tuple(int(k) for k in wa.shape[2:])
    if min(kernel) < 1:
        raise SpecError("w.shape", wa.shape, "kernel sizes must be >= 1")
    for i, size in enumerate(xa.shape[2:]):
        if size < 1:
            raise SpecError(f"x.shape[{i + 2}]", size, "must be >= 1")
    _, strides, pads, dilations = _spatial_params(ndim, kernel, stride, padding, dilation)
    if isinstance(output_padding, str) or not isinstance(output_padding, Sequence):
        raise SpecError("output_padding", output_padding, f"must be a tuple of ints, one per spatial dim ({ndim})")
    extra = normalize_tuple(tuple(output_padding), ndim, "output_padding", minimum=0)
    out = []
    for i, (size, k, s, p, d, e) in enumerate(zip(xa.shape[2:], kernel, strides, pads, dilations, extra)):
        if e >= max(s, d):
            raise SpecError(f"output_padding[{i}]", e, f"must be < max(stride, dilation) = {max(s, d)}")
        length = conv_transpose_output_size(size, k, stride=s, padding=p, dilation=d, output_padding=e)
        if length < 1:
            raise SpecError(
                f"output size of spatial dim {i}", length,
                f"must be >= 1 (input {size}, padding {p}, dilated kernel {d * (k - 1) + 1}, stride {s})",
            )
        out.append(length)
    return (n, c_out, *out)

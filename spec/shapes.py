"""Output-size arithmetic and padding resolution: small pure functions.

All spatial parameters are normalised to one entry per spatial dimension:
``stride``, ``dilation`` and ``kernel_size`` become ``tuple[int, ...]`` and
padding becomes a tuple of explicit ``(before, after)`` pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

from spec.errors import SpecError

PadPair: TypeAlias = tuple[int, int]
Padding: TypeAlias = tuple[PadPair, ...]
PaddingMode: TypeAlias = Literal["valid", "same", "same_lower"]
PaddingLike: TypeAlias = int | Sequence[int] | Sequence[PadPair] | PaddingMode
IntOrTuple: TypeAlias = int | Sequence[int]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def normalize_tuple(value: IntOrTuple, ndim: int, name: str, *, minimum: int) -> tuple[int, ...]:
    """Expand an int or a sequence of ints to one int per spatial dimension.

    >>> normalize_tuple(2, 3, "stride", minimum=1)
    (2, 2, 2)
    >>> normalize_tuple((1, 2), 2, "dilation", minimum=1)
    (1, 2)
    >>> normalize_tuple((1, 0), 2, "stride", minimum=1)
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: stride[1]=0 is invalid: must be >= 1
    """
    if _is_int(value):
        items: tuple[object, ...] = (value,) * ndim
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = tuple(value)
        if len(items) != ndim:
            raise SpecError(name, value, f"must have one entry per spatial dim ({ndim})")
    else:
        raise SpecError(name, value, "must be an int or a sequence of ints")
    out: list[int] = []
    for i, item in enumerate(items):
        label = name if _is_int(value) else f"{name}[{i}]"
        if not isinstance(item, int) or isinstance(item, bool):
            raise SpecError(label, item, "must be an int")
        if item < minimum:
            raise SpecError(label, item, f"must be >= {minimum}")
        out.append(item)
    return tuple(out)


def same_padding(n: int, k: int, *, stride: int = 1, dilation: int = 1, lower: bool = False) -> PadPair:
    """The ``(before, after)`` padding that makes ``output_size == ceil(n / stride)``.

    total = max(0, (ceil(n / s) - 1) * s + d * (k - 1) + 1 - n). An odd total puts
    the extra element at the end (``"same"``, as TensorFlow and ONNX SAME_UPPER)
    or at the beginning (``lower=True``: ``"same_lower"``, as ONNX SAME_LOWER).

    >>> same_padding(5, 3)
    (1, 1)
    >>> same_padding(6, 4, stride=1)
    (1, 2)
    >>> same_padding(6, 4, stride=1, lower=True)
    (2, 1)
    >>> same_padding(7, 3, stride=2)   # out = 4: (4 - 1) * 2 + 3 - 7 = 2
    (1, 1)
    """
    out = -(-n // stride)
    total = max(0, (out - 1) * stride + dilation * (k - 1) + 1 - n)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def resolve_padding(
    padding: PaddingLike,
    spatial: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> Padding:
    """Turn any accepted padding form into explicit ``(before, after)`` pairs.

    Accepted: an int (all sides), one int per spatial dim (both sides of it),
    one ``(before, after)`` pair per dim, ``"valid"`` (no padding), ``"same"``
    or ``"same_lower"`` (see :func:`same_padding`). Negative padding is an error.

    >>> resolve_padding(1, (5, 5), (3, 3), (1, 1), (1, 1))
    ((1, 1), (1, 1))
    >>> resolve_padding([(0, 1), (2, 0)], (5, 5), (3, 3), (1, 1), (1, 1))
    ((0, 1), (2, 0))
    >>> resolve_padding("same", (6,), (4,), (1,), (1,))
    ((1, 2),)
    >>> resolve_padding(-1, (5,), (3,), (1,), (1,))
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: padding=-1 is invalid: must be >= 0
    """
    ndim = len(spatial)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding in ("same", "same_lower"):
            return tuple(
                same_padding(n, k, stride=s, dilation=d, lower=padding == "same_lower")
                for n, k, s, d in zip(spatial, kernel_size, stride, dilation)
            )
        raise SpecError("padding", padding, "must be 'valid', 'same' or 'same_lower'")
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise SpecError("padding", padding, "must be >= 0")
        return ((padding, padding),) * ndim
    if not isinstance(padding, Sequence) or len(padding) != ndim:
        raise SpecError("padding", padding, f"must be an int, a mode or one entry per spatial dim ({ndim})")
    pairs: list[PadPair] = []
    for i, entry in enumerate(padding):
        if isinstance(entry, int) and not isinstance(entry, bool):
            if entry < 0:
                raise SpecError(f"padding[{i}]", entry, "must be >= 0")
            pairs.append((entry, entry))
        elif isinstance(entry, Sequence) and len(entry) == 2:
            before, after = normalize_tuple(tuple(entry), 2, f"padding[{i}]", minimum=0)
            pairs.append((before, after))
        else:
            raise SpecError(f"padding[{i}]", entry, "must be an int or a (before, after) pair")
    return tuple(pairs)


def output_size(
    n: int,
    k: int,
    *,
    stride: int = 1,
    padding: PadPair = (0, 0),
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Number of window positions along one spatial dimension.

    ``floor((n + p_before + p_after - d * (k - 1) - 1) / s) + 1``; for d = 1 and
    symmetric padding p this is the textbook ``(n - k + 2p) / s + 1``.

    With ``ceil_mode`` the division rounds up, and that extra last window is
    dropped if it would start at or beyond ``n + p_before`` (inside the
    after-padding or past it). Ceil mode never gives fewer windows than floor
    mode: the drop applies only to the window rounding up added. (Within
    PyTorch's padding limit, ``k // 2``, this is PyTorch's rule.)
    The result may be < 1; callers validating parameters reject that.

    The worked example: a 28x28 image, 16 filters of 4x4, stride 2, no padding
    gives (28 - 4 + 0) / 2 + 1 = 13, so a 16 x 13 x 13 output:

    >>> output_size(28, 4, stride=2)
    13
    >>> 16 * 4 * 4                                   # weights in the conv layer
    256
    >>> 16 * 13 * 13                                 # features after flattening
    2704
    >>> 16 * 4 * 4 + 16 * 13 * 13 * 10               # + a 2704 -> 10 linear layer
    27296
    >>> 28 * 28 * 100 + 100 * 10                     # the 784 -> 100 -> 10 MLP
    79400

    Ceil mode (PyTorch's rule):

    >>> output_size(5, 2, stride=2), output_size(5, 2, stride=2, ceil_mode=True)
    (2, 3)
    >>> output_size(5, 2, stride=2, padding=(1, 1), ceil_mode=True)  # a 4th window would start at n + p_before = 6
    3
    >>> output_size(1, 1, stride=2, padding=(0, 4), ceil_mode=True)  # never fewer than floor mode's 3
    3
    >>> output_size(1, 2, stride=2), output_size(1, 2, stride=2, ceil_mode=True)  # a partial first window
    (0, 1)
    """
    span = n + padding[0] + padding[1] - dilation * (k - 1) - 1
    floor_out = span // stride + 1  # floor division: <= 0 when the kernel does not fit
    if not ceil_mode:
        return max(floor_out, 0)
    # Ceil mode: every start < span + stride, i.e. windows that would fit were the padded
    # input less than one stride longer; the one extra window is dropped if it starts at or
    # beyond n + p_before.
    out = -(-span // stride) + 1
    if out > floor_out and (out - 1) * stride >= n + padding[0]:
        out -= 1
    return max(out, 0)


#: What a backend's ``Capabilities.pool_padding`` promises about pooling padding (see :func:`pool_padding_limit`).
PoolPaddingKind: TypeAlias = Literal["any", "half_kernel"]
POOL_PADDING_KINDS: tuple[PoolPaddingKind, ...] = ("any", "half_kernel")


def pool_padding_limit(kind: PoolPaddingKind, kernel: int, dilation: int) -> int | None:
    """The largest pooling padding (``before`` or ``after``) along one dimension a backend of this kind is given.

    ``"any"``: no limit (None). ``"half_kernel"``: ``kernel // 2``, the dilation **not** counted. That is the
    limit PyTorch 2.13 really enforces: its binding first checks half the *effective* kernel,
    ``(dilation * (kernel - 1) + 1) // 2``, then its pooling kernels check half the kernel itself, which is
    never more (``dilation * (kernel - 1) + 1 >= kernel``). It lies within ONNX Runtime's limit too (every pad
    smaller than the undilated kernel). ``dilation`` is taken so that no caller has to decide whether it counts.

    >>> pool_padding_limit("half_kernel", 3, 2)  # the dilated kernel spans 5; PyTorch still rejects padding 2
    1
    >>> pool_padding_limit("any", 3, 2) is None
    True
    """
    if kind == "any":
        return None
    if kind == "half_kernel":
        return kernel // 2
    raise SpecError("pool_padding", kind, f"must be one of {', '.join(map(repr, POOL_PADDING_KINDS))}")


def pool_padding_allowed(kind: PoolPaddingKind, kernel: int, dilation: int, before: int, after: int) -> bool:
    """Whether a backend declaring ``Capabilities(pool_padding=kind)`` accepts this padding along one dimension.

    The one definition every capability filter uses (generation, rules, adapters' ``supports``, bench):

    >>> pool_padding_allowed("half_kernel", 3, 2, 1, 1), pool_padding_allowed("half_kernel", 3, 2, 2, 0)
    (True, False)
    >>> pool_padding_allowed("any", 3, 2, 2, 0)
    True
    """
    limit = pool_padding_limit(kind, kernel, dilation)
    return limit is None or max(before, after) <= limit

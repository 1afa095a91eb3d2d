"""Parameter translation shared by the framework adapters: pure functions, no framework imports.

The protocol passes explicit ``(before, after)`` padding per spatial dim and a
``ceil_mode`` flag; frameworks take symmetric padding, a ``"SAME"`` mode, or
nothing at all. These helpers compute what an adapter hands its framework so
that the framework computes exactly the protocol's operation. None of them
validates: an invalid value (a negative padding, a zero stride) is passed on
for the framework to reject or accept, and arithmetic that would divide by an
invalid stride is skipped instead of raising an unrelated Python error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

import spec
from spec import Padding


class SplitPadding(NamedTuple):
    """Padding split into a symmetric part a framework takes natively and an explicit remainder."""

    #: ``min(before, after)`` per dim: the framework's own symmetric padding.
    native: tuple[int, ...]
    #: ``(before - native, after - native)`` per dim, never negative: padded explicitly.
    extra: Padding


def as_padding(padding: Sequence[Sequence[int]]) -> Padding:
    """The protocol's padding as a hashable tuple of pairs (lists are accepted, values untouched).

    >>> as_padding([[1, 2], (0, 0)])
    ((1, 2), (0, 0))
    """
    return tuple((pair[0], pair[1]) for pair in padding)


def split_padding(padding: Padding) -> SplitPadding:
    """Split each ``(before, after)`` into a symmetric native part and a non-negative remainder.

    A negative entry stays in the native part, so the framework sees (and rejects) it.

    >>> split_padding(((1, 3), (2, 0), (1, 1)))
    SplitPadding(native=(1, 0, 1), extra=((0, 2), (2, 0), (0, 0)))
    >>> split_padding(((-1, 2),)).native
    (-1,)
    """
    native = tuple(min(lo, hi) for lo, hi in padding)
    extra = tuple((lo - p, hi - p) for (lo, hi), p in zip(padding, native))
    return SplitPadding(native, extra)


def crop_slices(extra: Padding) -> tuple[slice, ...]:
    """Index of an (N, C, *S) array that removes ``extra[i] = (before, after)`` positions from spatial dim ``i``.

    A transposed convolution's padding *removes* output positions, so padding a
    framework cannot take natively (asymmetric, or beyond its own limits) is
    applied by cropping its output.

    >>> crop_slices(((0, 2), (1, 0)))
    (slice(None, None, None), slice(None, None, None), slice(0, -2, None), slice(1, None, None))
    """
    return (slice(None), slice(None), *(slice(lo, -hi if hi else None) for lo, hi in extra))


def unpadded_plane_indices(indices: NDArray[np.int64], padded: Sequence[int], before: Sequence[int],
                           spatial: Sequence[int]) -> NDArray[np.int64]:
    """Flat in-plane indices into an input padded by ``before`` positions, re-counted in the unpadded plane.

    A framework that was given an explicitly padded input reports positions in
    that larger plane. Positions inside it move back by ``before`` per dim; one
    in the explicit padding becomes -1 (the framework picked a padding element:
    a window without a real element); an index outside the padded plane is the
    framework's own and is returned unchanged.

    >>> unpadded_plane_indices(np.array([0, 5, 7, 99]), (2, 4), (0, 1), (2, 3))   # (1, 1) -> (1, 0)
    array([-1,  3,  5, 99])
    """
    if not any(before) and tuple(padded) == tuple(spatial):
        return indices
    size = int(np.prod(padded, dtype=np.int64))
    inside = (indices >= 0) & (indices < size)
    coords = np.unravel_index(np.where(inside, indices, 0), tuple(padded))
    shifted = [c - b for c, b in zip(coords, before)]
    in_plane = np.all([(c >= 0) & (c < n) for c, n in zip(shifted, spatial)], axis=0)
    flat = np.ravel_multi_index([np.clip(c, 0, n - 1) for c, n in zip(shifted, spatial)], tuple(spatial))
    converted: NDArray[np.int64] = np.where(inside, np.where(in_plane, flat, -1), indices).astype(np.int64)
    return converted


def has_empty_window(
    spatial: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int], padding: Padding,
    dilation: Sequence[int], ceil_mode: bool,
) -> bool:
    """Whether some pooling window reads only padding (or the ceil-mode overhang): no real element.

    >>> has_empty_window((1,), (2,), (1,), ((1, 1),), (2,), False)   # reads positions -1 and 1 of a 1-element input
    True
    >>> has_empty_window((5,), (2,), (2,), ((1, 1),), (1,), True)
    False
    """
    for n, k, s, (lo, hi), d in zip(spatial, kernel_size, stride, padding, dilation):
        if min(n, k, s, d) < 1 or min(lo, hi) < 0:
            continue
        size = spec.output_size(n, k, stride=s, padding=(lo, hi), dilation=d, ceil_mode=ceil_mode)
        for i in range(max(size, 0)):
            if all(not 0 <= i * s + j * d - lo < n for j in range(k)):
                return True
    return False


def check_transpose_params(padding: Padding, output_padding: Sequence[int], stride: Sequence[int],
                           dilation: Sequence[int], framework: str) -> None:
    """Reject negative padding and ``output_padding`` outside ``[0, max(s, d))`` for a framework without them.

    JAX and TensorFlow have no transposed-convolution padding or output_padding of
    the protocol's kind: the adapters express them as the padding of another
    convolution, a crop or an output shape, which accept values the protocol
    forbids. Without this check the suite would report the adapter's translation
    as the framework's acceptance. Invalid strides and dilations are left for the
    framework to reject.

    >>> check_transpose_params(((1, 0),), (1,), (2,), (1,), "JAX")
    >>> check_transpose_params(((1, 0),), (2,), (2,), (1,), "JAX")
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: output_padding[0]=2 is invalid: must be in [0, max(stride, dilation)) = [0, 2) (JAX has no ...
    >>> check_transpose_params(((0, -1),), (0,), (1,), (1,), "TensorFlow")
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: padding[0]=(0, -1) is invalid: must not be negative (TensorFlow's transposed ...
    """
    for i, (lo, hi) in enumerate(padding):
        if min(lo, hi) < 0:
            raise spec.SpecError(f"padding[{i}]", (lo, hi), f"must not be negative ({framework}'s transposed "
                                 "convolution has no such padding: the adapter checks it)")
    for i, (e, s, d) in enumerate(zip(output_padding, stride, dilation)):
        if min(s, d) >= 1 and not 0 <= e < max(s, d):
            raise spec.SpecError(f"output_padding[{i}]", e, f"must be in [0, max(stride, dilation)) = [0, {max(s, d)}) "
                                 f"({framework} has no output_padding: the adapter checks it)")


def check_global_call(x: Any, output_size: Sequence[int], framework: str, reason: str | None) -> None:
    """Check an adaptive-pooling call that the adapter runs as global pooling (a reduction over the spatial axes).

    The framework sees neither the protocol's rank nor ``output_size``, so the
    adapter rejects what the protocol forbids there (naming the parameter) and
    declines, with ``reason``, a valid output size other than 1.

    >>> import numpy as np
    >>> check_global_call(np.zeros((1, 2, 5)), (1,), "JAX", None)
    >>> check_global_call(np.zeros((1, 2, 5)), (1, 1), "JAX", None)
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: output_size=(1, 1) is invalid: must have one int >= 1 per spatial dim (1) (JAX's global ...
    """
    ndim = len(x.shape) - 2
    if ndim not in (1, 2, 3):
        raise spec.SpecError("x.ndim", len(x.shape), "must be 3, 4 or 5 (N, C and 1 to 3 spatial dims)")
    sizes = tuple(output_size)
    if len(sizes) != ndim or any(isinstance(o, bool) or not isinstance(o, int) or o < 1 for o in sizes):
        raise spec.SpecError("output_size", sizes, f"must have one int >= 1 per spatial dim ({ndim}) ({framework}'s "
                             "global pooling has no output_size: the adapter checks it)")
    if reason is not None:
        raise spec.UnsupportedError(reason)


def is_symmetric(padding: Padding) -> bool:
    """True when every dim pads the same amount before and after."""
    return all(lo == hi for lo, hi in padding)


def matches_same(
    padding: Padding, spatial: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
    dilation: Sequence[int], *, lower: bool = False,
) -> bool:
    """True when ``padding`` is exactly what ``"same"`` (or ``"same_lower"``) resolves to, and not all zero.

    >>> matches_same(((1, 2),), (6,), (4,), (1,), (1,))
    True
    >>> matches_same(((2, 1),), (6,), (4,), (1,), (1,), lower=True)
    True
    >>> matches_same(((0, 0),), (5,), (1,), (1,), (1,))   # all zero: that is "valid"
    False
    """
    if len(padding) != len(spatial) or all(lo == 0 and hi == 0 for lo, hi in padding):
        return False
    if min((*stride, *dilation, *kernel_size), default=1) < 1:
        return False
    wanted = tuple(
        spec.same_padding(n, k, stride=s, dilation=d, lower=lower)
        for n, k, s, d in zip(spatial, kernel_size, stride, dilation)
    )
    return tuple(padding) == wanted


def ceil_overhang(
    spatial: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int], padding: Padding,
    dilation: Sequence[int], ceil_mode: bool,
) -> tuple[int, ...]:
    """Per dim, how far ceil mode's last window reaches past the padded input (0 without ceil mode).

    A framework without ceil mode gets this much extra padding after the input,
    which the adapter fills so that it never counts: -inf for max pooling, and
    excluded from the divisor for average pooling. Invalid parameters give 0.

    >>> ceil_overhang((5,), (2,), (2,), ((0, 0),), (1,), True)   # windows at 0, 2, 4: the last reads index 5
    (1,)
    >>> ceil_overhang((4,), (2,), (2,), ((1, 1),), (1,), True)   # a 4th window would start in the padding
    (0,)
    """
    if not ceil_mode:
        return (0,) * len(spatial)
    out: list[int] = []
    for n, k, s, (lo, hi), d in zip(spatial, kernel_size, stride, padding, dilation):
        if s < 1 or d < 1 or k < 1 or lo < 0 or hi < 0:
            out.append(0)
            continue
        size = spec.output_size(n, k, stride=s, padding=(lo, hi), dilation=d, ceil_mode=True)
        reach = (size - 1) * s + d * (k - 1) + 1
        out.append(max(0, reach - (n + lo + hi)))
    return tuple(out)


def spec_pool_slices(
    spatial: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int], padding: Padding,
    dilation: Sequence[int], ceil_mode: bool,
) -> tuple[slice, ...]:
    """Index that keeps the spec's ceil-mode windows of a pooled (N, C, *out) array.

    Ceil mode drops its extra last window if that would start at or beyond
    ``n + before`` (see :func:`spec.output_size`). A framework that sees (part
    of) the after-padding as input, or that has no ceil mode and is given the
    overhang as padding, keeps such a window; this index removes it. Without ceil mode (or with invalid parameters) it keeps
    everything.

    >>> spec_pool_slices((4,), (2,), (2,), ((0, 1),), (1,), True)   # a 3rd window would start at n + 0
    (slice(None, None, None), slice(None, None, None), slice(0, 2, None))
    """
    keep = [slice(None), slice(None)]
    for n, k, s, (lo, hi), d in zip(spatial, kernel_size, stride, padding, dilation):
        if not ceil_mode or min(k, s, d) < 1 or min(lo, hi) < 0:
            keep.append(slice(None))
        else:
            keep.append(slice(0, spec.output_size(n, k, stride=s, padding=(lo, hi), dilation=d, ceil_mode=True)))
    return tuple(keep)


@contextmanager
def framework_limits(framework: str) -> Iterator[None]:
    """Turn the framework's own ``NotImplementedError`` ("no kernel for this case") into
    :class:`spec.UnsupportedError`, so that the suite counts the case as not covered."""
    try:
        yield
    except spec.UnsupportedError:
        raise
    except NotImplementedError as exc:
        raise spec.UnsupportedError(f"{framework} does not implement this case: {exc}") from exc


def fresh(a: Any) -> NDArray[Any]:
    """A new C-contiguous NumPy array holding ``a``, never a view of a framework buffer.

    The dtype is the framework's own: an adapter does not cast, so a framework
    returning the wrong dtype is reported, not hidden.
    """
    return np.array(a, copy=True, order="C")

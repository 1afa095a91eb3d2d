"""Adaptive (and global) pooling: the window rule, and the validation of a call.

Adaptive pooling fixes the *output* size ``o`` per spatial dim and derives the
windows from it, as PyTorch does: along a dim of ``n`` input positions, output
``i`` pools input positions ``[start, end)`` with::

    start = floor(i * n / o)        end = ceil((i + 1) * n / o)

Every window is non-empty and inside the input (no padding). Windows may
differ in length and may overlap; for ``o > n`` they overlap and input
positions repeat (each output still pools 1 or 2 inputs). Global pooling is
adaptive pooling with output size 1: one window of the whole input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from spec.errors import SpecError
from spec.params import check_array
from spec.shapes import normalize_tuple


class AdaptivePoolParams(NamedTuple):
    """Explicit adaptive-pooling parameters: the output size, one int per spatial dim (all 1: global pooling)."""

    output_size: tuple[int, ...]


def adaptive_windows(n: int, o: int) -> tuple[tuple[int, int], ...]:
    """The ``(start, end)`` of each of the ``o`` windows over ``n`` positions.

    >>> adaptive_windows(10, 4)     # lengths 3, 3, 3, 3: neighbours share an element
    ((0, 3), (2, 5), (5, 8), (7, 10))
    >>> adaptive_windows(7, 7)      # o = n: the identity
    ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7))
    >>> adaptive_windows(2, 3)      # o > n: the middle output pools both inputs
    ((0, 1), (0, 2), (1, 2))
    >>> adaptive_windows(7, 1)      # global pooling
    ((0, 7),)
    """
    return tuple((i * n // o, -(-(i + 1) * n // o)) for i in range(o))


def adaptive_pool_output_shape(x: object, *, output_size: Sequence[int]) -> tuple[int, ...]:
    """Validate an adaptive pooling call and return the shape of ``y``: (N, C, *output_size).

    >>> import numpy as np
    >>> adaptive_pool_output_shape(np.zeros((8, 2048, 7, 7)), output_size=(1, 1))   # a ResNet head
    (8, 2048, 1, 1)
    >>> adaptive_pool_output_shape(np.zeros((1, 3, 5)), output_size=(0,))
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: output_size[0]=0 is invalid: must be >= 1
    """
    xa = check_array("x", x, ndim=(3, 4, 5))
    ndim = xa.ndim - 2
    if xa.shape[1] < 1:
        raise SpecError("C", xa.shape[1], "must be >= 1")
    for i, size in enumerate(xa.shape[2:]):
        if size < 1:
            raise SpecError(f"x.shape[{i + 2}]", size, "must be >= 1")
    if isinstance(output_size, str) or not isinstance(output_size, Sequence):
        raise SpecError("output_size", output_size, f"must be a tuple of ints, one per spatial dim ({ndim})")
    sizes = normalize_tuple(tuple(output_size), ndim, "output_size", minimum=1)
    return (*xa.shape[:2], *sizes)

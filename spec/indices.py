"""Max-pool indices: how the spec's per-plane flat index maps to PyTorch's and ONNX's.

``max_pool_indices`` returns, for each output element ``(n, c, p)``, the
row-major flat index *within the input plane* ``x[n, c]`` of the element the
window selects, or -1 for a window with no real element. That is PyTorch's
``return_indices``. ONNX ``MaxPool``'s optional ``Indices`` output counts over
the whole tensor: plane ``(n, c)`` starts at ``(n * C + c) * prod(S)``; with
``storage_order=1`` the position inside the plane is counted column-major (the
first spatial dim fastest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spec.errors import SpecError


def onnx_max_pool_indices(
    indices: NDArray[np.int64], x_shape: Sequence[int], *, storage_order: int = 0,
) -> NDArray[np.int64]:
    """Convert per-plane row-major indices (the spec's, PyTorch's) to ONNX ``MaxPool`` ``Indices``.

    For a (2, 3, 4, 5) input, element (1, 2, 3, 4) is plane index 3·5 + 4 = 19;
    ONNX counts (1·3 + 2)·20 + 19 = 119, or with ``storage_order=1``
    (1·3 + 2)·20 + 4·4 + 3 = 119 too for this last element, and 100 + 1·4 + 2 = 106 for (1, 2, 2, 1):

    >>> idx = np.array([19, 11]).reshape(1, 1, 2)   # plane indices of (3, 4) and (2, 1)
    >>> onnx_max_pool_indices(np.broadcast_to(idx, (2, 3, 2)), (2, 3, 4, 5))[1, 2].tolist()
    [119, 111]
    >>> onnx_max_pool_indices(np.broadcast_to(idx, (2, 3, 2)), (2, 3, 4, 5), storage_order=1)[1, 2].tolist()
    [119, 106]

    Windows without a real element (-1) have no ONNX counterpart and stay -1.
    """
    if storage_order not in (0, 1):
        raise SpecError("storage_order", storage_order, "must be 0 (row-major) or 1 (column-major)")
    spatial = tuple(int(s) for s in x_shape[2:])
    plane = math.prod(spatial)
    if storage_order == 1:
        coords = np.unravel_index(np.maximum(indices, 0), spatial)
        within: NDArray[Any] = np.ravel_multi_index(coords, spatial, order="F")
    else:
        within = indices
    n, c = indices.shape[:2]
    base = (np.arange(n)[:, None] * x_shape[1] + np.arange(c)[None, :]) * plane
    flat = base.reshape((n, c) + (1,) * (indices.ndim - 2)) + within
    return np.where(indices < 0, -1, flat).astype(np.int64)

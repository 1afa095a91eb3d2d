"""Padded-buffer helpers for the deliberately broken and the correct-but-different backends.

The reference works on unpadded views (:attr:`reference.windows.WindowGrid.inside_slices`);
these backends are written the straightforward way, on a padded copy of the input and a
padded gradient buffer, so their helpers live here rather than in the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from reference.windows import WindowGrid


def crop(xp: NDArray[Any], grid: WindowGrid) -> NDArray[Any]:
    """The inverse of :func:`reference.windows.pad`: the region of the padded array holding the input."""
    index = (slice(None), slice(None)) + tuple(slice(lo, lo + n) for lo, n in zip(grid.pad_before, grid.spatial))
    return xp[index]


def zeros_padded(shape: tuple[int, ...], grid: WindowGrid, dtype: np.dtype[Any]) -> NDArray[Any]:
    """A zero array shaped like ``pad(x)`` for an ``x`` of ``shape``: where gradients accumulate."""
    padded = tuple(lo + n + hi for lo, n, hi in zip(grid.pad_before, grid.spatial, grid.pad_after))
    return np.zeros((*shape[:2], *padded), dtype=dtype)


def inside_mask(grid: WindowGrid, offset: tuple[int, ...]) -> NDArray[np.bool_]:
    """For one kernel offset, which windows read a real input element (not padding): (1, 1, *out_spatial)."""
    mask = np.ones((1, 1, *grid.out_spatial), dtype=bool)
    for axis, (pos, j, n) in enumerate(zip(grid.positions, offset, grid.spatial)):
        inside = (pos[:, j] >= 0) & (pos[:, j] < n)
        mask &= inside.reshape((-1,) + (1,) * (len(grid.spatial) - axis - 1))
    return mask

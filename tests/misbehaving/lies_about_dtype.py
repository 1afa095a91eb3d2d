"""A convolution computing in float32 that returns an ndarray subclass whose .dtype claims the input's dtype."""

from typing import Any

import numpy as np

import reference
from reference import CAPABILITIES, conv_backward


class Liar(np.ndarray):
    claimed: Any = None

    @property
    def dtype(self) -> Any:
        return self.claimed


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    y = reference.conv_forward(x.astype(np.float32), w.astype(np.float32), None if b is None else b.astype(np.float32),
                               **params)
    out = y.view(Liar)
    out.claimed = x.dtype
    return out


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

"""A convolution with the bugs of a blocked kernel: right on small problems, wrong past a block edge.

Forward ignores input channels past the first block of 32 (a dropped remainder block); backward loses the
input gradient past a 48-pixel tile along the last axis. Neither shows below 32 channels or 48 pixels.
"""

from typing import Any

import numpy as np

import reference
from reference import CAPABILITIES


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    if x.shape[1] > 32 and params["groups"] == 1:
        x, w = x.copy(), w.copy()
        x[:, 32:] = 0
    return reference.conv_forward(x, w, b, **params)


def conv_backward(x: Any, w: Any, dy: Any, **params: Any) -> Any:
    dx, dw, db = reference.conv_backward(x, w, dy, **params)
    if x.shape[-1] > 48:
        dx = np.ascontiguousarray(dx)
        dx[..., 48:] = 0
    return dx, dw, db


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

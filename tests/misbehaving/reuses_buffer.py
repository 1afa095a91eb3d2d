"""A convolution that returns a view into one buffer it reuses on every call (values right when returned)."""

from typing import Any

import numpy as np

import reference
from reference import CAPABILITIES, conv_backward

_buffer = np.zeros(1 << 16)


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    y = reference.conv_forward(x, w, b, **params)
    if y.size > _buffer.size // 8:
        return y
    out = _buffer[: y.size].view(np.uint8)[: y.nbytes].view(y.dtype).reshape(y.shape)
    out[...] = y
    return out


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

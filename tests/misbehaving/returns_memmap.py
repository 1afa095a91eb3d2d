"""A convolution that returns its result as a numpy.memmap over a temporary file."""

import tempfile
from typing import Any

import numpy as np

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    y = reference.conv_forward(x, w, b, **params)
    if y.size == 0:
        return y
    handle = tempfile.TemporaryFile()
    out = np.memmap(handle, dtype=y.dtype, mode="w+", shape=y.shape)
    out[...] = y
    return out


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

"""A backend whose conv_forward returns float32 for float64 input and float64 otherwise."""

from typing import Any

import numpy as np

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    y = reference.conv_forward(x, w, b, **params)
    return y.astype(np.float32 if y.dtype == np.float64 else np.float64)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

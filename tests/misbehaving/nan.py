"""A backend whose conv_forward puts a NaN in the output where the input had none."""

from typing import Any

import numpy as np

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    y = reference.conv_forward(x, w, b, **params)
    if y.size:
        y.flat[0] = np.nan
    return y


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

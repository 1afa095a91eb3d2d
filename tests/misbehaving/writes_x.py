"""A backend whose conv_forward zeroes x after computing."""

from typing import Any

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    y = reference.conv_forward(x, w, b, **params)
    x[...] = 0
    return y


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

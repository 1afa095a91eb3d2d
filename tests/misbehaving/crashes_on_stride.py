"""A backend whose conv_forward segfaults only when some stride is above 1: its other cases are fine."""

import ctypes
from typing import Any

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    if any(s > 1 for s in params["stride"]):
        ctypes.string_at(0)
    return reference.conv_forward(x, w, b, **params)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

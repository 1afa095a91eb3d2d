"""A backend whose conv_forward dereferences a null pointer (SIGSEGV)."""

import ctypes
from typing import Any

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    ctypes.string_at(0)
    return reference.conv_forward(x, w, b, **params)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

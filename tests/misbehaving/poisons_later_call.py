"""A convolution whose backward corrupts the process so that a LATER forward call crashes (like a heap overrun).

conv_backward writes past its buffer (modelled by a flag); the next conv_forward in the same process then
aborts. Run alone in a fresh process, conv_forward is fine: the crash must be blamed on conv_backward.
"""

import os
from typing import Any

import reference
from reference import CAPABILITIES

_corrupted = False


def conv_backward(x: Any, w: Any, dy: Any, **params: Any) -> Any:
    global _corrupted
    _corrupted = True
    return reference.conv_backward(x, w, dy, **params)


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    if _corrupted:
        os.abort()
    return reference.conv_forward(x, w, b, **params)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

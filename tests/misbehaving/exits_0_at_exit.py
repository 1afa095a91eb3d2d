"""A wrong convolution that registers os._exit(0) at exit: run in the suite's process, it would turn exit 1 into 0."""

import atexit
import os
from typing import Any

import reference
from reference import CAPABILITIES, conv_backward

atexit.register(os._exit, 0)


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    return reference.conv_forward(x, w, b, **params) * 2


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

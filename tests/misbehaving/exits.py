"""A backend whose conv_forward ends the process with os._exit(3), as a C library calling exit() does."""

import os
from typing import Any

from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    os._exit(3)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

"""A backend whose conv_forward is killed by SIGKILL, as the out-of-memory killer does."""

import os
import signal
from typing import Any

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)
    return reference.conv_forward(x, w, b, **params)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

"""A backend whose conv_backward writes into dy (scales it in place); conv_forward is the reference's."""

from typing import Any

import reference
from reference import CAPABILITIES, conv_forward


def conv_backward(x: Any, w: Any, dy: Any, **params: Any) -> Any:
    grads = reference.conv_backward(x, w, dy, **params)
    dy *= 0.5
    return grads


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

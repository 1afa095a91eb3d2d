"""A backend whose conv_forward returns a read-only array (a cached buffer handed out)."""

from typing import Any

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    y = reference.conv_forward(x, w, b, **params)
    y.flags.writeable = False
    return y


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

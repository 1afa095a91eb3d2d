"""A backend whose conv_forward scales w in place before computing."""

from typing import Any

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    w *= 2
    return reference.conv_forward(x, w / 2, b, **params)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

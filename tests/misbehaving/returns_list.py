"""A backend whose conv_forward returns a nested list."""

from typing import Any

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    return reference.conv_forward(x, w, b, **params).tolist()


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

"""A backend whose conv_forward loops for ever holding the GIL."""

from typing import Any

from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    while True:
        pass


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

"""A backend whose conv_forward raises on valid input."""

from typing import Any

from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    raise ValueError("not today")


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

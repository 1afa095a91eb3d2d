"""A backend whose conv_forward returns a generator, which cannot even be pickled."""

from typing import Any

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    return (v for v in reference.conv_forward(x, w, b, **params))


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

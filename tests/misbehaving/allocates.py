"""A backend whose conv_forward allocates ever more memory, up to 12 GiB in 1 GiB steps (a leak, a wrong size computation)."""

from typing import Any

import numpy as np

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    hoard = []
    for _ in range(12):  # bounded, in case the memory limit failed
        hoard.append(np.ones(2**27))
    return reference.conv_forward(x, w, b, **params)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

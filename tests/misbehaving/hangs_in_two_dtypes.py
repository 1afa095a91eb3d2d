"""A convolution whose forward sleeps for ever in float64 and float16 (kernels that deadlock); float32 is right."""

import time
from typing import Any

import numpy as np

import reference
from reference import CAPABILITIES, conv_backward


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    if np.asarray(x).dtype in (np.float64, np.float16):
        time.sleep(1000)
    return reference.conv_forward(x, w, b, **params)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

"""A wrong convolution returning an ndarray subclass whose __reduce__ would run code wherever it is unpickled.

Unpickled in the suite's process, it would write the file named by CONVSPEC_TEST_MARKER (standing in for
anything: patching the suite, forging a report).
"""

import os
from typing import Any

import numpy as np

import reference
from reference import CAPABILITIES, conv_backward


def _payload(path: str) -> np.ndarray:
    with open(path, "w", encoding="utf-8") as marker:
        marker.write("code of the backend ran here\n")
    return np.zeros(1)


class Sneaky(np.ndarray):
    def __reduce__(self) -> Any:
        return (_payload, (os.environ.get("CONVSPEC_TEST_MARKER", os.devnull),))


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    return (reference.conv_forward(x, w, b, **params) * 3).view(Sneaky)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

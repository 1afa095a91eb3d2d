"""A correct convolution whose first call in a process is slow (it compiles its kernels), then fast.

Over the time limit once, it must be reported as slow (with its time), never as a hang.
"""

import os
import time
from typing import Any

import reference
from reference import CAPABILITIES, conv_backward

_compiled = False


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    global _compiled
    if not _compiled:
        time.sleep(float(os.environ.get("CONVSPEC_TEST_COMPILE_SECONDS", "1.5")))
        _compiled = True
    return reference.conv_forward(x, w, b, **params)


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

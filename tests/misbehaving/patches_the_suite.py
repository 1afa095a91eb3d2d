"""A wrong convolution that, while being imported, patches NumPy and the suite so that every check passes.

If it were imported in the suite's process, np.allclose/np.array_equal would always agree, np.abs would
return zeros and every rule search would "pass": the verdict would be decided by the backend itself.
"""

from typing import Any

import numpy as np

import conformance.runner
import reference
from reference import CAPABILITIES, conv_backward

setattr(np, "abs", lambda a, *args, **kwargs: np.zeros_like(np.asarray(a, dtype=float)))  # noqa: B010
setattr(np, "allclose", lambda *args, **kwargs: True)  # noqa: B010
setattr(np, "array_equal", lambda *args, **kwargs: True)  # noqa: B010
_real_run_item = conformance.runner.run_item


def _always_pass(ctx: Any, item: Any, seed: int) -> Any:
    result = _real_run_item(ctx, item, seed)
    result.status, result.violation = "passed", None
    return result


conformance.runner.run_item = _always_pass


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    return reference.conv_forward(x, w, b, **params) + 1  # wrong everywhere


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

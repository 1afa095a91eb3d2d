"""A backend whose eight functions all raise spec.UnsupportedError: it computes nothing, so it proves nothing."""

from typing import Any

import spec


def _decline(*args: Any, **kwargs: Any) -> Any:
    raise spec.UnsupportedError("not implemented yet")


conv_forward = conv_backward = max_pool_forward = max_pool_backward = _decline
avg_pool_forward = avg_pool_backward = linear_forward = linear_backward = _decline

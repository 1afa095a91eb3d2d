"""convspec's reference implementation: a typed, vectorised NumPy backend.

``import reference`` is itself a backend of the protocol in :mod:`spec.protocol`:
every function validates its arguments through :mod:`spec` and computes the
operation the spec documents, float16 and bfloat16 in float32 and the others in their own dtype.
"""

from reference.adaptive_pool import (
    adaptive_avg_pool_backward,
    adaptive_avg_pool_forward,
    adaptive_max_pool_backward,
    adaptive_max_pool_forward,
    adaptive_max_pool_indices,
)
from reference.conv import conv_backward, conv_forward
from reference.conv_transpose import conv_transpose_backward, conv_transpose_forward
from reference.linear import linear_backward, linear_forward
from reference.pool import avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward
from reference.pool_indices import max_pool_indices
from spec import Capabilities

#: The reference implements everything the spec defines, with direct summation.
CAPABILITIES = Capabilities(accuracy="direct", notes=("NumPy im2col + matmul; float16 and bfloat16 computed in float32",))

__all__ = [
    "CAPABILITIES",
    "avg_pool_backward", "avg_pool_forward", "conv_backward", "conv_forward",
    "linear_backward", "linear_forward", "max_pool_backward", "max_pool_forward",
]
__all__ += [
    "adaptive_avg_pool_backward", "adaptive_avg_pool_forward", "adaptive_max_pool_backward", "adaptive_max_pool_forward",
    "adaptive_max_pool_indices", "conv_transpose_backward", "conv_transpose_forward", "max_pool_indices",
]

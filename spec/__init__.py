"""convspec's specification: what convolution, pooling and linear layers mean.

The spec is typed Python (this package) plus one document per operation in
``spec/docs/``. It never imports the reference implementation.
"""

from spec.accuracy import AccuracyClass, elementwise_bound, gamma, normwise_bound, unit_roundoff
from spec.errors import SpecError, UnsupportedError
from spec.params import (
    DTYPES,
    SPATIAL_RANKS,
    ConvParams,
    PoolParams,
    check_array,
    check_dy,
    check_flag,
    conv_output_shape,
    conv_params,
    linear_output_shape,
    pool_output_shape,
    pool_params,
)
from spec.protocol import (
    FUNCTION_NAMES,
    OPERATIONS,
    Array,
    Backend,
    Capabilities,
    OpName,
    capabilities_of,
    supported_functions,
)
from spec.shapes import Padding, PaddingLike, normalize_tuple, output_size, resolve_padding, same_padding

__all__ = [
    "DTYPES", "FUNCTION_NAMES", "OPERATIONS", "SPATIAL_RANKS",
    "AccuracyClass", "Array", "Backend", "Capabilities", "ConvParams", "OpName", "Padding", "PaddingLike",
    "PoolParams", "SpecError", "UnsupportedError",
    "capabilities_of", "check_array", "check_dy", "check_flag", "conv_output_shape", "conv_params", "elementwise_bound",
    "gamma", "linear_output_shape", "normalize_tuple", "normwise_bound", "output_size", "pool_output_shape",
    "pool_params", "resolve_padding", "same_padding", "supported_functions", "unit_roundoff",
]

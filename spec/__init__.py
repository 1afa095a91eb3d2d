"""convspec's specification: what convolution, pooling and linear layers mean.

The spec is typed Python (this package) plus one document per operation in
``spec/docs/``. Its code never imports the reference implementation (``import spec`` loads no
``reference`` module); some of its examples do, to show a call on a real computation: the documents'
and a few docstrings' doctests need ``reference`` to run.
"""

from spec.accuracy import AccuracyClass, elementwise_bound, gamma, normwise_bound, unit_roundoff
from spec.adaptive import AdaptivePoolParams, adaptive_pool_output_shape, adaptive_windows
from spec.errors import SpecError, UnsupportedError
from spec.indices import onnx_max_pool_indices
from spec.operations import FUNCTION_NAMES, OPERATION_OF, OPERATIONS, Operation, OpName, Terms, operation
from spec.params import (
    DTYPES,
    SPATIAL_RANKS,
    ConvParams,
    LinearParams,
    MaxPoolParams,
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
from spec.protocol import Array, Backend, Capabilities, capabilities_of, supported_functions
from spec.shapes import (
    Padding,
    PaddingLike,
    PoolPaddingKind,
    normalize_tuple,
    output_size,
    pool_padding_allowed,
    pool_padding_limit,
    resolve_padding,
    same_padding,
)
from spec.transposed import (
    ConvTransposeParams,
    conv_transpose_output_padding,
    conv_transpose_output_shape,
    conv_transpose_output_size,
    conv_transpose_params,
    onnx_conv_transpose_padding,
)

__all__ = [
    "DTYPES", "FUNCTION_NAMES", "OPERATIONS", "SPATIAL_RANKS",
    "AccuracyClass", "Array", "Backend", "Capabilities", "ConvParams", "OpName", "Padding", "PaddingLike",
    "PoolParams", "SpecError", "UnsupportedError",
    "capabilities_of", "check_array", "check_dy", "check_flag", "conv_output_shape", "conv_params", "elementwise_bound",
    "gamma", "linear_output_shape", "normalize_tuple", "normwise_bound", "output_size", "pool_output_shape",
    "pool_params", "resolve_padding", "same_padding", "supported_functions", "unit_roundoff",
]
__all__ += [
    "ConvTransposeParams", "adaptive_pool_output_shape", "adaptive_windows", "conv_transpose_output_padding",
    "conv_transpose_output_shape", "conv_transpose_output_size", "conv_transpose_params", "onnx_conv_transpose_padding",
    "onnx_max_pool_indices",
]
__all__ += ["PoolPaddingKind", "pool_padding_allowed", "pool_padding_limit"]
__all__ += ["OPERATION_OF", "AdaptivePoolParams", "LinearParams", "MaxPoolParams", "Operation", "Terms", "operation"]

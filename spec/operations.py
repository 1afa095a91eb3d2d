"""The operation registry: one record per operation of the backend protocol.

Everything the suite knows about an operation that is not a rule lives here:
its protocol functions and their argument and result names, its typed
parameter model (the one description of a call), its output-shape function,
the number of terms each result sums (the accuracy model's ``K``), its
document and constraint prefix, the :class:`spec.Capabilities` fields that
narrow it, and flags the conformance suite dispatches on instead of comparing
operation names. Adding an operation is adding a record here (see
CONTRIBUTING.md).

>>> OPERATIONS["conv_transpose"].forward, OPERATIONS["conv_transpose"].backward_results
('conv_transpose_forward', ('dx', 'dw', 'db'))
>>> OPERATIONS["max_pool_indices"].backward is None, OPERATIONS["max_pool_indices"].result_dtype
(True, 'int64')
>>> [op for op, record in OPERATIONS.items() if record.linear]
['conv', 'conv_transpose', 'avg_pool', 'adaptive_avg_pool', 'linear']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, TypeAlias

from spec.adaptive import AdaptivePoolParams, adaptive_pool_output_shape, adaptive_windows
from spec.errors import SpecError
from spec.params import (
    ConvParams,
    LinearParams,
    MaxPoolParams,
    PoolParams,
    conv_output_shape,
    linear_output_shape,
    pool_output_shape,
)
from spec.shapes import output_size
from spec.transposed import ConvTransposeParams, conv_transpose_output_shape, conv_transpose_output_size

OpName: TypeAlias = Literal[
    "conv", "conv_transpose", "max_pool", "max_pool_indices", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool",
    "linear",
]
#: How an operation forms its windows: a kernel sliding with a stride ("window"), windows derived from the
#: output size ("adaptive"), or none (linear). Strategies, shape pools and bench problems build by it.
Windowing: TypeAlias = Literal["kernel", "adaptive", "none"]


class Terms(NamedTuple):
    """How many terms each result element sums at most (the accuracy model's K), per result."""

    forward: int
    dx: int
    dw: int = 0
    db: int = 0


@dataclass(frozen=True)
class Operation:
    """One operation of the backend protocol: what every part of the suite needs to know about it."""

    name: OpName
    #: Human-readable name, for reports and documents.
    title: str
    forward: str
    #: None: the operation has no backward (max-pool indices are not differentiable).
    backward: str | None
    #: Positional array arguments of the forward and backward functions, by name (``b`` may be None).
    forward_args: tuple[str, ...]
    backward_args: tuple[str, ...]
    #: Names of what forward and backward return (a tuple when more than one).
    forward_results: tuple[str, ...]
    backward_results: tuple[str, ...]
    #: The typed parameter model: its fields are the keyword arguments of both functions.
    params: Callable[..., tuple[Any, ...]]
    #: ``shape(x, w, b, **params)``: validates a call as the reference does and returns the forward's output shape.
    shape: Callable[..., tuple[int, ...]]
    #: ``terms(x_shape, w_shape, params)``: the longest sum behind each result element.
    terms: Callable[[tuple[int, ...], tuple[int, ...] | None, Mapping[str, Any]], Terms]
    #: The document under spec/docs/ and the prefix of its constraint ids (``CONV`` for ``CONV-C3``).
    document: str
    constraint_prefix: str
    #: The spec.Capabilities fields that narrow this operation.
    capabilities: tuple[str, ...]
    windowing: Windowing
    #: The forward is linear in x (and in w, b): the adjoint identity applies.
    linear: bool
    #: Weights and an optional bias are arguments.
    has_weights: bool
    #: The result selects input elements (max pooling and its indices): expected values are exact.
    selects: bool = False
    #: The Capabilities field allowing dilation > 1, if the operation dilates.
    dilation_field: str | None = None
    #: The dtype of the forward result; None: the input's dtype.
    result_dtype: str | None = None
    #: The operation whose selected elements this one's result locates (max-pool indices: max pooling).
    locates: OpName | None = None
    #: ``weight_shape(c_in, c_out, groups, kernel)``: the layout of ``w`` (None: no weights).
    weight_shape: Callable[[int, int, int, tuple[int, ...]], tuple[int, ...]] | None = None

    @property
    def has_backward(self) -> bool:
        return self.backward is not None

    @property
    def has_bias(self) -> bool:
        return "b" in self.forward_args

    @property
    def param_names(self) -> tuple[str, ...]:
        """The keyword arguments of the protocol functions, in the parameter model's order."""
        fields: tuple[str, ...] = getattr(self.params, "_fields")  # noqa: B009  (a NamedTuple class, typed as a callable)
        return fields

    @property
    def functions(self) -> tuple[str, ...]:
        """The protocol functions of this operation (forward first)."""
        return (self.forward,) if self.backward is None else (self.forward, self.backward)

    def call(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The typed call description from keyword arguments (unknown or missing names raise TypeError).

        >>> OPERATIONS["adaptive_avg_pool"].call({"output_size": (1, 1)})
        AdaptivePoolParams(output_size=(1, 1))
        """
        return self.params(**params)

    def output_shape(self, x: object, w: object = None, b: object = None, **params: Any) -> tuple[int, ...]:
        """Validate a forward call and return its output shape (spec.SpecError when invalid)."""
        return self.shape(x, w, b, **params)


# --------------------------------------------------------------------------- output shapes, one signature

def _conv_shape(x: object, w: object, b: object, **params: Any) -> tuple[int, ...]:
    return conv_output_shape(x, w, b, **params)


def _conv_transpose_shape(x: object, w: object, b: object, **params: Any) -> tuple[int, ...]:
    return conv_transpose_output_shape(x, w, b, **params)


def _pool_shape(x: object, w: object, b: object, *, count_include_pad: object = None, **params: Any) -> tuple[int, ...]:
    return pool_output_shape(x, **params)


def _adaptive_shape(x: object, w: object, b: object, **params: Any) -> tuple[int, ...]:
    return adaptive_pool_output_shape(x, **params)


def _linear_shape(x: object, w: object, b: object) -> tuple[int, ...]:
    return linear_output_shape(x, w, b)


# --------------------------------------------------------------------------- terms (K) per result

def _window_out(x_shape: Sequence[int], p: Mapping[str, Any], kernel: Sequence[int], ceil_mode: bool) -> tuple[int, ...]:
    return tuple(output_size(n, k, stride=s, padding=pad, dilation=d, ceil_mode=ceil_mode)
                 for n, k, s, pad, d in zip(x_shape[2:], kernel, p["stride"], p["padding"], p["dilation"]))


def _conv_terms(x: tuple[int, ...], w: tuple[int, ...] | None, p: Mapping[str, Any]) -> Terms:
    """Forward: C_in/groups * prod(K); dx: C_out/groups * prod(K); dw and db: N * prod(out)."""
    assert w is not None
    taps = math.prod(w[2:])
    reduction = x[0] * math.prod(_window_out(x, p, w[2:], False))
    return Terms(w[1] * taps, (w[0] // p["groups"]) * taps, reduction, reduction)


def _conv_transpose_terms(x: tuple[int, ...], w: tuple[int, ...] | None, p: Mapping[str, Any]) -> Terms:
    """Forward: C_in/groups * prod(K); dx: C_out/groups * prod(K); dw: N * prod(S); db: N * prod(S_out)."""
    assert w is not None
    taps = math.prod(w[2:])
    out = [conv_transpose_output_size(n, k, stride=s, padding=pad, dilation=d, output_padding=e)
           for n, k, s, pad, d, e in zip(x[2:], w[2:], p["stride"], p["padding"], p["dilation"], p["output_padding"])]
    return Terms((w[0] // p["groups"]) * taps, w[1] * taps, x[0] * math.prod(x[2:]), x[0] * math.prod(out))


def _pool_terms(x: tuple[int, ...], w: tuple[int, ...] | None, p: Mapping[str, Any]) -> Terms:
    """prod(kernel_size) for the window and, at most, for the windows sharing an element."""
    taps = math.prod(p["kernel_size"])
    return Terms(taps, taps)


def _adaptive_terms(x: tuple[int, ...], w: tuple[int, ...] | None, p: Mapping[str, Any]) -> Terms:
    """The longest window, and the most windows holding one element, multiplied over the dims."""
    longest, sharing = 1, 1
    for n, o in zip(x[2:], p["output_size"]):
        windows = adaptive_windows(n, o)
        longest *= max(end - start for start, end in windows)
        sharing *= max(sum(start <= i < end for start, end in windows) for i in range(n))
    return Terms(longest, sharing)


def _linear_terms(x: tuple[int, ...], w: tuple[int, ...] | None, p: Mapping[str, Any]) -> Terms:
    """Forward: in_features; dx: out_features; dw and db: N."""
    assert w is not None
    return Terms(x[1], w[0], x[0], x[0])


# --------------------------------------------------------------------------- weight layouts

def _conv_weight(c_in: int, c_out: int, groups: int, kernel: tuple[int, ...]) -> tuple[int, ...]:
    """(C_out, C_in / groups, *K)."""
    return (c_out, c_in // groups, *kernel)


def _conv_transpose_weight(c_in: int, c_out: int, groups: int, kernel: tuple[int, ...]) -> tuple[int, ...]:
    """(C_in, C_out / groups, *K): the weight of the convolution it transposes, as PyTorch and ONNX store it."""
    return (c_in, c_out // groups, *kernel)


def _linear_weight(c_in: int, c_out: int, groups: int, kernel: tuple[int, ...]) -> tuple[int, ...]:
    """(out_features, in_features)."""
    return (c_out, c_in)


# --------------------------------------------------------------------------- the records

_COMMON = ("dtypes", "spatial_ranks", "empty_batch", "nonfinite", "compiles_per_shape")
_POOL_WINDOW = ("asymmetric_pool_padding", "ceil_mode", "pool_padding")


def _weighted(name: OpName) -> dict[str, Any]:
    return {"forward": f"{name}_forward", "backward": f"{name}_backward", "forward_args": ("x", "w", "b"),
            "backward_args": ("x", "w", "dy"), "forward_results": ("y",), "backward_results": ("dx", "dw", "db"),
            "has_weights": True, "linear": True}


def _unweighted(name: OpName) -> dict[str, Any]:
    return {"forward": f"{name}_forward", "backward": f"{name}_backward", "forward_args": ("x",),
            "backward_args": ("x", "dy"), "forward_results": ("y",), "backward_results": ("dx",),
            "has_weights": False}


_RECORDS: tuple[Operation, ...] = (
    Operation(
        name="conv", title="convolution", **_weighted("conv"), params=ConvParams, shape=_conv_shape,
        weight_shape=_conv_weight,
        terms=_conv_terms, document="conv.md", constraint_prefix="CONV", windowing="kernel", dilation_field="dilation",
        capabilities=(*_COMMON, "dilation", "groups", "asymmetric_padding", "accuracy", "accumulation"),
    ),
    Operation(
        name="conv_transpose", title="transposed convolution", **_weighted("conv_transpose"),
        params=ConvTransposeParams, shape=_conv_transpose_shape, terms=_conv_transpose_terms,
        weight_shape=_conv_transpose_weight,
        document="conv_transpose.md", constraint_prefix="CONVT", windowing="kernel", dilation_field="dilation",
        capabilities=(*_COMMON, "dilation", "groups", "asymmetric_padding", "output_padding", "accumulation"),
    ),
    Operation(
        name="max_pool", title="max pooling", **_unweighted("max_pool"), params=MaxPoolParams, shape=_pool_shape,
        terms=_pool_terms, document="max_pool.md", constraint_prefix="MAXPOOL", windowing="kernel", linear=False,
        selects=True, dilation_field="max_pool_dilation", capabilities=(*_COMMON, *_POOL_WINDOW, "max_pool_dilation"),
    ),
    Operation(
        name="max_pool_indices", title="max-pool indices", forward="max_pool_indices", backward=None,
        forward_args=("x",), backward_args=(), forward_results=("indices",), backward_results=(),
        params=MaxPoolParams, shape=_pool_shape, terms=_pool_terms, document="max_pool_indices.md",
        constraint_prefix="MAXIDX", windowing="kernel", linear=False, has_weights=False, selects=True,
        dilation_field="max_pool_dilation", result_dtype="int64", locates="max_pool",
        capabilities=(*_COMMON, *_POOL_WINDOW, "max_pool_dilation"),
    ),
    Operation(
        name="avg_pool", title="average pooling", **_unweighted("avg_pool"), params=PoolParams, shape=_pool_shape,
        terms=_pool_terms, document="avg_pool.md", constraint_prefix="AVGPOOL", windowing="kernel", linear=True,
        dilation_field="avg_pool_dilation",
        capabilities=(*_COMMON, *_POOL_WINDOW, "avg_pool_dilation", "count_include_pad", "accumulation"),
    ),
    Operation(
        name="adaptive_avg_pool", title="adaptive average pooling", **_unweighted("adaptive_avg_pool"),
        params=AdaptivePoolParams, shape=_adaptive_shape, terms=_adaptive_terms, document="adaptive_pool.md",
        constraint_prefix="ADAPTIVE", windowing="adaptive", linear=True,
        capabilities=(*_COMMON, "adaptive_output_size", "accumulation"),
    ),
    Operation(
        name="adaptive_max_pool", title="adaptive max pooling", **_unweighted("adaptive_max_pool"),
        params=AdaptivePoolParams, shape=_adaptive_shape, terms=_adaptive_terms, document="adaptive_pool.md",
        constraint_prefix="ADAPTIVE", windowing="adaptive", linear=False, selects=True,
        capabilities=(*_COMMON, "adaptive_output_size"),
    ),
    Operation(
        name="linear", title="linear (fully connected)", **_weighted("linear"), params=LinearParams,
        shape=_linear_shape, terms=_linear_terms, document="linear.md", constraint_prefix="LINEAR",
        weight_shape=_linear_weight,
        windowing="none", capabilities=("dtypes", "empty_batch", "nonfinite", "compiles_per_shape", "accumulation"),
    ),
)

#: Every operation of the protocol, by name, in the order reports list them.
OPERATIONS: Mapping[OpName, Operation] = MappingProxyType({record.name: record for record in _RECORDS})
#: Every protocol function, forward before backward, operation by operation.
FUNCTION_NAMES: tuple[str, ...] = tuple(name for record in _RECORDS for name in record.functions)
#: The operation each protocol function belongs to.
OPERATION_OF: Mapping[str, Operation] = MappingProxyType(
    {name: record for record in _RECORDS for name in record.functions})


def operation(name: str) -> Operation:
    """The record of an operation, by name, or a SpecError naming the known ones.

    >>> operation("conv").document
    'conv.md'
    >>> operation("deconv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    spec.errors.SpecError: operation='deconv' is invalid: must be one of conv, conv_transpose, ..., linear
    """
    for record in _RECORDS:
        if record.name == name:
            return record
    raise SpecError("operation", name, f"must be one of {', '.join(OPERATIONS)}")

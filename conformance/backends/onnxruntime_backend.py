"""ONNX Runtime adapter: single-node ONNX models run by an ``InferenceSession`` on the CPU. Forward only.

Each call builds (once per configuration, then cached) a model of one node —
``Conv``, ``MaxPool``, ``AveragePool`` (opset 22, which has ``dilations``,
``ceil_mode`` and ``count_include_pad``) or ``Gemm`` with ``transB=1`` —
shaped like an exported layer (symbolic batch, static weight and spatial
shapes, ``kernel_shape`` given), and runs it. ONNX takes the protocol's
parameters almost verbatim: ``pads`` lists every dim's begin, then every
dim's end. Padding that equals what ``"same"`` / ``"same_lower"`` resolve to
is sent as ``auto_pad="SAME_UPPER"`` / ``"SAME_LOWER"`` (outside ceil mode)
so that ONNX Runtime's own SAME arithmetic is what gets tested — except for
dilated operations, for which ONNX Runtime's ``auto_pad`` is refused (Conv:
"Dilation not supported for AutoPadType::SAME_UPPER") or computes the SAME
padding from the undilated kernel (pooling: a wrong output size); those get
explicit ``pads``, which state the same padding.

The new operations: ``ConvTranspose`` takes the protocol's ``pads``,
``output_padding``, ``dilations`` and ``group`` verbatim (ONNX's output-size
rule is the protocol's). ``max_pool_indices`` is ``MaxPool``'s second output
``Indices`` (``storage_order=0``, row-major), which counts over the whole
tensor: plane ``(n, c)`` starts at ``(n·C + c)·prod(S)``, subtracted here from
every index to give the protocol's per-plane index (for a window without a
real element ONNX Runtime counts position (-1, ..., -1): -1 in 1-D only, O14). ONNX has no adaptive pooling: output size 1
is ``GlobalAveragePool`` / ``GlobalMaxPool``, any other is declined.

What ONNX Runtime refuses is reported, not worked around: its "no kernel"
error (no float64 ``Conv`` or ``AveragePool``) and pooling padding that is not
smaller than the kernel (``Pad should be smaller than kernel``, checked
against the undilated kernel) raise :class:`spec.UnsupportedError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper
from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented

import spec
from conformance.backends._translate import as_padding, check_global_call, fresh, matches_same
from spec import Array, Padding

#: The opset of every model: AveragePool has ``dilations`` from opset 19.
OPSET = 22
#: The oldest IR version that carries opset 22 (``onnx.helper.find_min_ir_version_for``): onnx's
#: default, its newest, may be newer than the installed ONNX Runtime accepts.
IR_VERSION = 10

#: The framework version, shown in reports.
VERSION: str = ort.__version__

CAPABILITIES = spec.Capabilities(
    # Global pooling (output size 1) is the only adaptive pooling the framework has.
    adaptive_output_size="global",
    dtypes=frozenset({"float32", "float16"}),
    pool_padding="half_kernel",
    notes=(
        f"onnxruntime {ort.__version__} (CPUExecutionProvider), onnx opset {OPSET}; forward only",
        "float64: MaxPool and Gemm have kernels, Conv and AveragePool do not (UnsupportedError)",
        "pooling pads must be smaller than the undilated kernel (declared by supports(op, problem))",
        "float16 runs through Cast nodes ONNX Runtime inserts: computed in float32",
        "SAME-valued padding is sent as auto_pad SAME_UPPER / SAME_LOWER, except when dilated (explicit pads)",
        "max_pool_indices: MaxPool's Indices (storage_order=0) minus each plane's offset (n * C + c) * prod(S)",
        "adaptive pooling: global only (GlobalAveragePool / GlobalMaxPool); other output sizes declined",
    ),
)

_Attributes = tuple[tuple[str, Any], ...]
_Shape = tuple[int | str, ...]


@lru_cache(maxsize=512)
def _session(op: str, dtype: str, shapes: tuple[_Shape, ...], attributes: _Attributes,
             indices: bool = False) -> ort.InferenceSession:
    """An InferenceSession of one ``op`` node whose inputs have the given shapes (a str is a symbolic dim).

    Its output is ``y``, and with ``indices`` also an int64 ``indices`` (MaxPool's second output).
    """
    element = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    names = [f"input{i}" for i in range(len(shapes))]
    inputs = [helper.make_tensor_value_info(name, element, list(shape)) for name, shape in zip(names, shapes)]
    dims = [f"y_dim{d}" for d in range(len(shapes[0]))]
    outputs = [helper.make_tensor_value_info("y", element, dims)]
    if indices:
        outputs.append(helper.make_tensor_value_info("indices", TensorProto.INT64, dims))
    node_attributes: dict[str, Any] = {name: list(v) if isinstance(v, tuple) else v for name, v in attributes}
    node = helper.make_node(op, names, [o.name for o in outputs], **node_attributes)
    graph = helper.make_graph([node], f"convspec_{op}", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    options = ort.SessionOptions()
    options.log_severity_level = 4  # ONNX Runtime logs refused models itself; the exception says it all
    # One thread per session: hundreds of cached sessions each with a thread pool exhaust the
    # worker's threads and memory (tiny single-node models gain nothing from threads).
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except OrtNotImplemented as exc:
        raise spec.UnsupportedError(f"ONNX Runtime has no CPU kernel for {op} in {dtype}: {exc}") from exc


def _run(op: str, arrays: Sequence[Array], attributes: dict[str, Any]) -> Array:
    """Run one node on ``arrays`` and return its output as a fresh array (see :func:`_run_outputs`)."""
    (y,) = _run_outputs(op, arrays, attributes, indices=False)
    return y


def _run_outputs(op: str, arrays: Sequence[Array], attributes: dict[str, Any], *, indices: bool) -> list[Array]:
    """Run one node on ``arrays`` and return its outputs (``y``, and ``indices`` if asked) as fresh arrays.

    The model looks like an exported layer: a symbolic batch dim, every other
    shape static (so ONNX shape inference sees the kernel and checks the
    attributes against it, as it does for a model with weight initializers).
    """
    key = tuple(sorted((name, tuple(v) if isinstance(v, list) else v) for name, v in attributes.items()))
    shapes = (("N", *arrays[0].shape[1:]), *(tuple(a.shape) for a in arrays[1:]))
    session = _session(op, str(arrays[0].dtype), shapes, key, indices)
    feeds = {f"input{i}": a for i, a in enumerate(arrays)}
    return [fresh(out) for out in session.run(["y", "indices"] if indices else ["y"], feeds)]


def _padding_attributes(
    padding: Padding, spatial: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
    dilation: Sequence[int], *, ceil_mode: bool = False,
) -> dict[str, Any]:
    """``auto_pad`` when the padding is exactly SAME_UPPER / SAME_LOWER (undilated, outside ceil mode), else ``pads``.

    ONNX Runtime refuses ``auto_pad`` with dilation for Conv and computes the
    wrong SAME padding for dilated pooling (see the module docstring), so
    dilated operations always get explicit ``pads``: the protocol's padding
    is explicit, and ``pads`` says exactly the same thing.
    """
    if not ceil_mode and all(d == 1 for d in dilation):
        for mode, lower in (("SAME_UPPER", False), ("SAME_LOWER", True)):
            if matches_same(padding, spatial, kernel_size, stride, dilation, lower=lower):
                return {"auto_pad": mode}
    return {"pads": [lo for lo, _ in padding] + [hi for _, hi in padding]}


def _pool_pad_limit(kernel_size: tuple[int, ...], padding: Padding, dilation: tuple[int, ...]) -> str | None:
    if any(k >= 1 and max(lo, hi) >= k for (lo, hi), k in zip(padding, kernel_size)):
        return (f"ONNX Runtime requires pooling pads smaller than the (undilated) kernel (padding={padding}, "
                f"kernel_size={kernel_size}, dilation={dilation})")
    return None


def supports(op: str, problem: dict[str, Any]) -> str | None:
    """What ONNX Runtime lacks for this case, or None (the suite asks before it generates a case).

    No backward at all (the adapter has no backward functions); pooling pads smaller than the undilated kernel;
    adaptive pooling only as global pooling.
    """
    p = problem["params"]
    if op in ("max_pool", "avg_pool", "max_pool_indices"):
        return _pool_pad_limit(tuple(p["kernel_size"]), as_padding(p["padding"]), tuple(p["dilation"]))
    if op in ("adaptive_avg_pool", "adaptive_max_pool"):
        return _global_only(tuple(p["output_size"]))
    return None


def _global_only(output_size: tuple[int, ...]) -> str | None:
    if all(o == 1 for o in output_size):
        return None
    return ("ONNX has no adaptive pooling, only global pooling (output size 1: GlobalAveragePool / GlobalMaxPool; "
            f"output_size={output_size})")


def _pool_attributes(
    x: Array, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...],
    ceil_mode: bool,
) -> dict[str, Any]:
    limit = _pool_pad_limit(kernel_size, padding, dilation)
    if limit is not None:
        raise spec.UnsupportedError(limit)
    return {
        "kernel_shape": list(kernel_size),
        "strides": list(stride),
        "dilations": list(dilation),
        "ceil_mode": int(ceil_mode),
        **_padding_attributes(padding, x.shape[2:], kernel_size, stride, dilation, ceil_mode=ceil_mode),
    }


def _kernel_attributes(w: Array, stride: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> dict[str, Any]:
    """The attributes ``Conv`` and ``ConvTranspose`` share."""
    return {"kernel_shape": list(w.shape[2:]), "strides": list(stride), "dilations": list(dilation), "group": groups}


def conv_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
) -> Array:
    """ONNX ``Conv`` (X, W[, B]) with ``strides``, ``pads`` / ``auto_pad``, ``dilations`` and ``group``."""
    pads = as_padding(padding)
    attributes = {
        **_kernel_attributes(w, stride, dilation, groups),
        **_padding_attributes(pads, x.shape[2:], w.shape[2:], stride, dilation),
    }
    return _run("Conv", [x, w] if b is None else [x, w, b], attributes)


def max_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> Array:
    """ONNX ``MaxPool``."""
    pads = as_padding(padding)
    return _run("MaxPool", [x], _pool_attributes(x, tuple(kernel_size), tuple(stride), pads, tuple(dilation), ceil_mode))


def avg_pool_forward(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
) -> Array:
    """ONNX ``AveragePool`` with ``count_include_pad``."""
    pads = as_padding(padding)
    attributes = _pool_attributes(x, tuple(kernel_size), tuple(stride), pads, tuple(dilation), ceil_mode)
    attributes["count_include_pad"] = int(count_include_pad)
    return _run("AveragePool", [x], attributes)


def conv_transpose_forward(
    x: Array, w: Array, b: Array | None, *,
    stride: tuple[int, ...], padding: Padding, output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> Array:
    """ONNX ``ConvTranspose`` (X, W[, B]) with ``strides``, ``pads``, ``output_padding``, ``dilations``, ``group``."""
    pads = as_padding(padding)
    attributes = {
        **_kernel_attributes(w, stride, dilation, groups),
        "output_padding": list(output_padding),
        "pads": [lo for lo, _ in pads] + [hi for _, hi in pads],
    }
    return _run("ConvTranspose", [x, w] if b is None else [x, w, b], attributes)


def max_pool_indices(
    x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], ceil_mode: bool,
) -> NDArray[np.int64]:
    """ONNX ``MaxPool``'s ``Indices`` (row-major over the whole tensor) re-counted within each (N, C) plane."""
    pads = as_padding(padding)
    attributes = _pool_attributes(x, tuple(kernel_size), tuple(stride), pads, tuple(dilation), ceil_mode)
    attributes["storage_order"] = 0
    _, found = _run_outputs("MaxPool", [x], attributes, indices=True)
    n, c = found.shape[:2]
    offsets = (np.arange(n * c, dtype=np.int64) * math.prod(x.shape[2:])).reshape((n, c) + (1,) * (found.ndim - 2))
    # Every index, ONNX Runtime's answers for windows without a real element included, re-counted from its
    # plane's start: such a window reads -1 in 1-D and -(W + 1) in 2-D (O14), whatever its plane.
    plane: NDArray[np.int64] = (found - offsets).astype(np.int64)
    return plane


def _global(x: Array, output_size: tuple[int, ...]) -> None:
    check_global_call(x, output_size, "ONNX Runtime", _global_only(tuple(output_size)))


def adaptive_avg_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """ONNX ``GlobalAveragePool`` (output size 1 only)."""
    _global(x, output_size)
    return _run("GlobalAveragePool", [x], {})


def adaptive_max_pool_forward(x: Array, *, output_size: tuple[int, ...]) -> Array:
    """ONNX ``GlobalMaxPool`` (output size 1 only)."""
    _global(x, output_size)
    return _run("GlobalMaxPool", [x], {})


def linear_forward(x: Array, w: Array, b: Array | None) -> Array:
    """ONNX ``Gemm`` (A=x, B=w, C=b) with ``transB=1``: x · wᵀ + b."""
    return _run("Gemm", [x, w] if b is None else [x, w, b], {"transB": 1})


__all__ = [
    "CAPABILITIES", "adaptive_avg_pool_forward", "adaptive_max_pool_forward", "avg_pool_forward", "conv_forward",
    "conv_transpose_forward", "linear_forward", "max_pool_forward", "max_pool_indices", "supports",
]

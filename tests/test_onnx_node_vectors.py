"""The reference against ONNX's own node test vectors, built in memory from the installed ``onnx`` package.

ONNX ships the generator of every node test (``onnx/backend/test/case/node/*.py``): importing a module
runs its ``export*`` functions, which register each case (a one-node model with its inputs and expected
outputs) in the list ``collect_testcases()`` returns. We import only the modules of the operations
convspec defines and map each vector's attributes onto the protocol. A vector that cannot be expressed
(a dtype outside spec.DTYPES, Gemm's alpha/beta scaling or a per-row bias) is counted under a reason
from a fixed list; everything else must agree.

Vectors are float32. An expected value must lie within the float32 accuracy bound of the spec
(spec.elementwise_bound, from a float64 evaluation of the reference) or, for vectors written out by
hand with fewer decimals, equal that float64 result rounded to the vector's own number of decimals.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import reference
import spec
from spec.transposed import OnnxAutoPad

onnx = pytest.importorskip("onnx")

#: ONNX op type -> generator module under onnx.backend.test.case.node.
MODULES = {
    "Conv": "conv", "ConvTranspose": "convtranspose", "MaxPool": "maxpool", "AveragePool": "averagepool",
    "Gemm": "gemm", "GlobalMaxPool": "globalmaxpool", "GlobalAveragePool": "globalaveragepool",
}
#: The only reasons a vector may be left unmapped.
UNMAPPABLE = {
    "dtype": "an input dtype outside spec.DTYPES",
    "gemm-scale": "Gemm alpha or beta != 1: linear has no scale factors",
    "gemm-bias": "a Gemm bias C that is not one value per output (a per-row or full matrix bias)",
}

Array = np.ndarray[Any, Any]


@dataclass
class Mapped:
    """One vector as protocol calls: (name, compute(dtype) -> list of results, terms per element, magnitude)."""

    outputs: list[Array]
    compute: Callable[[str], list[Array]]
    #: Per output: the number of terms K of each element and |operation| in float64 (None: exact selection).
    bounds: list[tuple[int, Array] | None] = field(default_factory=list)
    #: Outputs compared at the precision they were written with (see disagreement).
    rounded: int = 0


@dataclass
class Vector:
    """One node test: the operator, its attributes, its inputs and its expected outputs."""

    name: str
    op: str
    attrs: dict[str, Any]
    inputs: list[Array]
    outputs: list[Array]


def collect() -> list[Vector]:
    """The node test cases of MODULES, built by importing their generators (not the whole suite)."""
    node = importlib.import_module("onnx.backend.test.case.node")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in MODULES.values():
            importlib.import_module(f"onnx.backend.test.case.node.{module}")
    vectors = []
    for case in node._NodeTestCases:
        proto = case.model.graph.node[0]
        if proto.op_type in MODULES:
            inputs, outputs = case.data_sets[0]
            vectors.append(Vector(case.name, proto.op_type, _attributes(proto), [np.asarray(a) for a in inputs],
                                  [np.asarray(a) for a in outputs]))
    return vectors


def _attributes(proto: Any) -> dict[str, Any]:
    values = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


def _pads(attrs: dict[str, Any], ndim: int) -> tuple[tuple[int, int], ...]:
    pads = attrs.get("pads", [0] * 2 * ndim)
    return tuple((int(pads[i]), int(pads[i + ndim])) for i in range(ndim))


def _window_padding(attrs: dict[str, Any], spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                    dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    mode = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}.get(attrs.get("auto_pad", "NOTSET"))
    if mode is None:
        return _pads(attrs, len(spatial))
    return spec.resolve_padding(mode, spatial, kernel, stride, dilation)


def _ints(attrs: dict[str, Any], name: str, ndim: int, default: int) -> tuple[int, ...]:
    return tuple(int(v) for v in attrs.get(name, [default] * ndim))


def _abs(arrays: list[Array]) -> list[Array]:
    return [np.abs(a.astype(np.float64)) for a in arrays]


def map_case(vector: Vector) -> Mapped | str:
    """Map one ONNX node test onto the protocol, or return the key of the reason it cannot be."""
    op, attrs, inputs, outputs = vector.op, vector.attrs, vector.inputs, vector.outputs
    if any(a.dtype.name not in spec.DTYPES for a in inputs):
        return "dtype"
    x = inputs[0]
    ndim = x.ndim - 2

    def cast(dtype: str) -> list[Array]:
        return [a.astype(dtype) for a in inputs]

    if op == "Conv":
        kernel = tuple(inputs[1].shape[2:])
        stride, dilation = _ints(attrs, "strides", ndim, 1), _ints(attrs, "dilations", ndim, 1)
        kwargs = {"stride": stride, "dilation": dilation, "groups": int(attrs.get("group", 1)),
                  "padding": _window_padding(attrs, x.shape[2:], kernel, stride, dilation)}

        def conv(dtype: str, arrays: list[Array] | None = None) -> list[Array]:
            xs = arrays if arrays is not None else cast(dtype)
            return [reference.conv_forward(xs[0], xs[1], xs[2] if len(xs) > 2 else None, **kwargs)]

        terms = inputs[1].shape[1] * math.prod(kernel)
        return Mapped(outputs, conv, [(terms, conv("float64", _abs(inputs))[0])])
    if op == "ConvTranspose":
        kernel = tuple(inputs[1].shape[2:])
        stride, dilation = _ints(attrs, "strides", ndim, 1), _ints(attrs, "dilations", ndim, 1)
        extra = _ints(attrs, "output_padding", ndim, 0)
        shape = attrs.get("output_shape")
        auto_pad: OnnxAutoPad = attrs.get("auto_pad", "NOTSET")
        per_dim = [
            spec.onnx_conv_transpose_padding(
                n, k, stride=s, dilation=d, output_padding=e, auto_pad=auto_pad, pads=p,
                output_shape=None if shape is None else int(shape[i]),
            )
            for i, (n, k, s, d, e, p) in enumerate(zip(x.shape[2:], kernel, stride, dilation, extra, _pads(attrs, ndim)))
        ]
        kwargs = {"stride": stride, "dilation": dilation, "groups": int(attrs.get("group", 1)),
                  "padding": tuple(p for p, _ in per_dim), "output_padding": tuple(e for _, e in per_dim)}

        def conv_transpose(dtype: str, arrays: list[Array] | None = None) -> list[Array]:
            xs = arrays if arrays is not None else cast(dtype)
            return [reference.conv_transpose_forward(xs[0], xs[1], xs[2] if len(xs) > 2 else None, **kwargs)]

        terms = inputs[1].shape[0] // kwargs["groups"] * math.prod(kernel)
        return Mapped(outputs, conv_transpose, [(terms, conv_transpose("float64", _abs(inputs))[0])])
    if op in ("MaxPool", "AveragePool"):
        kernel = _ints(attrs, "kernel_shape", ndim, 1)
        stride, dilation = _ints(attrs, "strides", ndim, 1), _ints(attrs, "dilations", ndim, 1)
        pool = {"kernel_size": kernel, "stride": stride, "dilation": dilation,
                "padding": _window_padding(attrs, x.shape[2:], kernel, stride, dilation),
                "ceil_mode": bool(attrs.get("ceil_mode", 0))}
        if op == "MaxPool":
            order = int(attrs.get("storage_order", 0))

            def max_pool(dtype: str) -> list[Array]:
                (xs,) = cast(dtype)
                results = [reference.max_pool_forward(xs, **pool)]
                if len(outputs) > 1:
                    plane = reference.max_pool_indices(xs, **pool)
                    results.append(spec.onnx_max_pool_indices(plane, xs.shape, storage_order=order))
                return results

            return Mapped(outputs, max_pool, [None] * len(outputs))
        include = bool(attrs.get("count_include_pad", 0))  # ONNX's default is 0, PyTorch's True

        def avg_pool(dtype: str, arrays: list[Array] | None = None) -> list[Array]:
            (xs,) = arrays if arrays is not None else cast(dtype)
            return [reference.avg_pool_forward(xs, count_include_pad=include, **pool)]

        return Mapped(outputs, avg_pool, [(math.prod(kernel), avg_pool("float64", _abs(inputs))[0])])
    if op in ("GlobalMaxPool", "GlobalAveragePool"):
        ones = (1,) * ndim
        if op == "GlobalMaxPool":
            return Mapped(outputs, lambda dtype: [reference.adaptive_max_pool_forward(cast(dtype)[0], output_size=ones)], [None])

        def global_avg(dtype: str, arrays: list[Array] | None = None) -> list[Array]:
            (xs,) = arrays if arrays is not None else cast(dtype)
            return [reference.adaptive_avg_pool_forward(xs, output_size=ones)]

        return Mapped(outputs, global_avg, [(math.prod(x.shape[2:]), global_avg("float64", _abs(inputs))[0])])
    if op == "Gemm":
        if float(attrs.get("alpha", 1.0)) != 1.0 or float(attrs.get("beta", 1.0)) != 1.0:
            return "gemm-scale"
        trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
        out_features = inputs[1].shape[0 if trans_b else 1]
        bias = inputs[2] if len(inputs) > 2 else None
        if bias is not None and bias.size not in (1, out_features) or bias is not None and bias.ndim == 2 and bias.shape[0] != 1:
            return "gemm-bias"

        def linear(dtype: str, arrays: list[Array] | None = None) -> list[Array]:
            xs = arrays if arrays is not None else cast(dtype)
            a = xs[0].T if trans_a else xs[0]
            w = xs[1] if trans_b else xs[1].T  # linear's w is (out, in)
            b = None if len(xs) < 3 else np.broadcast_to(xs[2].reshape(-1), (out_features,)).copy()
            return [reference.linear_forward(np.ascontiguousarray(a), np.ascontiguousarray(w), b)]

        return Mapped(outputs, linear, [(inputs[1].shape[1 if trans_b else 0], linear("float64", _abs(inputs))[0])])
    raise AssertionError(f"no mapping for {op}")


def decimals(values: Array) -> int | None:
    """The number of decimals (0-5) the values are written with, or None if they are not rounded."""
    for d in range(6):
        if np.all(np.abs(values - np.round(values, d)) <= 1e-6 * np.maximum(1.0, np.abs(values))):
            return d
    return None


def disagreement(mapped: Mapped) -> str | None:
    """Why the reference disagrees with the vector (float64 and float32 evaluations), or None.

    A vector written with d <= 5 decimals where the float64 result has more was rounded by hand (at times
    from inputs that were rounded afterwards): it is held to one unit of its last decimal, 10**-d.
    """
    exact = mapped.compute("float64")
    for dtype in ("float64", "float32"):
        results = exact if dtype == "float64" else mapped.compute(dtype)
        for index, (got, expected, bound, ours) in enumerate(zip(results, mapped.outputs, mapped.bounds, exact)):
            if got.shape != expected.shape:
                return f"output {index}: shape {got.shape}, but should be {expected.shape} ({dtype})"
            if bound is None:  # a selection (max pooling, indices): exact
                if not np.array_equal(got.astype(expected.dtype), expected, equal_nan=True):
                    return f"output {index} differs ({dtype}): {got.ravel()[:6]} vs {expected.ravel()[:6]}"
                continue
            terms, magnitude = bound
            tolerance = 2 * spec.elementwise_bound(magnitude, terms, "float32")
            written = decimals(expected.astype(np.float64))
            if written is not None and decimals(ours.astype(np.float64)) is None:
                tolerance = tolerance + 10.0**-written
                mapped.rounded += 1
            error = np.abs(got.astype(np.float64) - expected)
            if not (error <= tolerance).all():
                worst = int(np.argmax(error - tolerance))
                return (f"output {index} ({dtype}): |diff| {error.ravel()[worst]:.3g} > bound {np.ravel(tolerance)[worst]:.3g} "
                        f"at flat index {worst}")
    return None


def test_onnx_mapping_helpers() -> None:
    """The attribute mappings on their own, cheaply (no vectors)."""
    # n = 3, k = 3, s = 2: the full scatter has 7 positions.
    assert spec.onnx_conv_transpose_padding(3, 3, stride=2, output_shape=8) == ((0, 0), 1)
    assert spec.onnx_conv_transpose_padding(3, 3, stride=2, output_shape=6) == ((1, 0), 0)
    assert spec.onnx_conv_transpose_padding(3, 3, stride=2, output_shape=4) == ((2, 1), 0)
    assert spec.onnx_conv_transpose_padding(3, 3, stride=2, output_shape=4, auto_pad="SAME_UPPER") == ((1, 2), 0)
    assert decimals(np.array([0.1511, 2.0], dtype=np.float32).astype(np.float64)) == 4
    assert decimals(np.array([1 / 3])) is None


def test_reference_agrees_with_onnx_node_vectors() -> None:
    cases = collect()
    mapped: Counter[str] = Counter()
    skipped: Counter[tuple[str, str]] = Counter()
    failures = []
    for case in cases:
        result = map_case(case)
        if isinstance(result, str):
            assert result in UNMAPPABLE, f"{case.name}: unknown reason {result!r}"
            skipped[case.op, result] += 1
            continue
        mapped[case.op] += 1
        problem = disagreement(result)
        if problem is not None:
            failures.append(f"{case.name}: {problem}")
    assert not failures, "\n".join(failures)
    assert set(mapped) == set(MODULES), f"operations without a single mapped vector: {set(MODULES) - set(mapped)}"
    total = sum(mapped.values())
    assert total >= 60 and total >= 0.85 * len(cases), f"only {total} of {len(cases)} vectors mapped: {skipped}"
    # What cannot map is what the protocol lacks, nothing more.
    assert {op for op, _ in skipped} <= {"Gemm", "MaxPool"}, skipped


def _run_onnx_runtime(op: str, attrs: dict[str, Any], inputs: dict[str, Array], outputs: tuple[str, ...]) -> list[Array]:
    ort = pytest.importorskip("onnxruntime")
    helper, proto = onnx.helper, onnx.TensorProto
    graph = helper.make_graph(
        [helper.make_node(op, list(inputs), list(outputs), **attrs)], op,
        [helper.make_tensor_value_info(name, proto.FLOAT, a.shape) for name, a in inputs.items()],
        [helper.make_tensor_value_info(name, proto.FLOAT if i == 0 else proto.INT64, None) for i, name in enumerate(outputs)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(a) for a in session.run(None, inputs)]


@pytest.mark.parametrize(
    "attrs",
    [
        {"strides": [2], "output_shape": [6]},               # total padding 1: crop one at the start
        {"strides": [2], "output_shape": [4]},               # total 3: (2, 1)
        {"strides": [2], "output_shape": [8]},               # total -1: output_padding 1
        {"strides": [2], "auto_pad": "SAME_UPPER"},
        {"strides": [2], "auto_pad": "SAME_LOWER"},
        {"strides": [3], "pads": [2, 0], "output_padding": [2]},
        {"strides": [2], "group": 2},                        # C_in 4, C_out 6
        {"strides": [2, 1], "pads": [1, 0, 0, 2], "dilations": [1, 2], "group": 2},
    ],
)
def test_onnx_runtime_conv_transpose_agrees_with_the_mapping(attrs: dict[str, Any]) -> None:
    """spec.onnx_conv_transpose_padding against ONNX Runtime beyond the vectors: cropping output_shape, SAME_*,
    asymmetric pads, output_padding >= stride, and groups with C_in != C_out (where ONNX's own reference evaluator
    raises)."""
    ndim = len(attrs["strides"])
    rng = np.random.default_rng(len(str(attrs)))
    x = rng.standard_normal((2, 4, *(3,) * ndim)).astype(np.float32)
    w = rng.standard_normal((4, 3 if attrs.get("group") else 2, *(3,) * ndim)).astype(np.float32)
    if not attrs.get("group"):
        x, w = x[:, :1], w[:1]
    (got,) = _run_onnx_runtime("ConvTranspose", attrs, {"X": x, "W": w}, ("Y",))
    mapped = map_case(Vector("onnxruntime", "ConvTranspose", attrs, [x, w], [got]))
    assert isinstance(mapped, Mapped)
    assert disagreement(mapped) is None


@pytest.mark.parametrize("storage_order", [0, 1])
def test_onnx_runtime_max_pool_indices_agree_with_the_mapping(storage_order: int) -> None:
    """spec.onnx_max_pool_indices against ONNX Runtime on several planes (N·C > 1), ties, padding and dilation."""
    rng = np.random.default_rng(storage_order)
    x = rng.integers(-3, 4, (2, 3, 6, 7)).astype(np.float32)
    attrs = {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1], "dilations": [1, 2],
             "storage_order": storage_order}
    y, got = _run_onnx_runtime("MaxPool", attrs, {"X": x}, ("Y", "I"))
    kwargs = {"kernel_size": (3, 2), "stride": (2, 1), "padding": ((1, 1), (0, 1)), "dilation": (1, 2), "ceil_mode": False}
    np.testing.assert_array_equal(reference.max_pool_forward(x, **kwargs), y)
    ours = spec.onnx_max_pool_indices(reference.max_pool_indices(x, **kwargs), x.shape, storage_order=storage_order)
    np.testing.assert_array_equal(ours, got)


def test_onnx_runtime_rejects_output_padding_not_below_the_stride() -> None:
    """A divergence: the spec (with PyTorch) allows output_padding < max(stride, dilation); ONNX Runtime 1.x
    requires output_padding < stride and rejects stride 1, dilation 2, output_padding 1."""
    ort = pytest.importorskip("onnxruntime")
    x, w = np.ones((1, 1, 3), dtype=np.float32), np.ones((1, 1, 2), dtype=np.float32)
    attrs = {"strides": [1], "dilations": [2], "output_padding": [1]}
    params = spec.conv_transpose_params((3,), (2,), dilation=2, output_padding=1)
    assert reference.conv_transpose_forward(x, w, None, **params._asdict()).shape == (1, 1, 6)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="output_padding"):
        _run_onnx_runtime("ConvTranspose", attrs, {"X": x, "W": w}, ("Y",))

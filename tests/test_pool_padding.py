"""``spec.pool_padding_allowed`` against the frameworks whose limits it stands for, on a grid.

"half_kernel" must be exactly what PyTorch accepts (allowed => accepted, and nothing PyTorch accepts is left
out), and within what ONNX Runtime accepts. Tiny tensors: the whole grid takes well under a second.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import spec

KERNELS = range(1, 6)
DILATIONS = range(1, 4)
PADS = range(0, 5)


def _accepts(call: Callable[..., Any], *args: Any) -> bool:
    try:
        call(*args)
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_half_kernel_is_exactly_what_pytorch_accepts(rank: int) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    max_pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[rank - 1]
    avg_pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[rank - 1]
    x = torch.zeros((1, 1, *(13,) * rank), dtype=torch.float64)
    disagree = []
    for k, d, p in itertools.product(KERNELS, DILATIONS, PADS):
        allowed = spec.pool_padding_allowed("half_kernel", k, d, p, p)
        if _accepts(max_pool, x, k, 1, p, d) != allowed:
            disagree.append(("max_pool", k, d, p, allowed))
        if d == 1:  # PyTorch's average pooling has no dilation
            for include in (True, False):
                if _accepts(avg_pool, x, k, 1, p, False, include) != allowed:
                    disagree.append(("avg_pool", k, d, p, allowed))
    assert not disagree, disagree


def test_half_kernel_is_within_onnx_runtime() -> None:
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    x = np.zeros((1, 1, 13), np.float32)
    rejected = []
    for op, k, d in itertools.product(("MaxPool", "AveragePool"), KERNELS, DILATIONS):
        p = spec.pool_padding_limit("half_kernel", k, d)
        assert p is not None
        node = helper.make_node(op, ["x"], ["y"], kernel_shape=[k], pads=[p, p], dilations=[d])
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            rejected.append((op, k, d, p, str(exc)[:120]))
    assert not rejected, rejected


def test_any_allows_everything_and_asymmetric_pairs_are_judged_by_their_larger_side() -> None:
    assert all(spec.pool_padding_allowed("any", k, d, p, q)
               for k, d, p, q in itertools.product(KERNELS, DILATIONS, PADS, PADS))
    assert spec.pool_padding_allowed("half_kernel", 4, 3, 0, 2)
    assert not spec.pool_padding_allowed("half_kernel", 4, 3, 0, 3)
    with pytest.raises(spec.SpecError, match="pool_padding"):
        spec.pool_padding_limit("half", 3, 1)  # type: ignore[arg-type]


def _half_kernel_reference() -> SimpleNamespace:
    """The reference's pooling, declaring ``pool_padding="half_kernel"`` and refusing (by assertion) anything else."""
    import reference

    def check(x: Any, kernel_size: Any, stride: Any, dilation: Any, padding: Any) -> None:
        pairs = spec.resolve_padding(padding, x.shape[2:], kernel_size, stride, dilation)
        assert all(spec.pool_padding_allowed("half_kernel", k, d, lo, hi)
                   for k, d, (lo, hi) in zip(kernel_size, dilation, pairs)), (kernel_size, dilation, padding)

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **params: Any) -> Any:
            check(args[0], params["kernel_size"], params["stride"], params["dilation"], params["padding"])
            return function(*args, **params)
        return call

    functions = {name: wrap(getattr(reference, name))
                 for name in ("max_pool_forward", "max_pool_backward", "max_pool_indices", "avg_pool_forward",
                              "avg_pool_backward")}
    caps = spec.Capabilities(dtypes=["float64"], spatial_ranks=(1, 2), pool_padding="half_kernel")  # type: ignore[arg-type]
    return SimpleNamespace(CAPABILITIES=caps, **functions)


def test_every_rule_generates_pooling_padding_within_half_kernel() -> None:
    """Generation, the disputed points' padded cases, metamorphic relations and the large pool all ask the one
    definition: a backend declaring half_kernel is never called beyond it."""
    from conformance.loader import LoadedBackend
    from conformance.report import render_text
    from conformance.rules import RULES
    from conformance.runner import run

    backend = _half_kernel_reference()
    loaded = LoadedBackend("half-kernel", "tests.test_pool_padding", backend, spec.supported_functions(backend),
                           spec.capabilities_of(backend))
    ops: list[spec.OpName] = ["max_pool", "max_pool_indices", "avg_pool"]
    rules = [r for r in RULES if r.id != "invalid-params" and set(ops) & set(r.ops)]
    report = run(loaded, ops=ops, dtypes=["float64"], profile="quick", rules=rules)
    assert report.conformant and not report.failures, render_text(report)

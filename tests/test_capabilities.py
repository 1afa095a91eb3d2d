"""Capabilities that fit real libraries: any iterable where a set is meant, and ``supports(op, problem)``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import reference
import spec
from conformance.loader import LoadedBackend
from conformance.report import render_text, summary_table, to_markdown
from conformance.rules import RULES_BY_ID
from conformance.runner import run


def _loaded(obj: object) -> LoadedBackend:
    return LoadedBackend("limited", "tests.test_capabilities", obj, spec.supported_functions(obj),
                         spec.capabilities_of(obj))


def _limited_backend() -> SimpleNamespace:
    """The reference, minus what a library might lack: dilated strides (any direction), grouped backward."""
    def supports(op: str, problem: dict[str, Any]) -> str | None:
        params = problem["params"]
        if op == "conv" and max(params["stride"]) > 1 and max(params["dilation"]) > 1:
            return f"no stride > 1 together with dilation > 1 (stride={params['stride']})"
        if op == "conv" and problem["direction"] == "backward" and params["groups"] > 1:
            return "groups forward only"
        return None

    def conv_forward(x: Any, w: Any, b: Any, **p: Any) -> Any:
        assert supports("conv", {"params": p, "direction": "forward"}) is None, f"called outside supports(): {p}"
        return reference.conv_forward(x, w, b, **p)

    def conv_backward(x: Any, w: Any, dy: Any, **p: Any) -> Any:
        assert supports("conv", {"params": p, "direction": "backward"}) is None, f"called outside supports(): {p}"
        return reference.conv_backward(x, w, dy, **p)

    return SimpleNamespace(CAPABILITIES=spec.Capabilities(dtypes=["float64"], spatial_ranks=(1, 2)),  # type: ignore[arg-type]
                           supports=supports, conv_forward=conv_forward, conv_backward=conv_backward)


def test_the_suite_generates_within_supports_and_counts_what_it_declined() -> None:
    rules = [RULES_BY_ID[r] for r in ("output-shape", "forward-values", "backward-values", "finite-differences")]
    report = run(_loaded(_limited_backend()), ops=["conv"], dtypes=["float64"], profile="quick", rules=rules)
    text = render_text(report)
    assert report.conformant, text
    declined = {reason for r in report.results for reason in r.declined_reasons}
    assert "no stride > 1 together with dilation > 1" in declined, declined  # the details in parentheses dropped
    assert "backward: groups forward only" in declined, declined  # rules that need the backward skip those cases
    cells = [cell for row in summary_table(report)[1:] for cell in row[1:]]
    assert any(cell.startswith("pass (") and " declined: " in cell for cell in cells), cells
    assert " declined" in to_markdown(report)


def test_capabilities_accept_lists_and_tuples() -> None:
    caps = spec.Capabilities(dtypes=["float64"], spatial_ranks=(2,), count_include_pad=[True])  # type: ignore[arg-type]
    assert caps.dtypes == frozenset({"float64"}) and caps.spatial_ranks == frozenset({2})
    assert caps.count_include_pad == frozenset({True})
    assert caps == spec.Capabilities(dtypes=frozenset({"float64"}), spatial_ranks=frozenset({2}),
                                     count_include_pad=frozenset({True}))


def test_conv_and_pool_padding_switches_are_separate() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from conformance.strategies import problems

    caps = spec.Capabilities(asymmetric_padding=True, asymmetric_pool_padding=False)
    seen = {"conv": False}

    @settings(max_examples=60, database=None, deadline=None)
    @given(st.sampled_from(["conv", "max_pool", "avg_pool"]).flatmap(lambda op: problems(op, caps, "float64")))
    def check(problem: Any) -> None:
        asymmetric = any(lo != hi for lo, hi in problem.params["padding"])
        if problem.op == "conv":
            seen["conv"] |= asymmetric
        else:
            assert not asymmetric, problem.describe()

    check()
    assert seen["conv"], "asymmetric convolution padding was never generated"


def _problem(op: str, x_shape: tuple[int, ...], dtype: str, direction: str, **params: Any) -> dict[str, Any]:
    return {"op": op, "direction": direction, "dtype": dtype, "x_shape": x_shape, "w_shape": None, "bias": False,
            "params": params}


def test_built_in_adapters_declare_their_limits_through_supports() -> None:
    """Each declined case is one the adapter's own call refuses; a plain case is accepted."""
    import numpy as np
    import pytest

    torch_backend = pytest.importorskip("conformance.backends.torch_backend")
    pool = {"kernel_size": (2,), "stride": (1,), "dilation": (1,), "ceil_mode": False}
    declined = _problem("avg_pool", (1, 1, 4), "float64", "forward", **pool, padding=((1, 0),), count_include_pad=False)
    reason = torch_backend.supports("avg_pool", declined)
    assert reason is not None and "symmetric" in reason
    with pytest.raises(spec.UnsupportedError):
        torch_backend.avg_pool_forward(np.zeros((1, 1, 4)), **declined["params"])
    plain = _problem("avg_pool", (1, 1, 4), "float64", "forward", **pool, padding=((1, 1),), count_include_pad=False)
    assert torch_backend.supports("avg_pool", plain) is None

    ort_backend = pytest.importorskip("conformance.backends.onnxruntime_backend")
    big = _problem("max_pool", (1, 1, 8), "float32", "forward", kernel_size=(2,), stride=(1,), dilation=(3,),
                   ceil_mode=False, padding=((2, 2),))
    assert ort_backend.supports("max_pool", big) is not None
    with pytest.raises(spec.UnsupportedError):
        ort_backend.max_pool_forward(np.zeros((1, 1, 8), dtype=np.float32), **big["params"])


def test_supports_is_asked_in_the_worker_when_the_backend_lives_there() -> None:
    """With process isolation nothing of the backend is imported here: the worker answers supports()."""
    import argparse

    import pytest

    pytest.importorskip("torch")
    from conformance.runner import open_backend

    args = argparse.Namespace(isolation="process", timeout=20.0, memory_limit=4096, import_timeout=120.0)
    backend, caller, _ = open_backend("torch", args)
    try:
        assert not backend.in_process
        pool = {"kernel_size": (2,), "stride": (1,), "dilation": (1,), "ceil_mode": False, "count_include_pad": False}
        declined = _problem("avg_pool", (1, 1, 4), "float64", "forward", **pool, padding=((1, 0),))
        reason = caller.supports("avg_pool", declined)  # type: ignore[attr-defined]
        assert isinstance(reason, str) and "symmetric" in reason
        assert caller.supports("avg_pool", {**declined, "params": {**pool, "padding": ((1, 1),)}}) is None  # type: ignore[attr-defined]
    finally:
        caller.close()

"""Findings a kernel author can act on: distinct findings, root causes first, causes named, Markdown-safe text."""

from __future__ import annotations

import faulthandler
from typing import Any

import numpy as np

import reference
from conformance.compare import Violation
from conformance.diagnose import missing_nan_summary
from conformance.findings import Finding, features, root_causes, signature
from conformance.report import markdown_cell
from conformance.strategies import Case, Inputs, Problem


def _pool_case(op: str, x: np.ndarray[Any, Any], **params: Any) -> Case:
    problem = Problem(op, "float64", tuple(x.shape), None, False, params)  # type: ignore[arg-type]
    return Case(problem, Inputs(x, None, None, np.zeros(problem.output_shape()), "floats"))


def _conv(stride: int = 1, dilation: int = 1, n: int = 1) -> Problem:
    return Problem("conv", "float64", (n, 1, 6), (1, 1, 2), False,
                   {"stride": (stride,), "padding": ((0, 0),), "dilation": (dilation,), "groups": 1})


def test_a_missing_nan_names_its_cause() -> None:
    pool = {"kernel_size": (2,), "stride": (2,), "dilation": (1,), "ceil_mode": False}
    # A window entirely in padding: average pooling's 0/0, not a dropped NaN.
    empty = _pool_case("avg_pool", np.array([[[1.0, 2.0]]]), kernel_size=(1,), stride=(1,), padding=((1, 1),),
                       dilation=(1,), ceil_mode=False, count_include_pad=False)
    want = reference.avg_pool_forward(empty.inputs.x, **empty.problem.params)
    text = missing_nan_summary(empty, np.nan_to_num(want), want, (0, 0, 0))
    assert "entirely in padding" in text and "dropped" not in text, text
    # Windows misplaced (all padding after the input): the NaN shows one output early.
    shifted = _pool_case("max_pool", np.array([[[1.0, np.nan, 2.0, 3.0]]]), padding=((1, 1),), **pool)
    want = reference.max_pool_forward(shifted.inputs.x, **shifted.problem.params)
    y = reference.max_pool_forward(shifted.inputs.x, **{**shifted.problem.params, "padding": ((0, 2),)})
    text = missing_nan_summary(shifted, y, want, (0, 0, 1))
    assert "misplaced" in text and "dropped" not in text, text
    # A NaN really dropped (fmax).
    text = missing_nan_summary(shifted, np.nan_to_num(want, nan=1.0), want, (0, 0, 1))
    assert text.startswith("a NaN or infinity in x was dropped") and "np.float64" not in text, text


def test_a_finding_covers_its_repeats_with_more_parameters_only() -> None:
    case = Case(_conv(dilation=2), Inputs(np.zeros((1, 1, 6)), np.zeros((1, 1, 2)), None, np.zeros((1, 1, 4)), "floats"))
    found = signature(Violation("backward-values", "dw differs from the expected value", case))
    bigger = Case(_conv(stride=2, dilation=2, n=2), case.inputs)
    other = Case(_conv(stride=2), case.inputs)
    assert found.covers(Violation("backward-values", "dw differs from the expected value", bigger))
    assert not found.covers(Violation("backward-values", "dw differs from the expected value", other))
    assert not found.covers(Violation("backward-values", "db differs from the expected value", bigger))
    assert features(bigger.problem) == {"stride", "dilation", "N>1"}


def test_root_causes_put_the_simplest_first_and_group_shared_parameters() -> None:
    def finding(problem: Problem, summary: str, function: str) -> Finding:
        return Finding(Violation("r", summary, Case(problem, Inputs(np.zeros(1), None, None, np.zeros(1), "floats"))),
                       function)

    causes = root_causes([
        ("backward-values", "conv", "float64", finding(_conv(dilation=2), "dw differs", "conv_backward")),
        ("forward-values", "conv", "float64", finding(_conv(stride=2), "y differs", "conv_forward")),
        ("adjoint", "conv", "float32", finding(_conv(stride=2), "dx is not the adjoint", "conv_backward")),
        ("forward-values", "conv", "float32", finding(_conv(stride=2), "y differs", "conv_forward")),
    ])
    assert [sorted(c.features) for c in causes] == [["stride"], ["dilation"]]
    assert causes[0].members[0][2].function == "conv_forward"  # forward before backward within a cause
    assert "2 more row(s)" in causes[0].headline()


def test_markdown_cells_stay_on_one_line() -> None:
    assert markdown_cell("raised ValueError: a | b\n  second line") == "raised ValueError: a \\| b second line"


def test_a_hang_snippet_builds_large_inputs_from_a_seeded_generator() -> None:
    from conformance.invoke import CallOutcome
    from conformance.snippets import RecordedCall, reproduction

    x = np.random.default_rng(0).standard_normal((2, 3, 50))
    x[1, 2, 7] = np.nan
    w = np.ones((1, 3, 3))
    params = {"stride": (1,), "padding": ((0, 0),), "dilation": (1,), "groups": 1}
    hung = RecordedCall("conv_forward", [x, w, None], params, CallOutcome("conv_forward", timed_out=2.0))
    lines, bad, problem = reproduction([hung], "import reference as backend")
    assert bad is hung and problem is not None and "did not return within 2 s" in problem, problem
    text = "\n".join(lines)
    assert len(text) < 1200 and "np.random.default_rng(" in text, text  # not 300 values
    assert "x.flat[[257]] = [nan]" in text, text  # the NaN, which may be what hangs, is kept
    assert "w = np.array([1, 1," in text, text  # a small array is still written out
    # The script runs as printed (here against the reference, which returns: exit 0).
    namespace: dict[str, Any] = {}
    try:
        exec(compile(text, "<snippet>", "exec"), namespace)
    finally:
        faulthandler.cancel_dump_traceback_later()  # the snippet's watchdog would end this test process
    assert namespace["x"].shape == x.shape and np.isnan(namespace["x"][1, 2, 7]), namespace["x"]


def test_a_value_failure_prints_the_digits_that_differ_and_a_finite_ulp_error() -> None:
    from conformance.compare import Bound, compare

    problem = Problem("linear", "float32", (1, 2), (2, 2), False, {})
    case = Case(problem, Inputs(np.ones((1, 2)), np.ones((2, 2)), None, np.ones((1, 2)), "floats"))
    expected = np.array([[-1 / 3, 0.0]])
    actual = np.array([[np.float32(-1 / 3) + np.float32(2.0 ** -25), 0.5]], dtype=np.float32)
    try:
        compare("forward-values", "y", actual, expected, Bound(np.full((1, 2), 1e-9)), case, [])
    except Violation as violation:
        text = "\n".join(violation.details)
    else:
        raise AssertionError("no violation")
    assert "expected 0.0, actual 0.5, |error| 0.5 (8.39e+06 ulp of float32 at the actual value)" in text, text
    arrays = [line.split("=", 1)[1].strip() for line in text.splitlines() if line.strip().startswith(("expected y", "actual"))]
    assert len(arrays) == 2 and "-0.3333333333333333," in arrays[0] and "-0.3333333," in arrays[1], text  # 6 digits tie
    assert "np." not in text, text

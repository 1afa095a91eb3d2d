"""Findings a kernel author can act on: distinct findings, root causes first, causes named, Markdown-safe text."""

from __future__ import annotations

import faulthandler
import os
from typing import Any

import numpy as np
import pytest

import reference
import spec
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


def test_a_value_snippet_packs_a_large_input_exactly_and_runs_as_printed() -> None:
    """A large-shapes case holds 10^5 values: the snippet packs their bytes instead of 400 KB of digits."""
    import reference
    from conformance.invoke import CallOutcome
    from conformance.snippets import RecordedCall, compact_literal, reproduction

    x = (np.random.default_rng(0).integers(1, 4, (1, 33, 65, 65))).astype(np.float32)
    x[0, 3, 4, 5] = np.nan
    params = {"output_size": (1, 1)}
    wrong = reference.adaptive_max_pool_forward(x, **params) + np.float32(1)  # a forward one off everywhere
    bad = RecordedCall("adaptive_max_pool_forward", [x], params, CallOutcome("adaptive_max_pool_forward", result=wrong))
    lines, found, problem = reproduction([bad], "import reference as backend")
    assert found is bad and problem is not None, problem
    text = "\n".join(lines)
    literal = len(compact_literal(x))  # what the snippet used to print for x alone
    assert len(text) < literal / 5 and "np.frombuffer(zlib.decompress(base64.b64decode(" in text, (len(text), literal)
    assert "# x: 139425 values of float32, from 1 to 3; 1 NaN or infinite" in text, text[:600]
    namespace: dict[str, Any] = {}
    exec(compile(text, "<snippet>", "exec"), namespace)  # against the reference: it passes, so it returns
    assert np.array_equal(namespace["x"], x, equal_nan=True) and namespace["x"].dtype == x.dtype


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


# ---------------------------------------------------------------------------------------------------------------------
# Divergences of docs/findings.md reproduced by one direct framework call each (no adapter, no suite): each asserts
# the divergence still exists in the installed version, so it fails once the framework fixes it. Skipped only when
# the framework is not installed.
# ---------------------------------------------------------------------------------------------------------------------


def _tf(*, onednn: bool = False) -> Any:
    tf = pytest.importorskip("tensorflow")
    if onednn and os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        pytest.skip("F11 is oneDNN's: TF_ENABLE_ONEDNN_OPTS=0 takes TensorFlow's own kernels")
    return tf


def test_F11_tensorflow_float32_convolution_of_an_empty_batch_returns_x() -> None:
    """oneDNN's float32 Conv returns its input for N = 0: shape (0, 3, 1), where CONV-C9 gives (0, 2, 4)."""
    tf = _tf(onednn=True)
    want = reference.conv_forward(np.zeros((0, 1, 3)), np.ones((4, 1, 2)), None, stride=(1,), padding=((0, 0),),
                                  dilation=(1,), groups=1)
    assert want.shape == (0, 4, 2)
    got = tf.nn.conv1d(tf.zeros((0, 3, 1), tf.float32), tf.ones((2, 1, 4), tf.float32), 1, "VALID")
    assert tuple(got.shape) == (0, 3, 1), f"shape {tuple(got.shape)}: F11 no longer reproduces (NWC (0, 2, 4) is due)"


def test_F12_tensorflow_conv3d_weight_gradient_reads_an_input_no_window_reads() -> None:
    """Conv3D, stride 2, kernel 1 over [3, -inf]: only x[0] is read, dw = 3; TensorFlow's float64 dw is NaN."""
    tf = _tf()
    x = np.array([3.0, -np.inf]).reshape(1, 1, 1, 1, 2)
    params = {"stride": (1, 1, 2), "padding": ((0, 0),) * 3, "dilation": (1, 1, 1), "groups": 1}
    assert reference.conv_backward(x, np.full((1, 1, 1, 1, 1), 2.0), np.ones((1, 1, 1, 1, 1)), **params)[1].item() == 3
    w = tf.constant(np.full((1, 1, 1, 1, 1), 2.0))
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = tf.nn.conv3d(tf.constant(x.reshape(1, 1, 1, 2, 1)), w, [1, 1, 1, 2, 1], "VALID")
    dw = float(tape.gradient(y, w).numpy().ravel()[0])
    assert np.isnan(dw), f"dw={dw}: F12 no longer reproduces for Conv3D"


def test_J5_jax_convolution_computes_on_integer_arrays() -> None:
    """lax.conv_general_dilated keeps the integer dtype (CONV-C2: float16, float32, float64 only)."""
    pytest.importorskip("jax")
    from jax import lax
    from jax import numpy as jnp

    with pytest.raises(spec.SpecError):
        reference.conv_forward(np.ones((1, 1, 3), np.int32), np.ones((1, 1, 2), np.int32), None, stride=(1,),
                               padding=((0, 0),), dilation=(1,), groups=1)
    y = lax.conv_general_dilated(jnp.ones((1, 1, 3), jnp.int32), jnp.ones((1, 1, 2), jnp.int32), (1,), [(0, 0)])
    assert str(y.dtype) == "int32" and np.asarray(y).tolist() == [[[2, 2]]], f"{y.dtype} {y}: J5 no longer reproduces"


def test_F13_tensorflow_gradient_takes_a_dy_of_another_shape() -> None:
    """LINEAR-C5: dy must have y's shape; GradientTape broadcasts a (1, 4) dy for a (2, 4) y and returns a (1, 3) dx."""
    tf = _tf()
    with pytest.raises(spec.SpecError):
        reference.linear_backward(np.ones((2, 3)), np.ones((4, 3)), np.ones((1, 4)))
    x = tf.ones((2, 3), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.matmul(x, tf.ones((4, 3), tf.float64), transpose_b=True)
    dx = tape.gradient(y, x, output_gradients=tf.ones((1, 4), tf.float64))
    assert tuple(dx.shape) == (1, 3), f"dx.shape={tuple(dx.shape)}: F13 no longer reproduces (dy shape accepted)"


#: x = [nan, 1, 2], w = [1, 1], padding 1, dy = ones: x[0]'s tap 0 lands at -1, cropped (T17, F14).
_CROPPED_NAN = {"stride": (1,), "padding": ((1, 1),), "output_padding": (0,), "dilation": (1,), "groups": 1}


def _spec_dw_at_a_cropped_nan() -> None:
    x, w = np.array([[[np.nan, 1.0, 2.0]]]), np.ones((1, 1, 2))
    dw = reference.conv_transpose_backward(x, w, np.ones((1, 1, 2)), **_CROPPED_NAN)[1]
    assert dw[0, 0, 0] == 3.0 and np.isnan(dw[0, 0, 1]), f"dw={dw.tolist()}: CONVT-C15 gives [3, nan]"


def test_T17_torch_transposed_convolution_dw_takes_a_nan_through_a_cropped_tap() -> None:
    """CONVT-C15: the cropped tap has no dy, so dw = [3, nan]; PyTorch multiplies the NaN by a padding zero."""
    torch = pytest.importorskip("torch")
    _spec_dw_at_a_cropped_nan()
    w = torch.ones(1, 1, 2, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv_transpose1d(torch.tensor([[[np.nan, 1.0, 2.0]]], dtype=torch.float64), w, padding=1)
    (dw,) = torch.autograd.grad(y, w, torch.ones_like(y))
    assert np.isnan(dw.numpy()).all(), f"dw={dw.tolist()}: T17 no longer reproduces"


def test_F14_tensorflow_transposed_convolution_dw_takes_a_nan_through_a_cropped_tap() -> None:
    """As T17, with TensorFlow's own explicit padding (not the adapter's crop): dw = [nan, nan], where [3, nan] is due."""
    tf = _tf()
    _spec_dw_at_a_cropped_nan()
    w = tf.constant(np.ones((1, 2, 1, 1)))
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = tf.nn.conv2d_transpose(tf.constant(np.array([np.nan, 1.0, 2.0]).reshape(1, 1, 3, 1)), w, [1, 1, 2, 1], 1,
                                   [[0, 0], [0, 0], [1, 1], [0, 0]])
    dw = tape.gradient(y, w, output_gradients=tf.ones_like(y)).numpy().ravel()
    assert np.isnan(dw).all(), f"dw={dw.tolist()}: F14 no longer reproduces"

"""The built-in framework adapters translate the protocol faithfully.

Three kinds of check, for each of torch, jax, tensorflow and onnxruntime:

* tiny hand-checked cases, one per translation rule (asymmetric padding, ceil
  mode, count_include_pad, dilation, groups, SAME-style padding), compared
  with hand-computed numbers and with ``reference``; where an adapter cannot
  express a case it must raise ``spec.UnsupportedError``, and the table below
  says exactly where;
* ~24 random configurations per adapter, forward and backward, against
  ``reference`` — generated where the frameworks agree with the spec (every
  window holds a real element, no ties), since the point is the translation,
  not the frameworks' divergences;
* the protocol's shape: functions, signatures, CAPABILITIES, dtypes, fresh
  arrays, invalid parameters raising;
* the newer operations (transposed convolution, max-pool indices, adaptive
  pooling): fixed float64 configurations (float32 for ONNX Runtime) against
  the reference and hand-computed values, each framework's declines with the
  reason its ``supports`` gives, and the rejections its framework makes on
  valid calls (findings in docs/findings.md).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import reference
import spec
from conformance.loader import load_backend
from spec.accuracy import dtype_info

#: Adapter name -> the modules it needs (importorskip guards against an absent framework only).
FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "jax": ("jax",),
    "tensorflow": ("tensorflow",),
    "onnxruntime": ("onnxruntime", "onnx"),
}
#: The float dtype each adapter is checked in (ONNX Runtime has no float64 Conv / AveragePool).
CHECK_DTYPE: dict[str, type[np.floating[Any]]] = {
    "torch": np.float64, "jax": np.float64, "tensorflow": np.float64, "onnxruntime": np.float32,
}
TOLERANCE: dict[type[np.floating[Any]], float] = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.fixture(scope="module", params=sorted(FRAMEWORKS))
def adapter(request: pytest.FixtureRequest) -> tuple[str, ModuleType]:
    name: str = request.param
    for module in FRAMEWORKS[name]:
        pytest.importorskip(module)
    return name, importlib.import_module(f"conformance.backends.{name}_backend")


def assert_close(actual: Any, expected: Any, dtype: type[np.floating[Any]], context: str) -> None:
    __tracebackhide__ = True
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"out.shape={actual.shape}, but should be {expected.shape} [{context}]"
    assert actual.dtype == np.dtype(dtype), f"out.dtype={actual.dtype}, but should be {np.dtype(dtype)} [{context}]"
    tol = TOLERANCE[dtype]
    if not np.allclose(actual, expected, rtol=tol, atol=tol, equal_nan=True):
        bad = np.argwhere(~np.isclose(actual, expected, rtol=tol, atol=tol, equal_nan=True))[0]
        at = tuple(int(i) for i in bad)
        raise AssertionError(
            f"out[{at}]={actual[at]!r}, but should be {expected[at]!r} (rtol=atol={tol}) [{context}]\n"
            f"out={actual.tolist()}\nexpected={expected.tolist()}"
        )


# ---------------------------------------------------------------------------------------------------------------------
# Hand-checked cases
# ---------------------------------------------------------------------------------------------------------------------


def row(*values: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A (N=1, C=1, W) signal."""
    return np.array(values, dtype=np.float64).reshape(1, 1, -1)


def pool1d(k: int, s: int, pad: tuple[int, int] = (0, 0), d: int = 1, ceil: bool = False) -> dict[str, Any]:
    return {"kernel_size": (k,), "stride": (s,), "padding": (pad,), "dilation": (d,), "ceil_mode": ceil}


def conv1d(s: int = 1, pad: tuple[int, int] = (0, 0), d: int = 1, groups: int = 1) -> dict[str, Any]:
    return {"stride": (s,), "padding": (pad,), "dilation": (d,), "groups": groups}


X9 = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


@dataclass(frozen=True)
class HandCase:
    """One protocol call with its hand-computed result."""

    name: str
    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    expected: tuple[list[Any], ...]
    #: Adapters that must raise spec.UnsupportedError for this case, and why.
    unsupported: dict[str, str] = field(default_factory=dict)


HAND_CASES = [
    # Convolution -------------------------------------------------------------------------------------------------
    # [0 | 1 2 3 4 | 0 0] correlated with [1, 10]: 0+10, 1+20, 2+30, 3+40, 4+0, 0+0
    HandCase("conv asymmetric padding", "conv_forward", (row(1, 2, 3, 4), row(1, 10), None), conv1d(pad=(1, 2)),
             ([[[10, 21, 32, 43, 4, 0]]],)),
    # dilation 2 reads x[i] and x[i + 2]: 1+30, 2+40, 3+50, plus the bias 0.5
    HandCase("conv dilation + bias", "conv_forward", (row(1, 2, 3, 4, 5), row(1, 10), np.array([0.5])), conv1d(d=2),
             ([[[31.5, 42.5, 53.5]]],)),
    # stride 2 with dilation 2: windows at 0 and 2 only
    HandCase("conv dilation + stride", "conv_forward", (row(1, 2, 3, 4, 5), row(1, 10), None), conv1d(s=2, d=2),
             ([[[31, 53]]],), unsupported={"tensorflow": "tf.nn.convolution rejects strides > 1 with dilation > 1"}),
    # groups=2: channel 0 scaled by 2, channel 1 by 3
    HandCase("conv groups", "conv_forward",
             (np.array([[[1.0, 2, 3], [10, 20, 30]]]), np.array([[[2.0]], [[3.0]]]), None), conv1d(groups=2),
             ([[[2, 4, 6], [30, 60, 90]]],)),
    # x = [1 2 3] with [1, 10], dy = [1, 1]: dx = [1, 11, 10], dw = [1+2, 2+3], db = [2]
    HandCase("conv backward", "conv_backward", (row(1, 2, 3), row(1, 10), row(1, 1)), conv1d(),
             ([[[1, 11, 10]]], [[[3, 5]]], [2])),
    HandCase("conv backward groups", "conv_backward",
             (np.array([[[1.0, 2], [10, 20]]]), np.array([[[2.0]], [[3.0]]]), np.array([[[1.0, 1], [1, 2]]])),
             conv1d(groups=2),
             ([[[2, 2], [3, 6]]], [[[3]], [[50]]], [2, 3]),
             unsupported={"tensorflow": "TensorFlow has no CPU gradient for grouped convolutions"}),
    # "same" for 3x3 with a 2x2 kernel pads (0, 1): sums of 2x2 blocks, cut at the bottom / right
    HandCase("conv SAME (pad after)", "conv_forward", (X9, np.ones((1, 1, 2, 2)), None),
             {"stride": (1, 1), "padding": ((0, 1), (0, 1)), "dilation": (1, 1), "groups": 1},
             ([[[[12, 16, 9], [24, 28, 15], [15, 17, 9]]]],)),
    # "same_lower" pads (1, 0): sums of 2x2 blocks ending at each position
    HandCase("conv SAME_LOWER (pad before)", "conv_forward", (X9, np.ones((1, 1, 2, 2)), None),
             {"stride": (1, 1), "padding": ((1, 0), (1, 0)), "dilation": (1, 1), "groups": 1},
             ([[[[1, 3, 5], [5, 12, 16], [11, 24, 28]]]],)),
    # Max pooling -------------------------------------------------------------------------------------------------
    # all-negative input: a 0-filled pad would win. Windows [pad, -1], [-2, -3]
    HandCase("max asymmetric padding", "max_pool_forward", (row(-1, -2, -3, -4),), pool1d(2, 2, (1, 0)),
             ([[[-1, -2]]],)),
    HandCase("max asymmetric padding backward", "max_pool_backward", (row(-1, -2, -3, -4), row(1, 10)),
             pool1d(2, 2, (1, 0)), ([[[1, 10, 0, 0]]],)),
    # ceil mode: windows at 0, 2, 4; the last holds one element
    HandCase("max ceil mode", "max_pool_forward", (row(1, 5, 2, 4, 3),), pool1d(2, 2, ceil=True), ([[[5, 4, 3]]],)),
    HandCase("max ceil mode backward", "max_pool_backward", (row(1, 5, 2, 4, 3), row(1, 2, 3)),
             pool1d(2, 2, ceil=True), ([[[0, 1, 0, 2, 3]]],)),
    # ceil mode drops its extra window if it would start in the after-padding: 3 windows (at -1, 1, 3), not 4
    HandCase("max ceil mode drops padding window", "max_pool_forward", (row(1, 2, 3, 4, 5),),
             pool1d(2, 2, (1, 1), ceil=True), ([[[1, 3, 5]]],)),
    # the same rule with padding only after: 2 windows (at 0 and 2), not 3
    HandCase("max ceil mode, after-padding only", "max_pool_forward", (row(1, 2, 3, 4),),
             pool1d(2, 2, (0, 1), ceil=True), ([[[2, 4]]],)),
    # dilation 2: max of x[i], x[i + 2]
    HandCase("max dilation", "max_pool_forward", (row(1, 5, 2, 4, 3),), pool1d(2, 1, d=2), ([[[2, 5, 3]]],)),
    HandCase("max dilation backward", "max_pool_backward", (row(1, 5, 2, 4, 3), row(1, 10, 100)), pool1d(2, 1, d=2),
             ([[[0, 10, 1, 0, 100]]],), unsupported={"jax": "JAX has no VJP for a dilated max pool"}),
    # SAME for 5 with k=3, s=2 is (1, 1)
    HandCase("max SAME", "max_pool_forward", (row(-1, -2, -3, -4, -5),), pool1d(3, 2, (1, 1)), ([[[-1, -2, -4]]],)),
    # Average pooling ---------------------------------------------------------------------------------------------
    # windows [0 1 2], [2 3 4], [4 5 0]: divisor 3 with the padding, (2, 3, 2) without
    HandCase("avg count_include_pad=True", "avg_pool_forward", (row(1, 2, 3, 4, 5),),
             {**pool1d(3, 2, (1, 1)), "count_include_pad": True}, ([[[1, 3, 3]]],)),
    HandCase("avg count_include_pad=False (= SAME)", "avg_pool_forward", (row(1, 2, 3, 4, 5),),
             {**pool1d(3, 2, (1, 1)), "count_include_pad": False}, ([[[1.5, 3, 4.5]]],)),
    HandCase("avg count_include_pad=True backward", "avg_pool_backward", (row(1, 2, 3, 4, 5), row(3, 6, 9)),
             {**pool1d(3, 2, (1, 1)), "count_include_pad": True}, ([[[1, 3, 2, 5, 3]]],)),
    # ceil mode: the last window [5] is divided by 1, not 2 (the overhang is not padding)
    HandCase("avg ceil-mode divisor", "avg_pool_forward", (row(1, 2, 3, 4, 5),),
             {**pool1d(2, 2, ceil=True), "count_include_pad": True}, ([[[1.5, 3.5, 5]]],),
             unsupported={"tensorflow": "no ceil mode: the overhang cannot be left out of the divisor"}),
    # asymmetric: windows [pad 1], [2 3]
    HandCase("avg asymmetric padding, include", "avg_pool_forward", (row(1, 2, 3, 4),),
             {**pool1d(2, 2, (1, 0)), "count_include_pad": True}, ([[[0.5, 2.5]]],)),
    HandCase("avg asymmetric padding, exclude", "avg_pool_forward", (row(1, 2, 3, 4),),
             {**pool1d(2, 2, (1, 0)), "count_include_pad": False}, ([[[1, 2.5]]],),
             unsupported={"torch": "symmetric padding only: explicit zeros would be counted",
                          "tensorflow": "only SAME padding leaves the padding out of the divisor"}),
    HandCase("avg dilation", "avg_pool_forward", (row(1, 2, 3, 4, 5),),
             {**pool1d(2, 1, d=2), "count_include_pad": True}, ([[[2, 3, 4]]],),
             unsupported={"torch": "avg_pool has no dilation"}),
    # Linear ------------------------------------------------------------------------------------------------------
    HandCase("linear", "linear_forward",
             (np.array([[1.0, 2]]), np.array([[1.0, 0], [0, 1], [1, 1]]), np.array([0.0, 10, 100])), {},
             ([[1, 12, 103]],)),
    HandCase("linear backward", "linear_backward",
             (np.array([[1.0, 2]]), np.array([[1.0, 0], [0, 1], [1, 1]]), np.array([[1.0, 2, 3]])), {},
             ([[4, 5]], [[1, 2], [2, 4], [3, 6]], [1, 2, 3])),
]


@pytest.mark.parametrize("case", HAND_CASES, ids=[c.name for c in HAND_CASES])
def test_hand_checked(adapter: tuple[str, ModuleType], case: HandCase) -> None:
    name, backend = adapter
    function: Callable[..., Any] | None = getattr(backend, case.function, None)
    if function is None:  # ONNX Runtime is forward only: it must lack exactly the backward functions
        assert name == "onnxruntime" and case.function.endswith("_backward"), f"{name} lacks {case.function}"
        return
    dtype = CHECK_DTYPE[name]
    args = tuple(None if a is None else a.astype(dtype) for a in case.args)
    if name in case.unsupported:
        with pytest.raises(spec.UnsupportedError):
            function(*args, **case.kwargs)
        return
    out = function(*args, **case.kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    ref = getattr(reference, case.function)(*args, **case.kwargs)
    refs = ref if isinstance(ref, tuple) else (ref,)
    assert len(outs) == len(case.expected), f"len(out)={len(outs)}, but should be {len(case.expected)} [{case.name}]"
    for i, (got, want, from_reference) in enumerate(zip(outs, case.expected, refs)):
        assert_close(from_reference, np.array(want, dtype=dtype), dtype, f"reference, {case.name}, output {i}")
        assert_close(got, np.array(want, dtype=dtype), dtype, f"{name}.{case.function}, {case.name}, output {i}")


# ---------------------------------------------------------------------------------------------------------------------
# Random configurations against the reference
# ---------------------------------------------------------------------------------------------------------------------


def _random_pool_padding(rng: np.random.Generator, kernel: tuple[int, ...], dilation: tuple[int, ...],
                         caps: spec.Capabilities) -> spec.Padding:
    """At most half the dilated kernel per side, so that every window holds a real element, and within the
    backend's ``pool_padding``."""
    pads = []
    for k, d in zip(kernel, dilation):
        limit = spec.pool_padding_limit(caps.pool_padding, k, d)
        half = (d * (k - 1) + 1) // 2 if limit is None else min(limit, (d * (k - 1) + 1) // 2)
        lo, hi = (int(v) for v in rng.integers(0, half + 1, 2))
        pads.append((lo, lo) if not caps.asymmetric_pool_padding else (lo, hi))
    return tuple(pads)


def _random_case(rng: np.random.Generator, op: str, caps: spec.Capabilities, dtype: type[np.floating[Any]],
                 ) -> tuple[str, tuple[Any, ...], str, tuple[Any, ...], dict[str, Any]]:
    """(forward name, forward args, backward name, backward args, kwargs) of one random valid configuration.

    Spatial sizes are at least the dilated kernel and strides at most the kernel,
    so every window holds a real element; values are continuous, so maxima are unique.
    """
    ndim = int(rng.choice(sorted(caps.spatial_ranks)))
    batch = int(rng.integers(1, 3))
    kernel = tuple(int(v) for v in rng.integers(2, 4, ndim))
    stride = tuple(int(rng.integers(1, k + 1)) for k in kernel)
    dilation = (1,) * ndim
    if op == "linear":
        x, w = rng.standard_normal((batch, 5)), rng.standard_normal((3, 5))
        return ("linear_forward", (x.astype(dtype), w.astype(dtype), rng.standard_normal(3).astype(dtype)),
                "linear_backward", (x.astype(dtype), w.astype(dtype), rng.standard_normal((batch, 3)).astype(dtype)), {})
    allowed_dilation = {"conv": caps.dilation, "max_pool": caps.max_pool_dilation, "avg_pool": caps.avg_pool_dilation}
    if allowed_dilation[op] and rng.random() < 0.5:
        dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
    spatial = tuple(d * (k - 1) + 1 + int(rng.integers(0, 4)) for k, d in zip(kernel, dilation))
    if op == "conv":
        groups = int(rng.choice([1, 2])) if caps.groups else 1
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        padding = tuple(
            (int(lo), int(lo) if not caps.asymmetric_padding else int(hi)) for lo, hi in rng.integers(0, 3, (ndim, 2))
        )
        x = rng.standard_normal((batch, c_in, *spatial)).astype(dtype)
        w = rng.standard_normal((c_out, c_in // groups, *kernel)).astype(dtype)
        kwargs: dict[str, Any] = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        out = spec.conv_output_shape(x, w, None, **kwargs)
        dy = rng.standard_normal(out).astype(dtype)
        return "conv_forward", (x, w, rng.standard_normal(c_out).astype(dtype)), "conv_backward", (x, w, dy), kwargs
    padding = _random_pool_padding(rng, kernel, dilation, caps)
    kwargs = {"kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation,
              "ceil_mode": bool(caps.ceil_mode and rng.random() < 0.5)}
    x = rng.standard_normal((batch, 2, *spatial)).astype(dtype)
    dy = rng.standard_normal(spec.pool_output_shape(x, **kwargs)).astype(dtype)
    if op == "avg_pool":
        kwargs["count_include_pad"] = bool(rng.choice(sorted(caps.count_include_pad)))
    return f"{op}_forward", (x,), f"{op}_backward", (x, dy), kwargs


def test_random_configurations_match_reference(adapter: tuple[str, ModuleType]) -> None:
    """~24 random valid configurations (6 per operation), forward and backward, against the reference."""
    name, backend = adapter
    caps = spec.capabilities_of(backend)
    dtype = CHECK_DTYPE[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    ran: dict[str, int] = {}
    unsupported: list[str] = []
    for attempt in range(200):
        op = ("conv", "max_pool", "avg_pool", "linear")[attempt % 4]
        if ran.get(op, 0) >= 6:
            continue
        forward, forward_args, backward, backward_args, kwargs = _random_case(rng, op, caps, dtype)
        context = f"{name}, {op}, x.shape={forward_args[0].shape}, {kwargs}"
        try:
            out = getattr(backend, forward)(*forward_args, **kwargs)
            grads = getattr(backend, backward)(*backward_args, **kwargs) if hasattr(backend, backward) else None
        except spec.UnsupportedError as exc:
            unsupported.append(f"{context}: {exc}")
            continue
        assert_close(out, getattr(reference, forward)(*forward_args, **kwargs), dtype, f"{forward}, {context}")
        if grads is not None:
            expected = getattr(reference, backward)(*backward_args, **kwargs)
            for i, (got, want) in enumerate(zip(grads if isinstance(grads, tuple) else (grads,),
                                                 expected if isinstance(expected, tuple) else (expected,))):
                assert_close(got, want, dtype, f"{backward} output {i}, {context}")
        ran[op] = ran.get(op, 0) + 1
    assert all(ran.get(op, 0) >= 4 for op in ("conv", "max_pool", "avg_pool", "linear")), (
        f"ran={ran}, but should be >= 4 per operation; unsupported:\n" + "\n".join(unsupported)
    )


# ---------------------------------------------------------------------------------------------------------------------
# The protocol's shape
# ---------------------------------------------------------------------------------------------------------------------


def test_functions_and_signatures_follow_the_protocol(adapter: tuple[str, ModuleType]) -> None:
    name, backend = adapter
    functions = spec.supported_functions(backend)
    original = {f"{op}_{direction}" for op in ("conv", "max_pool", "avg_pool", "linear")
                for direction in ("forward", "backward")}
    if name == "onnxruntime":
        original = {f for f in original if f.endswith("_forward")}
    # The protocol's functions this adapter has: the new operations' only where the framework has them.
    expected = set(spec.FUNCTION_NAMES) & (original | NEW_FUNCTIONS[name])
    assert set(functions) == expected, f"functions={sorted(functions)}, but should be {sorted(expected)} [{name}]"
    for fname, function in functions.items():
        got = list(inspect.signature(function).parameters.items())
        want = list(inspect.signature(getattr(reference, fname)).parameters.items())
        shape = [(p, v.kind) for p, v in got]
        assert shape == [(p, v.kind) for p, v in want], f"signature({fname})={shape}, but should match reference"
    assert isinstance(backend.CAPABILITIES, spec.Capabilities)
    loaded = load_backend(name)
    assert loaded.capabilities == backend.CAPABILITIES and set(loaded.functions) == expected


def test_declared_dtypes_round_trip_and_outputs_are_fresh(adapter: tuple[str, ModuleType]) -> None:
    """Every declared dtype comes back as itself, close to the reference, in arrays that are not views of the input."""
    name, backend = adapter
    pool = {"kernel_size": (2,), "stride": (1,), "padding": ((1, 0),), "dilation": (1,), "ceil_mode": False}
    for dtype in sorted(spec.capabilities_of(backend).dtypes):
        x = np.linspace(-1, 1, 10, dtype=dtype).reshape(1, 2, 5)
        w = np.linspace(-1, 1, 6, dtype=dtype).reshape(3, 2, 1)
        calls: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
            "conv_forward": ((x, w, None), conv1d(pad=(1, 1))),
            "max_pool_forward": ((x,), pool),
            "avg_pool_forward": ((x,), {**pool, "count_include_pad": True}),
            "linear_forward": ((x.reshape(2, 5), np.linspace(-1, 1, 15, dtype=dtype).reshape(3, 5), None), {}),
        }
        for fname, (args, kwargs) in calls.items():
            out = getattr(backend, fname)(*args, **kwargs)
            context = f"{name}.{fname}, {dtype}"
            assert isinstance(out, np.ndarray), f"type(out)={type(out).__name__}, but should be ndarray [{context}]"
            assert out.dtype == np.dtype(dtype), f"out.dtype={out.dtype}, but should be {dtype} [{context}]"
            assert not any(np.shares_memory(out, a) for a in args if a is not None), f"out is a view of an input [{context}]"
            tol = 4 * float(dtype_info(dtype).eps)  # bfloat16 too, whatever the ml_dtypes version
            expected = getattr(reference, fname)(*args, **kwargs).astype(np.float64)
            np.testing.assert_allclose(out.astype(np.float64), expected, rtol=tol, atol=tol, err_msg=f"[{context}]")


def test_empty_batch(adapter: tuple[str, ModuleType]) -> None:
    name, backend = adapter
    dtype = CHECK_DTYPE[name]
    x = np.zeros((0, 2, 5), dtype=dtype)
    y = backend.conv_forward(x, np.ones((3, 2, 2), dtype=dtype), None, stride=(1,), padding=((0, 0),), dilation=(1,),
                             groups=1)
    assert y.shape == (0, 3, 4), f"out.shape={y.shape}, but should be (0, 3, 4) [{name}.conv_forward, N=0]"
    y = backend.max_pool_forward(x, kernel_size=(2,), stride=(2,), padding=((0, 0),), dilation=(1,), ceil_mode=False)
    assert y.shape == (0, 2, 2), f"out.shape={y.shape}, but should be (0, 2, 2) [{name}.max_pool_forward, N=0]"


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # JAX's shape rule divides by the stride
def test_invalid_parameters_reach_the_framework(adapter: tuple[str, ModuleType]) -> None:
    """stride 0 is rejected by every framework (with its own error, never a stray Python error)."""
    name, backend = adapter
    dtype = CHECK_DTYPE[name]
    x, w = np.ones((1, 1, 5), dtype=dtype), np.ones((1, 1, 2), dtype=dtype)
    with pytest.raises(Exception) as conv_error:
        backend.conv_forward(x, w, None, stride=(0,), padding=((0, 0),), dilation=(1,), groups=1)
    with pytest.raises(Exception) as pool_error:
        backend.max_pool_forward(x, kernel_size=(2,), stride=(0,), padding=((0, 0),), dilation=(1,), ceil_mode=False)
    for error in (conv_error, pool_error):
        assert not isinstance(error.value, (ZeroDivisionError, KeyError, IndexError, AttributeError, spec.UnsupportedError)), (
            f"{name} raised {type(error.value).__name__}: {error.value}, but should raise the framework's own error"
        )


def test_negative_padding_is_passed_through(adapter: tuple[str, ModuleType]) -> None:
    """The spec forbids negative padding; XLA crops, PyTorch, TensorFlow and ONNX (shape inference) raise.

    The adapters must hand the value over unchanged either way, so the suite can report an acceptance.
    """
    name, backend = adapter
    dtype = CHECK_DTYPE[name]
    x, w = row(1, 2, 3, 4, 5).astype(dtype), row(1, 1).astype(dtype)
    kwargs = conv1d(pad=(-1, 0))
    if name == "jax":
        assert_close(backend.conv_forward(x, w, None, **kwargs), [[[5, 7, 9]]], dtype, f"{name}: crops")
    else:
        with pytest.raises(Exception) as error:
            backend.conv_forward(x, w, None, **kwargs)
        assert not isinstance(error.value, spec.UnsupportedError)


# ---------------------------------------------------------------------------------------------------------------------
# Transposed convolution, max-pool indices, adaptive pooling
# ---------------------------------------------------------------------------------------------------------------------

#: The new operations' functions each adapter implements (the others it lacks: the framework has no such operation).
NEW_FUNCTIONS: dict[str, frozenset[str]] = {
    "torch": frozenset({
        "conv_transpose_forward", "conv_transpose_backward", "max_pool_indices",
        "adaptive_avg_pool_forward", "adaptive_avg_pool_backward", "adaptive_max_pool_forward",
        "adaptive_max_pool_backward",
    }),
    "jax": frozenset({
        "conv_transpose_forward", "conv_transpose_backward",
        "adaptive_avg_pool_forward", "adaptive_avg_pool_backward", "adaptive_max_pool_forward",
        "adaptive_max_pool_backward",
    }),
    "tensorflow": frozenset({
        "conv_transpose_forward", "conv_transpose_backward", "max_pool_indices",
        "adaptive_avg_pool_forward", "adaptive_avg_pool_backward", "adaptive_max_pool_forward",
        "adaptive_max_pool_backward",
    }),
    "onnxruntime": frozenset({
        "conv_transpose_forward", "max_pool_indices", "adaptive_avg_pool_forward", "adaptive_max_pool_forward",
    }),
}
NEW_OPS: dict[str, tuple[str, str | None]] = {
    "conv_transpose": ("conv_transpose_forward", "conv_transpose_backward"),
    "max_pool_indices": ("max_pool_indices", None),
    "adaptive_avg_pool": ("adaptive_avg_pool_forward", "adaptive_avg_pool_backward"),
    "adaptive_max_pool": ("adaptive_max_pool_forward", "adaptive_max_pool_backward"),
}


@dataclass(frozen=True)
class NewCase:
    """One fixed configuration of a new operation: x (and w, b) drawn from a seeded generator, or given."""

    name: str
    op: str
    x_shape: tuple[int, ...]
    kwargs: dict[str, Any]
    w_shape: tuple[int, ...] | None = None
    #: Integer values in [-2, 2] (ties everywhere) instead of continuous ones.
    ties: bool = False
    #: Adapter -> a phrase its supports() must give when it declines this case.
    declined: dict[str, str] = field(default_factory=dict)
    #: Adapter -> a phrase of the error its framework raises on this valid call (a finding in docs/findings.md).
    rejects: dict[str, str] = field(default_factory=dict)
    #: Adapter -> the finding (docs/findings.md, asserted in tests/test_frameworks.py) by which it differs here.
    diverges: dict[str, str] = field(default_factory=dict)
    #: Given x (overrides x_shape's random values), and the hand-computed result of the forward.
    x: tuple[float, ...] | None = None
    expected: tuple[Any, ...] | None = None


def _transpose(s: tuple[int, ...], p: tuple[tuple[int, int], ...], e: tuple[int, ...], d: tuple[int, ...],
               g: int = 1) -> dict[str, Any]:
    return {"stride": s, "padding": p, "output_padding": e, "dilation": d, "groups": g}


#: Frameworks whose only adaptive pooling is global pooling (output size 1).
GLOBAL_ONLY = {"jax": "only global pooling", "tensorflow": "only global pooling", "onnxruntime": "only global pooling"}

NEW_CASES = [
    # [1, 2, 3] scattered with [1, 10] at stride 2: [1, 10, 2, 20, 3, 30]; padding (1, 0) removes the first.
    NewCase("conv_transpose stride 2, before-padding", "conv_transpose", (1, 1, 3),
            _transpose((2,), ((1, 0),), (0,), (1,)), w_shape=(1, 1, 2), x=(1.0, 2.0, 3.0),
            expected=([[[10, 2, 20, 3, 30]]],)),
    NewCase("conv_transpose 1-D asymmetric padding + output_padding", "conv_transpose", (2, 2, 4),
            _transpose((2,), ((1, 2),), (1,), (1,)), w_shape=(2, 3, 3)),
    NewCase("conv_transpose 2-D groups + dilation", "conv_transpose", (1, 4, 3, 3),
            _transpose((1, 2), ((0, 1), (1, 1)), (1, 1), (2, 1), 2), w_shape=(4, 1, 2, 3),
            declined={"tensorflow": "no groups"}, rejects={"onnxruntime": "may be too large for stride"}),
    NewCase("conv_transpose 2-D output_padding >= stride (dilation 3)", "conv_transpose", (1, 2, 3, 2),
            _transpose((1, 1), ((0, 0), (0, 0)), (2, 0), (3, 1)), w_shape=(2, 2, 2, 2),
            declined={"tensorflow": "no float64 CPU kernel"}, rejects={"onnxruntime": "may be too large for stride"}),
    NewCase("conv_transpose 3-D stride + output_padding", "conv_transpose", (1, 2, 2, 3, 2),
            _transpose((2, 1, 2), ((0, 0), (1, 1), (0, 1)), (1, 0, 1), (1, 1, 1)), w_shape=(2, 2, 2, 2, 2)),
    # The 4x4 plane of max_pool_indices.md with a 20 at (1, 1): 1*4 + 1 = 5.
    NewCase("max_pool_indices 2-D", "max_pool_indices", (1, 1, 4, 4),
            {"kernel_size": (2, 2), "stride": (2, 2), "padding": ((0, 0), (0, 0)), "dilation": (1, 1),
             "ceil_mode": False},
            x=(0, 1, 2, 3, 4, 20, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), expected=([[[[5, 7], [13, 15]]]],)),
    # [-inf -inf | 3 1 5 5 2] k 3: the first 5 wins the tie, the padding never does.
    NewCase("max_pool_indices asymmetric padding + ties", "max_pool_indices", (1, 1, 5),
            {"kernel_size": (3,), "stride": (1,), "padding": ((2, 0),), "dilation": (1,), "ceil_mode": False},
            x=(3, 1, 5, 5, 2), expected=([[[0, 0, 2, 2, 2]]],)),
    NewCase("max_pool_indices 2-D ceil mode, dilation, ties", "max_pool_indices", (2, 3, 5, 6),
            {"kernel_size": (3, 2), "stride": (2, 2), "padding": ((1, 1), (0, 1)), "dilation": (1, 2),
             "ceil_mode": True}, ties=True, declined={"tensorflow": "no dilation"}),
    NewCase("max_pool_indices 2-D ceil mode, ties", "max_pool_indices", (2, 3, 5, 6),
            {"kernel_size": (3, 2), "stride": (2, 2), "padding": ((1, 1), (0, 1)), "dilation": (1, 1),
             "ceil_mode": True}, ties=True),
    NewCase("max_pool_indices 1-D SAME padding, ties", "max_pool_indices", (2, 2, 6),
            {"kernel_size": (3,), "stride": (2,), "padding": ((0, 1),), "dilation": (1,), "ceil_mode": False},
            ties=True),
    NewCase("max_pool_indices 3-D", "max_pool_indices", (1, 2, 3, 4, 5),
            {"kernel_size": (2, 2, 3), "stride": (1, 2, 2), "padding": ((1, 0), (0, 0), (1, 1)),
             "dilation": (1, 1, 1), "ceil_mode": False}, declined={"tensorflow": "2-D only"}),
    # One real element; the first window reads positions -1 and 1 (padding only), with part of the padding explicit.
    NewCase("max_pool_indices empty window, asymmetric padding", "max_pool_indices", (1, 1, 1),
            {"kernel_size": (2,), "stride": (1,), "padding": ((1, 2),), "dilation": (2,), "ceil_mode": False},
            declined={"torch": "entirely in padding", "tensorflow": "no dilation", "onnxruntime": "smaller than the"}),
    # Symmetric padding, ONNX Runtime's own: the window at -1, 1 of a 1-element input has no real element (-1).
    NewCase("max_pool_indices empty window, symmetric padding", "max_pool_indices", (2, 3, 1),
            {"kernel_size": (2,), "stride": (1,), "padding": ((1, 1),), "dilation": (2,), "ceil_mode": False},
            declined={"tensorflow": "no dilation"}, diverges={"torch": "T11"}),
    # A 1-wide window at position -1 reads padding only.
    NewCase("max_pool_indices empty window, padding beyond half the kernel", "max_pool_indices", (1, 1, 2),
            {"kernel_size": (1,), "stride": (1,), "padding": ((1, 0),), "dilation": (1,), "ceil_mode": False},
            declined={"torch": "entirely in padding", "tensorflow": "entirely in padding",
                      "onnxruntime": "smaller than the"}),
    NewCase("adaptive_avg_pool 1-D", "adaptive_avg_pool", (2, 3, 5), {"output_size": (3,)},
            declined=GLOBAL_ONLY),
    NewCase("adaptive_avg_pool 2-D, larger output", "adaptive_avg_pool", (1, 2, 5, 3), {"output_size": (3, 4)},
            declined=GLOBAL_ONLY),
    NewCase("adaptive_avg_pool 3-D global", "adaptive_avg_pool", (2, 2, 3, 4, 2), {"output_size": (1, 1, 1)}),
    NewCase("adaptive_max_pool 1-D, ties", "adaptive_max_pool", (2, 3, 7), {"output_size": (3,)}, ties=True,
            declined=GLOBAL_ONLY),
    NewCase("adaptive_max_pool 2-D global", "adaptive_max_pool", (1, 3, 4, 5), {"output_size": (1, 1)}),
    NewCase("adaptive_max_pool 3-D, larger output", "adaptive_max_pool", (1, 2, 2, 3, 4), {"output_size": (3, 2, 5)},
            declined=GLOBAL_ONLY),
]


def _new_inputs(case: NewCase, dtype: type[np.floating[Any]]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(forward args, backward args without dy) of the case, values seeded by its name."""
    rng = np.random.default_rng(sum(map(ord, case.name)))
    if case.x is not None:
        x = np.array(case.x, dtype=np.float64).reshape(case.x_shape)
    elif case.ties:
        x = rng.integers(-2, 3, case.x_shape).astype(np.float64)
    else:
        x = rng.standard_normal(case.x_shape)
    x = x.astype(dtype)
    if case.w_shape is None:
        return (x,), (x,)
    w = (np.ones(case.w_shape) * [1, 10] if case.x is not None else rng.standard_normal(case.w_shape)).astype(dtype)
    b = None if case.x is not None else rng.standard_normal(case.w_shape[1] * case.kwargs["groups"]).astype(dtype)
    return (x, w, b), (x, w)


def _problem(case: NewCase, direction: str, dtype: type[np.floating[Any]]) -> dict[str, Any]:
    """The plain data supports(op, problem) receives for the case."""
    return {"op": case.op, "direction": direction, "dtype": np.dtype(dtype).name, "x_shape": case.x_shape,
            "w_shape": case.w_shape, "bias": case.w_shape is not None and case.x is None, "params": dict(case.kwargs)}


def test_translation_helpers_examples() -> None:
    """The examples in _translate's docstrings (conformance/backends is outside pytest's doctest collection)."""
    import doctest

    from conformance.backends import _translate

    result = doctest.testmod(_translate, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0, f"{result}, but should have no failures"


def test_new_operations_functions_are_the_declared_ones(adapter: tuple[str, ModuleType]) -> None:
    """Each adapter has exactly the new functions its framework has, with the reference's signatures."""
    name, backend = adapter
    present = {f for pair in NEW_OPS.values() for f in pair if f is not None and callable(getattr(backend, f, None))}
    assert present == NEW_FUNCTIONS[name], f"functions={sorted(present)}, but should be {sorted(NEW_FUNCTIONS[name])}"
    for fname in present:
        got = [(p, v.kind) for p, v in inspect.signature(getattr(backend, fname)).parameters.items()]
        want = [(p, v.kind) for p, v in inspect.signature(getattr(reference, fname)).parameters.items()]
        assert got == want, f"signature({name}.{fname})={got}, but should match reference"


@pytest.mark.parametrize("case", NEW_CASES, ids=[c.name for c in NEW_CASES])
def test_new_operations_match_reference(adapter: tuple[str, ModuleType], case: NewCase) -> None:
    """Forward (and backward) of each fixed configuration against the reference, or declined with the stated reason."""
    name, backend = adapter
    forward, backward = NEW_OPS[case.op]
    if forward not in NEW_FUNCTIONS[name]:
        return  # the framework has no such operation (test_new_operations_functions_are_the_declared_ones)
    dtype = CHECK_DTYPE[name]
    supports: Callable[[str, dict[str, Any]], str | None] = backend.supports
    reason = supports(case.op, _problem(case, "forward", dtype))
    if name in case.declined:
        assert reason is not None and case.declined[name] in reason, (
            f"supports({case.op})={reason!r}, but should decline with {case.declined[name]!r} [{name}, {case.name}]")
        return
    assert reason is None, f"supports({case.op}) declined: {reason} [{name}, {case.name}]"
    args, backward_args = _new_inputs(case, dtype)
    context = f"{name}, {case.name}"
    if name in case.diverges:
        return  # a divergence of the framework itself, asserted by tests/test_frameworks.py
    if name in case.rejects:
        with pytest.raises(Exception, match=case.rejects[name]):
            getattr(backend, forward)(*args, **case.kwargs)
        return
    out = getattr(backend, forward)(*args, **case.kwargs)
    expected = getattr(reference, forward)(*args, **case.kwargs)
    if case.op == "max_pool_indices":
        hand = None if case.expected is None else np.array(case.expected[0], dtype=np.int64)
        for what, want in (("reference", expected), ("hand-computed", hand)):
            if want is not None:
                assert out.dtype == np.int64 and out.shape == want.shape, f"out: {out.dtype}{out.shape} [{context}]"
                assert np.array_equal(out, want), f"out={out.tolist()}, but should be {want.tolist()} ({what}) [{context}]"
    else:
        assert_close(out, expected, dtype, f"{forward}, {context}")
        if case.expected is not None:
            assert_close(out, np.array(case.expected[0], dtype=dtype), dtype, f"hand-computed, {context}")
    if backward is None or backward not in NEW_FUNCTIONS[name]:
        return
    if supports(case.op, _problem(case, "backward", dtype)) is not None:
        return  # a forward-only case of this adapter (test_new_operations_declines_have_reasons names them)
    dy = np.random.default_rng(1).standard_normal(expected.shape).astype(dtype)
    grads = getattr(backend, backward)(*backward_args, dy, **case.kwargs)
    wanted = getattr(reference, backward)(*backward_args, dy, **case.kwargs)
    for i, (got, want) in enumerate(zip(grads if isinstance(grads, tuple) else (grads,),
                                        wanted if isinstance(wanted, tuple) else (wanted,))):
        assert_close(got, want, dtype, f"{backward} output {i}, {context}")


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_invalid_transpose_parameters_are_rejected(adapter: tuple[str, ModuleType]) -> None:
    """output_padding >= max(stride, dilation), negative padding and stride 0 raise a real error, not a decline.

    PyTorch and ONNX Runtime check them themselves; JAX and TensorFlow have no output_padding or transposed
    padding of their own, so their adapters check those two (naming the parameter) and leave stride 0 to them.
    """
    name, backend = adapter
    if not hasattr(backend, "conv_transpose_forward"):
        return
    dtype = CHECK_DTYPE[name]
    x, w = np.ones((1, 2, 3), dtype=dtype), np.ones((2, 3, 2), dtype=dtype)
    valid = _transpose((2,), ((0, 0),), (1,), (1,))
    for change in ({"output_padding": (2,)}, {"padding": ((-1, 0),)}, {"stride": (0,)}):
        with pytest.raises(Exception) as error:
            backend.conv_transpose_forward(x, w, None, **{**valid, **change})
        assert not isinstance(error.value, (ZeroDivisionError, KeyError, IndexError, AttributeError, TypeError,
                                            spec.UnsupportedError)) or "dilations must be positive" in str(error.value), (
            f"{name} raised {type(error.value).__name__}: {error.value} for {change}, but should reject it")

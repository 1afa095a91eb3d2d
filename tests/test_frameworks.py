"""Real frameworks on the bench: no false alarms, and every genuine divergence asserted precisely.

PyTorch and JAX run the ``ci`` profile in float64 and float32 for two seeds each, two operations per
seed (``ops_for``), so that every operation runs once with its own cases (the whole-profile runs are
most of CI's time); JAX is on the compile-friendly path (shape pools, its
compiled kernels kept in its persistent cache between runs). Every failure must
be one of the divergences written up in docs/findings.md (recognised by its rule, operation, case
and message); each divergence is then reproduced by a targeted run and its exact finding asserted (for
T1, T2, J1 and J10 the whole-profile run already made that targeted search, and is asserted on instead; the
targeted runs of one framework share one worker).
The backends run in a worker process: PyTorch's max-pool backward can abort the process (T1).
The operations added after the first four run one quick profile per framework (PyTorch, JAX) instead of
joining the seeds. ONNX Runtime (forward only) runs one ci seed over every operation; TensorFlow is
exercised by ``convspec matrix`` (README).
"""

from __future__ import annotations

import argparse
import importlib
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import strategies as st

import reference
import spec
from conformance.context import derive
from conformance.invoke import Caller, CallOutcome
from conformance.loader import LoadedBackend, load_backend
from conformance.report import failure_text
from conformance.results import RuleResult
from conformance.rules import ALL_OPS, RULES_BY_ID
from conformance.runner import make_caller, run
from conformance.strategies import Case, Problem, cases
from spec import Capabilities, OpName

#: Seeds a divergence's targeted run may try before it counts as not reproduced.
SEEDS = range(5)
#: Seeds of the whole-profile runs: two operations each (``ops_for``), so seeds 0 and 2 cover all four once. Each
#: seed costs one to four minutes of PyTorch or JAX on this 2-core machine; CI must stay under ten minutes.
CI_SEEDS = (0, 2)
DTYPES = ["float64", "float32"]


def ops_for(seed: int) -> tuple[OpName, OpName]:
    """The two operations seed k runs: conv and max_pool under seeds 0, 3, 4 and 0, 1, 4; the others under two."""
    return ALL_OPS[seed % len(ALL_OPS)], ALL_OPS[(seed + 1) % len(ALL_OPS)]


def has_empty_window(problem: Problem) -> bool:
    """Whether some pooling window reads no real input element (spec MAXPOOL-C7 / AVGPOOL-C8)."""
    p = problem.params
    if "kernel_size" not in p:
        return False
    out = problem.output_shape()[2:]
    for n, k, s, d, (lo, _), o in zip(problem.x_shape[2:], p["kernel_size"], p["stride"], p["dilation"],
                                      p["padding"], out):
        for index in range(o):
            if all(not 0 <= index * s + j * d - lo < n for j in range(k)):
                return True
    return False


@dataclass(frozen=True)
class Divergence:
    id: str
    framework: str
    description: str
    matches: Callable[[RuleResult], bool]
    #: A targeted run that must reproduce it: (rule id, operation, dtype).
    reproduce: tuple[str, str, str]
    #: A regular expression the finding's summary must match.
    message: str
    #: For invalid-params: the one mutation the targeted run tries.
    mutation: str | None = None
    #: The targeted run's cases have an empty batch (ordinary generation has N >= 1; N = 0 is empty-batch's).
    empty_batch: bool = False
    #: Capabilities the targeted run narrows further, to reach the divergence sooner (field=value).
    narrow: tuple[tuple[str, bool], ...] = ()


def _summary(result: RuleResult) -> str:
    return result.violation.summary if result.violation else result.note


def _case(result: RuleResult) -> Problem | None:
    return result.violation.case.problem if result.violation and result.violation.case else None


def _in_empty_window_case(op: str) -> Callable[[RuleResult], bool]:
    def matches(result: RuleResult) -> bool:
        case = _case(result)
        return result.op == op and case is not None and has_empty_window(case)

    return matches


def _invalid_accepted(op: str | None, mutation: str, *, empty_batch: bool = False) -> Callable[[RuleResult], bool]:
    def matches(result: RuleResult) -> bool:
        case = _case(result)
        return (result.rule == "invalid-params" and (op is None or result.op == op)
                and f"accepted an invalid call ({mutation}" in _summary(result)
                and (not empty_batch or (case is not None and case.x_shape[0] == 0)))

    return matches


def _any_accepted(mutations: tuple[str, ...], *, empty_batch: bool = False) -> Callable[[RuleResult], bool]:
    def matches(result: RuleResult) -> bool:
        return any(_invalid_accepted(None, m, empty_batch=empty_batch)(result) for m in mutations)

    return matches


def _neg_inf_tie(result: RuleResult) -> bool:
    """A max-pool gradient lost on a window whose maximum is a real -inf (a tie with the -inf padding)."""
    case = result.violation.case if result.violation else None
    return (result.op == "max_pool" and case is not None and bool(np.isneginf(case.inputs.x).any())
            and "dx differs from the expected value" in _summary(result))


_NO_CHANNELS = ("C_in=0", "C=0", "in_features=0")


def _grouped_nan(result: RuleResult) -> bool:
    """A nan-propagation failure of a grouped convolution (J10)."""
    case = _case(result)
    return (result.rule == "nan-propagation" and result.op == "conv" and case is not None
            and int(case.params.get("groups", 1)) > 1)


KNOWN: tuple[Divergence, ...] = (
    # The heap damage T1 does can also crash a later, unrelated max-pool call in the same worker.
    Divergence("T1", "torch", "max-pool backward of a window entirely in padding writes out of its plane (or aborts)",
               lambda r: _in_empty_window_case("max_pool")(r) or (r.op == "max_pool" and r.violation is not None
                                                                  and r.violation.kind == "crash"),
               ("empty-windows", "max_pool", "float64"),
               r"dx differs from the expected value|crashed the process|corrupted the process|was not called again"),
    Divergence("T2", "torch", "avg_pool3d rejects an input smaller than the kernel although the padded input is not",
               lambda r: r.op == "avg_pool" and "smaller than kernel size" in _summary(r),
               ("forward-values", "avg_pool", "float64"),
               r"raised RuntimeError on a valid call: input image .* smaller than kernel size"),
    Divergence("T5", "torch", "with an empty batch, convolution (transposed too) skips its dilation check",
               lambda r: any(_invalid_accepted(op, "dilation=0", empty_batch=True)(r) for op in ("conv", "conv_transpose")),
               ("invalid-params", "conv", "float64"),
               r"accepted an invalid call \(dilation=0\)", "dilation=0", empty_batch=True),
    Divergence("T6", "torch", "linear, max pooling and average pooling accept integer tensors",
               _invalid_accepted(None, "integer dtype"),
               ("invalid-params", "avg_pool", "float64"), r"accepted an invalid call \(integer dtype\)", "integer dtype"),
    Divergence("T7", "torch", "autograd casts a dy of another floating dtype instead of rejecting it",
               _invalid_accepted(None, "dy dtype mismatch"), ("invalid-params", "max_pool", "float64"),
               r"accepted an invalid call \(dy dtype mismatch\)", "dy dtype mismatch"),
    Divergence("T8", "torch", "conv with no input channels and linear with no input features return a result",
               _any_accepted(_NO_CHANNELS), ("invalid-params", "conv", "float64"),
               r"accepted an invalid call \(C_in=0\)", "C_in=0"),
    Divergence("T9", "torch", "with an empty batch, conv and linear skip their dtype checks (bool, mixed dtypes)",
               _any_accepted(("bool inputs", "mixed dtypes"), empty_batch=True), ("invalid-params", "linear", "float64"),
               r"accepted an invalid call \(bool inputs\)", "bool inputs", empty_batch=True),
    Divergence("J1", "jax", "under jit, XLA folds pad + dilated reduce_window: gradient leaks from empty windows",
               _in_empty_window_case("avg_pool"), ("empty-windows", "avg_pool", "float64"),
               r"dx differs from the expected value"),
    Divergence("J3", "jax", "negative padding crops instead of raising", _invalid_accepted(None, "negative padding"),
               ("invalid-params", "conv", "float64"), r"accepted an invalid call \(negative padding\)",
               "negative padding"),
    Divergence("J5", "jax", "jnp.matmul, jnp.mean / jnp.max, reduce_window sums and convolutions compute on integers",
               lambda r: any(_invalid_accepted(op, "integer dtype")(r)
                             for op in ("linear", "conv", "conv_transpose", "avg_pool", "adaptive_avg_pool",
                                        "adaptive_max_pool")),
               ("invalid-params", "linear", "float64"), r"accepted an invalid call \(integer dtype\)", "integer dtype"),
    Divergence("J6", "jax", "the max-pool VJP sends the gradient of a window of real -inf into the -inf padding",
               _neg_inf_tie, ("tie-routing", "max_pool", "float32"), r"dx differs from the expected value",
               narrow=(("max_pool_dilation", False),)),  # JAX has no VJP for a dilated max pool
    Divergence("J7", "jax", "conv and pooling with no channels and linear with no input features return a result",
               _any_accepted(_NO_CHANNELS), ("invalid-params", "max_pool", "float64"),
               r"accepted an invalid call \(C=0\)", "C=0"),
    Divergence("J8", "jax", "boolean inputs, and a linear weight of another dtype, are promoted instead of rejected",
               _any_accepted(("bool inputs", "mixed dtypes")), ("invalid-params", "conv", "float64"),
               r"accepted an invalid call \(bool inputs\)", "bool inputs"),
    Divergence("J9", "jax", "ceil_mode and count_include_pad of 0 or 1 are taken as truth values",
               _any_accepted(("non-bool ceil_mode", "non-bool count_include_pad")), ("invalid-params", "avg_pool", "float64"),
               r"accepted an invalid call \(non-bool ceil_mode\)", "non-bool ceil_mode"),
    Divergence("J10", "jax", "a NaN in one channel group reaches the outputs of every group (grouped conv as a dense one)",
               _grouped_nan,
               ("nan-propagation", "conv", "float64"), r"y differs from the expected value|NaN"),
    Divergence("J4", "jax", "a kernel larger than the padded input gives an empty output instead of raising",
               _invalid_accepted(None, "empty output"), ("invalid-params", "max_pool", "float64"),
               r"accepted an invalid call \(empty output\)", "empty output"),
)


ORT_KNOWN: tuple[Divergence, ...] = (
    Divergence("O1", "onnxruntime", "MaxPool drops NaN (1-D and 3-D; an all-NaN window gives the lowest float)",
               lambda r: r.op == "max_pool" and r.rule == "nan-propagation", ("nan-propagation", "max_pool", "float32"),
               r"a NaN or infinity in x was dropped"),
    Divergence("O2", "onnxruntime", "MaxPool of a window entirely in padding gives the lowest float, not -inf",
               _in_empty_window_case("max_pool"), ("empty-windows", "max_pool", "float32"), r"y differs from the expected value"),
    Divergence("O3", "onnxruntime", "AveragePool count_include_pad=0 over a window entirely in padding gives 0, not NaN",
               _in_empty_window_case("avg_pool"), ("empty-windows", "avg_pool", "float32"), r"y differs from the expected value"),
    Divergence("O6", "onnxruntime", "MaxPool auto_pad=SAME_UPPER with stride > kernel fails on negative total padding",
               lambda r: "padding values must be non-negative" in _summary(r), ("forward-values", "max_pool", "float32"),
               r"padding values must be non-negative"),
    Divergence("O8", "onnxruntime", "conv with no input channels and linear with no input features return a result",
               _any_accepted(_NO_CHANNELS), ("invalid-params", "conv", "float32"), r"accepted an invalid call \(C_in=0\)",
               "C_in=0"),
    Divergence("O9", "onnxruntime", "ceil_mode and count_include_pad are ONNX int attributes: 0 and 1 are accepted",
               _any_accepted(("non-bool ceil_mode", "non-bool count_include_pad")), ("invalid-params", "max_pool", "float32"),
               r"accepted an invalid call \(non-bool ceil_mode\)", "non-bool ceil_mode"),
    Divergence("O7", "onnxruntime", "pooling with a kernel longer than the padded input gives an empty output",
               _invalid_accepted(None, "empty output"), ("invalid-params", "avg_pool", "float32"),
               r"accepted an invalid call \(empty output\)", "empty output"),
)


def _x_of(result: RuleResult) -> np.ndarray | None:
    case = result.violation.case if result.violation else None
    return None if case is None else np.asarray(case.inputs.x)


def _nonfinite_input(op: str) -> Callable[[RuleResult], bool]:
    """A failure of ``op`` on an input holding NaN or an infinity."""
    def matches(result: RuleResult) -> bool:
        x = _x_of(result)
        return result.op == op and x is not None and x.dtype.kind == "f" and not bool(np.isfinite(x).all())

    return matches


def _global_max_tie(result: RuleResult) -> bool:
    """An adaptive max-pool gradient failure on a plane whose maximum is attained more than once (J11)."""
    x = _x_of(result)
    if result.op != "adaptive_max_pool" or x is None or "dx" not in _summary(result) or x.size == 0:
        return False
    planes = x.reshape(x.shape[0] * x.shape[1], -1)
    return bool(((planes == planes.max(axis=1, keepdims=True)).sum(axis=1) > 1).any())


def _grouped_transpose_nan(result: RuleResult) -> bool:
    case = _case(result)
    return (result.op == "conv_transpose" and case is not None and int(case.params.get("groups", 1)) > 1
            and _nonfinite_input("conv_transpose")(result))


_ADAPTIVE = ("adaptive_avg_pool", "adaptive_max_pool")
_HALF = ("float16", "bfloat16")


def _half_adaptive_dx(result: RuleResult) -> bool:
    """A float16/bfloat16 adaptive-pooling gradient off its bound (T14: overlapping windows' sums in the dtype)."""
    return result.op in _ADAPTIVE and result.dtype in _HALF and "dx differs from the expected value" in _summary(result)


def _float16_adaptive_avg_3d(result: RuleResult) -> bool:
    """A float16 3-D adaptive average off its bound (T15)."""
    case = _case(result)
    return (result.op == "adaptive_avg_pool" and result.dtype == "float16" and case is not None
            and case.spatial_rank == 3 and "y differs from the expected value" in _summary(result))


def _bfloat16_transpose_dw(result: RuleResult) -> bool:
    return (result.op == "conv_transpose" and result.dtype == "bfloat16"
            and "dw differs from the expected value" in _summary(result))


def _transpose_dw_at_nonfinite_x(result: RuleResult) -> bool:
    """A transposed-convolution dw off at NaN/inf inputs (T17: a NaN meets the zero-padded dy at a cropped tap)."""
    return (result.rule == "nonfinite-backward" and _nonfinite_input("conv_transpose")(result)
            and "dw differs from the expected value" in _summary(result))


#: The new operations' divergences: recognised in whole-profile runs, each asserted by a direct reproduction below
#: (one call; a targeted profile run per divergence would not fit CI's budget).
NEW_OPS_KNOWN: tuple[tuple[str, str, Callable[[RuleResult], bool]], ...] = (
    ("T11", "torch", _in_empty_window_case("max_pool_indices")),
    ("T12", "torch", _invalid_accepted(None, "output_size=0")),
    ("T13", "torch", _invalid_accepted("adaptive_avg_pool", "empty input plane")),
    ("T14", "torch", _half_adaptive_dx),
    ("T15", "torch", _float16_adaptive_avg_3d),
    ("T16", "torch", _bfloat16_transpose_dw),
    ("T17", "torch", _transpose_dw_at_nonfinite_x),
    ("J12", "jax", _invalid_accepted(None, "empty input plane")),
    ("J10", "jax", _grouped_transpose_nan),
    ("J11", "jax", _global_max_tie),
    ("O10", "onnxruntime", lambda r: r.op == "conv_transpose" and "may be too large for stride" in _summary(r)),
    ("O11", "onnxruntime", _nonfinite_input("adaptive_max_pool")),
    ("O13", "onnxruntime", _nonfinite_input("max_pool_indices")),
    ("O14", "onnxruntime", _in_empty_window_case("max_pool_indices")),
)


def classify(framework: str, result: RuleResult) -> str | None:
    for divergence in (*KNOWN, *ORT_KNOWN):
        if divergence.framework == framework and divergence.matches(result):
            return divergence.id
    for finding, name, matches in NEW_OPS_KNOWN:
        if name == framework and matches(result):
            return finding
    return None


def _backend(framework: str) -> LoadedBackend:
    return load_backend(framework)


def _caller(backend: LoadedBackend) -> Caller:
    caller, _ = make_caller(backend, argparse.Namespace(isolation="process", timeout=60.0))
    return caller


def in_whole_profile(divergence: Divergence) -> int | None:
    """The whole-profile seed whose run holds the divergence's targeted search, or None.

    A targeted run is the rule alone on (rule, operation, dtype) under seeds 0, 1, ... in turn; each rule's
    Hypothesis seed depends on nothing but (seed, rule, operation, dtype), so when the rule keeps its own
    strategy (no mutation, no narrowed capabilities), seed k's whole-profile run already made the search
    the targeted run would make under seed k.
    """
    _, op, dtype = divergence.reproduce
    if divergence.mutation is not None or divergence.narrow or dtype not in DTYPES:
        return None
    return next((seed for seed in CI_SEEDS if seed in SEEDS and op in ops_for(seed)), None)


@pytest.mark.parametrize("seed", CI_SEEDS)
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_ci_profile_raises_no_false_alarm(framework: str, seed: int) -> None:
    """No unexplained failure; and each known divergence whose targeted search this run made (T1, T2, J1, J10)
    is found in it and reported precisely (the other seeds are tried, as by the targeted test, if it is not)."""
    backend = _backend(framework)
    ops = ops_for(seed)
    report = run(backend, ops=ops, dtypes=DTYPES, profile="ci", seed=seed, caller=_caller(backend))
    assert {r.op for r in report.results} == set(ops), f"ran {sorted({r.op for r in report.results})}, not {ops}"
    assert sum(r.status == "passed" for r in report.results) > 25
    unexplained = [r for r in report.failures if classify(framework, r) is None]
    assert not unexplained, "\n\n".join(failure_text(r) for r in unexplained)
    for divergence in KNOWN:
        if divergence.framework == framework and in_whole_profile(divergence) == seed:
            found = [r for r in report.failures
                     if (r.rule, r.op, r.dtype) == divergence.reproduce and divergence.matches(r)]
            if not found:
                found = reproduce(divergence, _caller(backend), [s for s in SEEDS if s != seed])
            assert_reported_precisely(divergence, found)


#: The operations added after the first four: not in the whole-profile seeds above (they would double their cost);
#: one quick run per framework covers them, in the same dtypes.
NEW_OPS: tuple[OpName, ...] = tuple(op for op in spec.OPERATIONS if op not in ALL_OPS)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_quick_profile_on_the_new_operations_raises_no_false_alarm(framework: str) -> None:
    backend = _backend(framework)
    report = run(backend, ops=NEW_OPS, dtypes=DTYPES, profile="quick", seed=0, caller=_caller(backend))
    missing = {"max_pool_indices"} if framework == "jax" else set()  # JAX has no argmax pooling
    assert {r.op for r in report.results} == set(NEW_OPS) - missing
    assert sum(r.status == "passed" for r in report.results) > 25
    unexplained = [r for r in report.failures if classify(framework, r) is None]
    assert not unexplained, "\n\n".join(failure_text(r) for r in unexplained)


def test_onnxruntime_forward_raises_no_false_alarm() -> None:
    """ONNX Runtime is forward-only, float32 and float16: one ci seed over the first four operations and, as for
    PyTorch and JAX, a quick run over the new ones (its ConvTranspose fails O10 in most rules, and shrinking each
    of those failures doubled this test's time); every failure a known divergence."""
    backend = _backend("onnxruntime")
    dtypes = ["float32", "float16"]
    report = run(backend, ops=ALL_OPS, dtypes=dtypes, profile="ci", seed=0, caller=_caller(backend))
    assert sum(r.status == "passed" for r in report.results) > 20
    new = run(backend, ops=NEW_OPS, dtypes=dtypes, profile="quick", seed=0, caller=_caller(backend))
    assert {r.op for r in new.results} == set(NEW_OPS)
    assert sum(r.status == "passed" for r in new.results) > 10
    failures = report.failures + new.failures
    unexplained = [r for r in failures if classify("onnxruntime", r) is None]
    assert not unexplained, "\n\n".join(failure_text(r) for r in unexplained)
    assert {classify("onnxruntime", r) for r in failures} >= {"O1", "O2", "O10"}


def reproduce(divergence: Divergence, caller: Caller, seeds: Sequence[int] = SEEDS) -> list[RuleResult]:
    """The divergence's targeted run: its rule alone on its (operation, dtype), seed after seed until it shows."""
    backend = _backend(divergence.framework)
    rule_id, op, dtype = divergence.reproduce
    rule = RULES_BY_ID[rule_id]
    if divergence.mutation is not None:
        mutation, empty = divergence.mutation, divergence.empty_batch

        def invalid(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[tuple[Case, str]]:
            drawn = cases(op, caps, dtype)
            if empty:
                drawn = drawn.map(lambda case: derive(case, x=case.inputs.x[:0].copy()))
            return st.tuples(drawn, st.just(mutation))

        rule = replace(rule, strategy=invalid)
    if divergence.narrow:
        strategy, narrowed = rule.strategy, dict(divergence.narrow)
        rule = replace(rule, strategy=lambda op, caps, dtype: strategy(op, replace(caps, **narrowed), dtype))
    for seed in seeds:
        report = run(backend, ops=[op], dtypes=[dtype], profile="ci", seed=seed, rules=[rule], caller=caller)
        found = [r for r in report.failures if divergence.matches(r)]
        if found:
            return found
    return []


def assert_reported_precisely(divergence: Divergence, found: list[RuleResult]) -> None:
    rule_id, op, dtype = divergence.reproduce
    assert found, f"{divergence.id} ({divergence.description}) was not reproduced by {rule_id} on {op} {dtype}"
    assert re.search(divergence.message, _summary(found[0])), failure_text(found[0])
    assert "reproduce with:" in failure_text(found[0])


class _KeptOpen:
    """A framework's worker shared by this module's targeted runs: ``run`` closes its caller when it ends, and
    each run would otherwise start a worker and import the framework again (1-3 s of CPU each)."""

    def __init__(self, inner: Caller) -> None:
        self.inner = inner

    def call(self, function: str, args: Sequence[Any], kwargs: Mapping[str, Any], label: Any = None) -> CallOutcome:
        return self.inner.call(function, args, kwargs, label)

    def close(self) -> None:
        """Kept open for the next targeted run; the module's fixture closes the worker at the end."""

    def __getattr__(self, name: str) -> Any:  # supports, new_search: the worker's own
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def shared_workers() -> Iterator[dict[str, Caller]]:
    workers: dict[str, Caller] = {}
    yield workers
    for worker in workers.values():
        worker.close()


#: The divergences no whole-profile run holds the targeted search of: each reproduced by its own targeted run.
TARGETED = tuple(d for d in KNOWN if in_whole_profile(d) is None)


@pytest.mark.parametrize("divergence", TARGETED, ids=lambda d: f"{d.framework}-{d.id}")
def test_known_divergence_is_reported_precisely(divergence: Divergence, shared_workers: dict[str, Caller]) -> None:
    if divergence.framework not in shared_workers:
        shared_workers[divergence.framework] = _caller(_backend(divergence.framework))
    assert_reported_precisely(divergence, reproduce(divergence, _KeptOpen(shared_workers[divergence.framework])))


def test_every_known_divergence_is_asserted_by_a_targeted_or_a_whole_profile_run() -> None:
    folded = {d.id for d in KNOWN if in_whole_profile(d) is not None}
    assert folded == {"T1", "T2", "J1", "J10"}, folded  # the whole-profile test's docstring names them


# ---------------------------------------------------------------------------------------------------------------------
# The new operations' divergences (docs/findings.md), each reproduced directly by one call through its adapter.
# Cheap by design: a whole-profile run per operation would not fit CI's budget.
# ---------------------------------------------------------------------------------------------------------------------


def _adapter(framework: str) -> ModuleType:
    for module in {"onnxruntime": ("onnxruntime", "onnx")}.get(framework, (framework,)):
        pytest.importorskip(module)
    return importlib.import_module(f"conformance.backends.{framework}_backend")


_NAN = float("nan")
_GLOBAL: dict[str, tuple[int, ...]] = {"output_size": (1,)}
_PAIRS: dict[str, object] = {"kernel_size": (2,), "stride": (2,), "padding": ((0, 0),), "dilation": (1,),
                             "ceil_mode": False}


def test_T11_torch_indices_of_an_empty_window_point_outside_the_plane() -> None:
    torch_backend = _adapter("torch")
    x = np.array([[[7.0]]])
    params = {"kernel_size": (2,), "stride": (1,), "padding": ((1, 1),), "dilation": (2,), "ceil_mode": False}
    assert reference.max_pool_indices(x, **params).tolist() == [[[-1]]]
    got = torch_backend.max_pool_indices(x, **params).tolist()
    assert got == [[[1]]], f"indices={got}: T11 (index 1 of a one-element plane) no longer reproduces"


def test_T12_torch_adaptive_pooling_accepts_output_size_zero() -> None:
    torch_backend = _adapter("torch")
    x = np.ones((1, 2, 5))
    with pytest.raises(spec.SpecError, match="output_size"):
        reference.adaptive_avg_pool_forward(x, output_size=(0,))
    for function in (torch_backend.adaptive_avg_pool_forward, torch_backend.adaptive_max_pool_forward):
        assert function(x, output_size=(0,)).shape == (1, 2, 0), "T12 no longer reproduces"


def test_T13_torch_adaptive_average_accepts_an_empty_plane() -> None:
    torch_backend = _adapter("torch")
    x = np.ones((1, 2, 0))
    with pytest.raises(spec.SpecError, match="x.shape"):
        reference.adaptive_avg_pool_forward(x, output_size=(1,))
    y = torch_backend.adaptive_avg_pool_forward(x, output_size=(1,))
    assert y.shape == (1, 2, 1) and np.isnan(y).all(), f"y={y.tolist()}: T13 no longer reproduces"
    with pytest.raises(Exception, match="non-zero size"):  # the max rejects it
        torch_backend.adaptive_max_pool_forward(x, output_size=(1,))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_T14_torch_half_adaptive_backward_sums_overlapping_windows_in_the_dtype(dtype: str) -> None:
    """One element read by three windows: dx = 1 + u/2 + u/2 = 1 + u (u: the dtype's ulp of 1, representable),
    but each addition rounds to the dtype (1 + u/2 ties to even, back to 1), so PyTorch returns 1."""
    torch_backend = _adapter("torch")
    u = float(ml_dtypes.finfo(dtype).eps)
    x, dy = np.array([[[0.5]]], dtype=dtype), np.array([[[1.0, u / 2, u / 2]]], dtype=dtype)
    exact = reference.adaptive_max_pool_backward(x.astype(np.float64), dy.astype(np.float64), output_size=(3,))
    assert float(exact[0, 0, 0]) == 1 + u == float(np.array(1 + u, dtype=dtype))
    for backward in (torch_backend.adaptive_avg_pool_backward, torch_backend.adaptive_max_pool_backward):
        got = float(backward(x, dy, output_size=(3,)).astype(np.float64)[0, 0, 0])
        assert got == 1.0, f"dx={got}: T14 no longer reproduces"


def test_T15_torch_float16_adaptive_average_3d_is_not_rounded_once() -> None:
    """1-D and 2-D float16 adaptive averages are the exact mean rounded once; 3-D ones are not."""
    torch_backend = _adapter("torch")
    x = np.random.default_rng(0).standard_normal((1, 4, 3, 4, 5)).astype(np.float16)
    once = reference.adaptive_avg_pool_forward(x.astype(np.float64), output_size=(2, 3, 2)).astype(np.float16)
    got = torch_backend.adaptive_avg_pool_forward(x, output_size=(2, 3, 2))
    assert (got != once).any(), "T15 no longer reproduces: every 3-D float16 mean is rounded once"
    planar = x[:, :, 0]
    assert np.array_equal(torch_backend.adaptive_avg_pool_forward(planar, output_size=(3, 2)),
                          reference.adaptive_avg_pool_forward(planar.astype(np.float64), output_size=(3, 2)).astype(np.float16))


def test_T16_torch_bfloat16_transposed_convolution_dw_misses_its_bound() -> None:
    torch_backend = _adapter("torch")
    rng = np.random.default_rng(1)
    params = {"stride": (2, 1), "padding": ((0, 0), (0, 0)), "output_padding": (0, 1), "dilation": (1, 2), "groups": 1}
    x = rng.integers(1, 4, (5, 1, 4, 4)).astype(ml_dtypes.bfloat16)
    w = np.full((1, 1, 1, 1), 3.0, dtype=ml_dtypes.bfloat16)
    dy = rng.integers(1, 4, (5, 1, 7, 5)).astype(ml_dtypes.bfloat16)
    exact = reference.conv_transpose_backward(x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64),
                                              **params)[1]
    got = torch_backend.conv_transpose_backward(x, w, dy, **params)[1].astype(np.float64)
    assert float(exact[0, 0, 0, 0]) == 318.0  # representable in bfloat16: a correct rounding gives it back
    assert float(got[0, 0, 0, 0]) == 320.0, f"dw={got.ravel().tolist()}: T16 no longer reproduces"


def test_J12_jax_global_pooling_accepts_an_empty_plane() -> None:
    jax_backend = _adapter("jax")
    x = np.ones((1, 2, 0))
    with pytest.raises(spec.SpecError):
        reference.adaptive_avg_pool_forward(x, output_size=(1,))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # JAX's "mean of empty slice"
        y = jax_backend.adaptive_avg_pool_forward(x, output_size=(1,))
    assert y.shape == (1, 2, 1) and np.isnan(y).all(), f"y={y.tolist()}: J12 no longer reproduces"


def test_F10_tensorflow_global_pooling_accepts_an_empty_plane() -> None:
    tensorflow_backend = _adapter("tensorflow")
    x = np.ones((1, 2, 0))
    with pytest.raises(spec.SpecError):
        reference.adaptive_max_pool_forward(x, output_size=(1,))
    mean = tensorflow_backend.adaptive_avg_pool_forward(x, output_size=(1,))
    peak = tensorflow_backend.adaptive_max_pool_forward(x, output_size=(1,))
    assert np.isnan(mean).all() and np.isneginf(peak).all(), f"mean={mean.tolist()}, max={peak.tolist()}: F10 gone"


def test_J10_jax_grouped_transposed_convolution_leaks_nan_into_other_groups() -> None:
    jax_backend = _adapter("jax")
    x, w = np.ones((1, 2, 3)), np.ones((2, 1, 2))
    x[0, 0, 1] = _NAN
    params = {"stride": (1,), "padding": ((0, 0),), "output_padding": (0,), "dilation": (1,), "groups": 2}
    assert reference.conv_transpose_forward(x, w, None, **params)[0, 1].tolist() == [1, 2, 2, 1]
    got = jax_backend.conv_transpose_forward(x, w, None, **params)[0, 1]
    assert np.isnan(got[1:3]).all(), f"channel 1={got.tolist()}: J10 no longer reproduces for conv_transpose"


@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
def test_J11_F7_global_max_pool_gradient_is_split_between_ties(framework: str) -> None:
    backend = _adapter(framework)
    x, dy = np.array([[[1.0, 3.0, 3.0, 2.0]]]), np.ones((1, 1, 1))
    assert reference.adaptive_max_pool_backward(x, dy, **_GLOBAL).tolist() == [[[0, 1, 0, 0]]]
    got = backend.adaptive_max_pool_backward(x, dy, **_GLOBAL).tolist()
    assert got == [[[0, 0.5, 0.5, 0]]], f"dx={got}: {'J11' if framework == 'jax' else 'F7'} no longer reproduces"


@pytest.mark.parametrize("framework", ["tensorflow", "onnxruntime"])
def test_F8_O13_argmax_pooling_ignores_nan(framework: str) -> None:
    backend = _adapter(framework)
    dtype = np.float32 if framework == "onnxruntime" else np.float64
    x = np.array([[[1.0, _NAN, 3.0, _NAN]]], dtype=dtype)
    assert reference.max_pool_indices(x, **_PAIRS).tolist() == [[[1, 3]]]
    got = backend.max_pool_indices(x, **_PAIRS).tolist()
    assert got == [[[0, 2]]], f"indices={got}: {'F8' if framework == 'tensorflow' else 'O13'} no longer reproduces"


def test_F9_tensorflow_argmax_pooling_rejects_an_empty_batch() -> None:
    tensorflow_backend = _adapter("tensorflow")
    x = np.zeros((0, 2, 4))
    assert reference.max_pool_indices(x, **_PAIRS).shape == (0, 2, 2)
    with pytest.raises(Exception, match="must not be empty"):
        tensorflow_backend.max_pool_indices(x, **_PAIRS)


def test_O10_onnxruntime_conv_transpose_limits_output_padding_by_the_stride_alone() -> None:
    ort_backend = _adapter("onnxruntime")
    x, w = np.ones((1, 1, 3), dtype=np.float32), np.ones((1, 1, 2), dtype=np.float32)
    params = {"stride": (1,), "padding": ((0, 0),), "output_padding": (1,), "dilation": (2,), "groups": 1}
    assert reference.conv_transpose_forward(x, w, None, **params).tolist() == [[[1, 1, 2, 1, 1, 0]]]
    with pytest.raises(Exception, match="may be too large for stride"):
        ort_backend.conv_transpose_forward(x, w, None, **params)


def test_O14_onnxruntime_indices_of_an_empty_window_are_minus_one_only_in_1d() -> None:
    ort_backend = _adapter("onnxruntime")
    x = np.full((1, 2, 1, 1), 5.0, dtype=np.float32)
    params = {"kernel_size": (2, 1), "stride": (1, 1), "padding": ((1, 1), (0, 0)), "dilation": (2, 1),
              "ceil_mode": False}
    assert reference.max_pool_indices(x, **params).ravel().tolist() == [-1, -1]
    got = ort_backend.max_pool_indices(x, **params).ravel().tolist()
    assert got == [-2, -2], f"indices={got}: O14 no longer reproduces (-(W + 1) in every plane once re-counted)"


@pytest.mark.parametrize(("values", "expected"), [([1.0, _NAN, 3.0], 3.0), ([-np.inf, -np.inf], -3.4028235e38)],
                         ids=["O11-nan", "O12-minus-inf"])
def test_O11_O12_onnxruntime_global_max_pool_drops_nan_and_minus_inf(values: list[float], expected: float) -> None:
    ort_backend = _adapter("onnxruntime")
    x = np.array([[values]], dtype=np.float32)
    want = reference.adaptive_max_pool_forward(x, **_GLOBAL)[0, 0, 0]
    assert np.isnan(want) or want == -np.inf
    got = float(ort_backend.adaptive_max_pool_forward(x, **_GLOBAL)[0, 0, 0])
    assert got == np.float32(expected), f"y={got}: the divergence no longer reproduces"

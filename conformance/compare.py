"""Comparing a backend's arrays with the expected ones under the spec's accuracy model.

A fast whole-array check runs first; only when it fails is the worst element
located and described. Every failure is a :class:`Violation` that carries the
rule, the problem, expected vs actual at the worst element and the bound used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

import reference
import spec
import spec.accuracy
from conformance.strategies import Case, Problem

F64 = np.float64


@dataclass
class Violation(Exception):
    """A rule of the spec that the backend broke, with everything needed to act on it."""

    rule: str
    summary: str
    case: Case | None = None
    #: Extra lines: expected vs actual, bound, counts.
    details: list[str] = field(default_factory=list)
    #: Python lines that reproduce the failing call against the backend.
    snippet: list[str] = field(default_factory=list)
    #: "failure" (wrong result), "error" (raised on valid input), "crash", "hang", "unsupported".
    kind: str = "failure"

    @property
    def case_text(self) -> tuple[str, str] | None:
        """The minimal case as (problem, kind of values), or None; a report read back from JSON keeps only these."""
        return None if self.case is None else (self.case.problem.describe(), self.case.inputs.kind)

    def __str__(self) -> str:
        lines = [f"[{self.rule}] {self.summary}"]
        if self.case_text is not None:
            lines.append(f"  problem: {self.case_text[0]}  values: {self.case_text[1]}")
        lines += [f"  {d}" for d in self.details]
        return "\n".join(lines)


class Unchecked(Exception):
    """A comparison whose bound would let an all-zero result pass: reported as not checked, never as passed."""


@dataclass(frozen=True)
class Bound:
    """An elementwise bound, and optionally a normwise one per slice (fast algorithms)."""

    elementwise: NDArray[F64]
    #: Axes that index one slice (e.g. (0, 1): per sample and channel) and the per-slice bound.
    slice_axes: tuple[int, ...] | None = None
    normwise: NDArray[F64] | None = None

    def describe_at(self, index: tuple[int, ...]) -> str:
        elementwise = self.elementwise[index] if self.elementwise.ndim else self.elementwise  # 0-d: one bound for all
        text = f"bound {float(elementwise):.3g} (elementwise)"
        if self.normwise is not None and self.slice_axes is not None:
            key = tuple(index[a] for a in self.slice_axes)
            text += f", or slice norm <= {float(self.normwise[key]):.3g} (fast-algorithm)"
        return text


def exact_bound() -> Bound:
    return Bound(np.zeros(()))


def as64(a: NDArray[Any] | None) -> NDArray[F64] | None:
    return None if a is None else np.asarray(a, dtype=F64)


def _fmt(v: Any) -> str:
    """A plain number with every digit needed to tell it apart (float64's shortest repr)."""
    return repr(float(v))


def _passes(a: NDArray[F64], e: NDArray[F64], bound: Bound) -> NDArray[np.bool_]:
    """Elementwise verdict: within the bound, or (fast algorithms) in a slice whose error norm is within it."""
    b = np.broadcast_to(bound.elementwise, e.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a - e)
        finite = np.isfinite(e)
        ok = np.asarray(np.where(finite, err <= b, (np.isnan(a) & np.isnan(e)) | (a == e)), dtype=np.bool_)
    if ok.all() or bound.normwise is None or bound.slice_axes is None or not finite.all() or not np.isfinite(a).all():
        return ok
    # A fast algorithm's error is normwise: a slice with a bad element passes if its 2-norm error does.
    other = tuple(i for i in range(e.ndim) if i not in bound.slice_axes)
    with np.errstate(over="ignore"):
        norms = np.sqrt(np.sum(err ** 2, axis=other)) if other else err
    slice_ok = norms <= bound.normwise
    expand = np.expand_dims(slice_ok, other) if other else slice_ok
    return np.asarray(ok | np.broadcast_to(expand, e.shape), dtype=np.bool_)


#: Rules whose expected values are exact (the reference's, or an oracle's): there a vacuous bound is reported.
VACUITY_CHECKED = frozenset({"forward-values", "backward-values", "correlate2d", "large-shapes"})


def compare(rule: str, name: str, actual: NDArray[Any], expected: NDArray[Any], bound: Bound, case: Case,
            snippet: list[str]) -> None:
    """Raise a Violation unless ``actual`` matches ``expected`` within ``bound``.

    NaN must match NaN and infinities must match exactly (same sign). A bound
    so loose that an all-zero result would pass too raises :class:`Unchecked`.
    """
    __tracebackhide__ = True
    if actual.shape != expected.shape:
        raise Violation(rule, f"{name}.shape={actual.shape}, but should be {expected.shape}", case, snippet=snippet)
    a = np.asarray(actual, dtype=F64)
    e = np.asarray(expected, dtype=F64)
    ok = _passes(a, e, bound)
    if ok.all():
        finite = np.isfinite(e)
        # Only against the reference or an oracle: a relation between two backend outputs may
        # legitimately compare rounding noise around an exact 0 with a bound that admits it.
        if rule in VACUITY_CHECKED and np.any(e[finite] != 0) and _passes(np.where(finite, 0.0, e), e, bound).all():
            largest = float(np.max(np.abs(e[finite])))
            raise Unchecked(f"{rule}: {name} not checked in {case.problem.dtype}: its accuracy bound exceeds every "
                            f"|expected| (up to {largest:.3g}), so an all-zero result would pass")
        return
    b = np.broadcast_to(bound.elementwise, e.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a - e)
    bad = np.argwhere(~ok)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ok, 0.0, np.where(np.isfinite(err) & (b > 0), err / np.where(b > 0, b, 1.0), np.inf))
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), e.shape))
    first = tuple(int(i) for i in bad[0])
    dtype = case.problem.dtype
    # ULPs at the expected value; where it is exactly 0 (whose ulp is the smallest subnormal), at the actual one.
    at_actual = e[worst] == 0 and np.isfinite(a[worst])
    ulp = float(spec.accuracy.ulps(err[worst], a[worst] if at_actual else e[worst], dtype)) if np.isfinite(
        err[worst]) else math.inf
    ulp_text = f"{ulp:.3g} ulp of {dtype}" + (" at the actual value" if at_actual else "")
    details = [
        f"{len(bad)} of {e.size} elements of {name} out of bounds; worst at {name}{list(worst)}:",
        f"  expected {_fmt(e[worst])}, actual {_fmt(a[worst])}, |error| {_fmt(err[worst])} ({ulp_text}), "
        f"{bound.describe_at(worst)}",
    ]
    if first != worst:
        details.append(f"  first bad element {name}{list(first)}: expected {_fmt(e[first])}, actual {_fmt(a[first])}")
    diagnosis = diagnose_precision(case, name, a, e)
    if diagnosis:
        details.append(diagnosis)
    if e.size <= 64:
        # Every value with the digits that tell it apart: at 6 digits a float32 result and its float64 reference
        # print the same. The backend's values in its own dtype (float16/32/64), the reference's in float64.
        shown = actual if actual.dtype in (np.float16, np.float32, np.float64) else a
        details.append(f"  expected {name} = {np.array2string(e, separator=', ', floatmode='unique')}")
        details.append(f"  actual   {name} = {np.array2string(shown, separator=', ', floatmode='unique')}")
    raise Violation(rule, f"{name} differs from the expected value", case, details, snippet)


# --------------------------------------------------------------------------- precision diagnosis

#: Narrow formats a kernel may silently compute in, by significant bits.
NARROW_FORMATS: tuple[tuple[str, int], ...] = (("float32", 24), ("TF32", 11), ("float16", 11), ("bfloat16", 8))



def compare_explained(rule: str, what: str, name: str, actual: NDArray[Any], expected: NDArray[Any], bound: Bound,
                      case: Case, snippet: list[str]) -> None:
    """:func:`compare`, with the summary of a violation prefixed by ``what`` the rule checks (an identity, a window rule)."""
    __tracebackhide__ = True
    try:
        compare(rule, name, actual, expected, bound, case, snippet)
    except Violation as violation:
        violation.summary = f"{what}: {violation.summary}"
        raise

def _rounded_case(case: Case, bits: int) -> Case:
    """The case with every input rounded to ``bits`` significant bits (kept in float64)."""
    i = case.inputs

    def rounded(v: NDArray[Any] | None) -> NDArray[Any] | None:
        return None if v is None else spec.accuracy.round_to_bits(np.asarray(v, dtype=F64), bits)

    x, dy = rounded(i.x), rounded(i.dy)
    assert x is not None and dy is not None
    return Case(case.problem, replace(i, x=x, w=rounded(i.w), b=rounded(i.b), dy=dy))


def diagnose_precision(case: Case, name: str, actual: NDArray[F64], expected: NDArray[F64]) -> str:
    """What precision the errors are consistent with, or "" when that cannot be told.

    For each format narrower than the dtype (float32, TF32 and float16: 11 bits, bfloat16: 8),
    the reference recomputes the result from the inputs rounded to that many significant bits,
    which is what a kernel computing in that format does to them. The format whose rounding
    error (rms over the result) is closest to the backend's, within a factor 2**1.5, is named.
    Otherwise the number of bits is extrapolated from the closest (rounding errors scale like
    2**-bits): errors beyond 4 bits' worth are a wrong result, not a precision problem.
    """
    p = case.problem
    if p.operation.selects or name not in ("y", "dx", "dw", "db") or not expected.size:
        return ""
    if not (np.isfinite(actual).all() and np.isfinite(expected).all()):
        return ""
    bits = spec.accuracy.SIGNIFICANT_BITS[p.dtype]
    error = float(np.sqrt(np.mean((actual - expected) ** 2)))
    where = f"{p.dtype} {p.op} {name}"
    if error == 0:
        return ""
    candidates: dict[int, float] = {}
    for probe in sorted({b for _, b in NARROW_FORMATS if b < bits} | {min(8, bits - 3)}, reverse=True):
        rounded = _rounded_case(case, probe)
        try:
            emulated = expected_forward(rounded) if name == "y" else expected_backward(rounded)[name]
        except Exception:  # a diagnosis must never hide the failure it explains
            return ""
        scale = float(np.sqrt(np.mean((np.asarray(emulated, F64) - expected) ** 2)))
        if scale > 0:
            candidates[probe] = scale
    if not candidates:
        return (f"  diagnosis: {where}: the inputs are exact in {min(8, bits - 3)} significant bits, so no rounding "
                "of them explains the error: a wrong result, not a precision problem")
    probe, scale = min(candidates.items(), key=lambda kv: abs(math.log2(error / kv[1])))
    estimate = probe - math.log2(error / scale)
    detail = f"(rms error {error:.3g}; rounding the inputs to {probe} bits gives {scale:.3g}; {p.dtype} has {bits})"
    if estimate >= bits - 0.5:
        return ""
    if estimate < 4:
        return (f"  diagnosis: {where}: errors far larger than rounding in any floating-point format: "
                f"a wrong result, not a precision problem {detail}")
    names = [fmt for fmt, b in NARROW_FORMATS if b < bits and abs(b - estimate) <= 1.5]
    guess = f" — {' or '.join(names)} arithmetic?" if names else ""
    return f"  diagnosis: {where}: errors consistent with ~{round(estimate)} significant bits{guess} {detail}"


# --------------------------------------------------------------------------- bounds from the spec's model

#: What bounds are computed for: a backend's capabilities (accuracy class and accumulation) or a bare class.
Model: TypeAlias = "spec.Capabilities | spec.AccuracyClass"


def _model(model: Model, dtype: str) -> tuple[spec.AccuracyClass, str]:
    if isinstance(model, spec.Capabilities):
        return model.accuracy, model.accumulation_for(dtype)
    return model, spec.accuracy.default_accumulation(dtype)


def _signal_points(problem: Problem) -> int:
    return math.prod(n + lo + hi for n, (lo, hi) in zip(problem.x_shape[2:], problem.params["padding"]))


def _slice_norms(a: NDArray[F64]) -> NDArray[F64]:
    """2-norms over the spatial axes of (A, B, *S) ``a``: one per (A, B) slice."""
    flat = np.nan_to_num(a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:])), nan=np.inf)
    with np.errstate(over="ignore"):
        return np.asarray(np.sqrt(np.sum(flat ** 2, axis=2)), dtype=F64)


def _reference(function: str, case: Case, names: tuple[str, ...], **arrays: NDArray[Any] | None) -> Any:
    """Call the reference's ``function`` on the case's arrays in float64 (``arrays`` replaces some by name)."""
    i = case.inputs
    values = {"x": as64(i.x), "w": as64(i.w), "b": as64(i.b), "dy": as64(i.dy), **arrays}
    return getattr(reference, function)(*(values[name] for name in names), **case.problem.params)


def _fast(model: Model, problem: Problem) -> bool:
    """Whether ``model`` declares a fast algorithm for an operation whose accuracy class it narrows (convolution)."""
    return _model(model, problem.dtype)[0] == "fast" and "accuracy" in problem.operation.capabilities


def forward_bound(case: Case, model: Model) -> Bound:
    """The spec's bound on the forward output of a correct backend of ``model``."""
    p, i = case.problem, case.inputs
    record = p.operation
    dtype = p.dtype
    _, acc = _model(model, dtype)
    if record.selects:
        return exact_bound()
    exact = expected_forward(case)
    terms = record.terms(p.x_shape, p.w_shape, p.params).forward
    absolute = {name: None if v is None else np.abs(v) for name, v in (("x", as64(i.x)), ("w", as64(i.w)),
                                                                        ("b", as64(i.b)))}
    magnitude = np.asarray(_reference(record.forward, case, record.forward_args, **absolute))
    if not record.has_weights:  # an average over a window entirely in padding is 0/0: no magnitude
        magnitude = np.nan_to_num(magnitude)
    elementwise = spec.elementwise_bound(magnitude, terms, dtype, result=exact, accumulation=acc)
    if not _fast(model, p):
        return Bound(elementwise)
    ax, aw = absolute["x"], absolute["w"]
    assert ax is not None and aw is not None
    # ||x_n restricted to o's group|| * ||w_o|| per (n, o).
    groups = int(p.params["groups"])
    n, c = p.x_shape[:2]
    xg = np.sqrt((np.asarray(ax).reshape(n, groups, c // groups, math.prod(p.x_shape[2:])) ** 2).sum(axis=(2, 3)))  # (N, G)
    wo = np.sqrt((aw.reshape(aw.shape[0], -1) ** 2).sum(axis=1))  # (O,)
    group_of = np.arange(aw.shape[0]) // (aw.shape[0] // groups)
    norms = xg[:, group_of] * wo[None, :]
    return Bound(elementwise, (0, 1), spec.normwise_bound(norms, _signal_points(p), dtype,
                                                          result_norms=_slice_norms(exact), accumulation=acc))


def backward_bounds(case: Case, model: Model) -> dict[str, Bound]:
    """The spec's bounds on each gradient a backward function returns, for a backend of ``model``."""
    p, i = case.problem, case.inputs
    record = p.operation
    assert record.backward is not None, f"{p.op} has no backward"
    dtype = p.dtype
    _, acc = _model(model, dtype)
    exact = expected_backward(case)
    terms = record.terms(p.x_shape, p.w_shape, p.params)._asdict()
    ady = np.abs(np.asarray(as64(i.dy)))
    if record.has_weights:  # every sum is of products: bound them by the same sums of magnitudes
        x64, w64 = as64(i.x), as64(i.w)
        assert x64 is not None and w64 is not None
        ax, aw = np.abs(x64), np.abs(w64)
        magnitudes = _reference(record.backward, case, record.backward_args, x=ax, w=aw, dy=ady)
    else:  # routing (max) depends on x's values; an average's weights do not
        magnitudes = _reference(record.backward, case, record.backward_args, dy=ady)
    magnitudes = magnitudes if isinstance(magnitudes, tuple) else (magnitudes,)
    bounds = {name: Bound(spec.elementwise_bound(np.asarray(m), terms[name], dtype, result=exact[name], accumulation=acc))
              for name, m in zip(record.backward_results, magnitudes)}
    if _fast(model, p):  # a convolution: weights
        groups = int(p.params["groups"])
        n, c = p.x_shape[:2]
        o = aw.shape[0]
        cg, og = c // groups, o // groups
        points = _signal_points(p)
        # Explicit sizes (not -1): N = 0 is a valid batch.
        out_points = math.prod(ady.shape[2:])
        dyn = np.sqrt((ady.reshape(n, groups, og, out_points) ** 2).sum(axis=(2, 3)))  # (N, G)
        wc = np.sqrt((aw.reshape(groups, og, cg, -1) ** 2).sum(axis=(1, 3))).reshape(c)  # (C,)
        norms_dx = dyn[:, np.arange(c) // cg] * wc[None, :]
        xn = np.sqrt((ax.reshape(n, c, math.prod(p.x_shape[2:])) ** 2).sum(axis=2))  # (N, C)
        dyo = np.sqrt((ady.reshape(n, o, out_points) ** 2).sum(axis=2))  # (N, O)
        # dw[o, c'] pairs output channel o with input channel g(o) * cg + c'.
        in_channel = (np.arange(o) // og)[:, None] * cg + np.arange(cg)[None, :]
        norms_dw = np.einsum("no,noc->oc", dyo, xn[:, in_channel])
        bounds["dx"] = Bound(bounds["dx"].elementwise, (0, 1), spec.normwise_bound(
            norms_dx, points, dtype, result_norms=_slice_norms(exact["dx"]), accumulation=acc))
        bounds["dw"] = Bound(bounds["dw"].elementwise, (0, 1), spec.normwise_bound(
            norms_dw, points, dtype, result_norms=_slice_norms(exact["dw"]), accumulation=acc))
    return bounds


def expected_forward(case: Case) -> NDArray[F64]:
    """The reference forward output, computed in float64 from the case's (exact) inputs (int64 for indices)."""
    record = case.problem.operation
    return np.asarray(_reference(record.forward, case, record.forward_args))


def expected_backward(case: Case) -> dict[str, NDArray[F64]]:
    """The reference gradients in float64, by name."""
    record = case.problem.operation
    assert record.backward is not None, f"{record.name} has no backward"
    result = _reference(record.backward, case, record.backward_args)
    results = result if isinstance(result, tuple) else (result,)
    return {name: np.asarray(value) for name, value in zip(record.backward_results, results)}

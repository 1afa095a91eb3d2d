"""Comparing a backend's arrays with the expected ones under the spec's accuracy model.

A fast whole-array check runs first; only when it fails is the worst element
located and described. Every failure is a :class:`Violation` that carries the
rule, the problem, expected vs actual at the worst element and the bound used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

import reference
import spec
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
    return f"{float(v):.9g}"


def compare(rule: str, name: str, actual: NDArray[Any], expected: NDArray[Any], bound: Bound, case: Case,
            snippet: list[str]) -> None:
    """Raise a Violation unless ``actual`` matches ``expected`` within ``bound``.

    NaN must match NaN and infinities must match exactly (same sign).
    """
    __tracebackhide__ = True
    if actual.shape != expected.shape:
        raise Violation(rule, f"{name}.shape={actual.shape}, but should be {expected.shape}", case, snippet=snippet)
    a = np.asarray(actual, dtype=F64)
    e = np.asarray(expected, dtype=F64)
    b = np.broadcast_to(bound.elementwise, e.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a - e)
        finite = np.isfinite(e)
        ok = np.where(finite, err <= b, (np.isnan(a) & np.isnan(e)) | (a == e))
    if ok.all():
        return
    if bound.normwise is not None and bound.slice_axes is not None and finite.all() and np.isfinite(a).all():
        # A fast algorithm's error is normwise: a slice with a bad element passes if its 2-norm error does.
        other = tuple(i for i in range(e.ndim) if i not in bound.slice_axes)
        norms = np.sqrt(np.sum(err ** 2, axis=other)) if other else err
        slice_ok = norms <= bound.normwise
        expand = np.expand_dims(slice_ok, other) if other else slice_ok
        ok = ok | np.broadcast_to(expand, e.shape)
        if ok.all():
            return
    bad = np.argwhere(~ok)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ok, 0.0, np.where(np.isfinite(err) & (b > 0), err / np.where(b > 0, b, 1.0), np.inf))
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), e.shape))
    first = tuple(int(i) for i in bad[0])
    details = [
        f"{len(bad)} of {e.size} elements of {name} out of bounds; worst at {name}{list(worst)}:",
        f"  expected {_fmt(e[worst])}, actual {_fmt(a[worst])}, |error| {_fmt(err[worst])}, {bound.describe_at(worst)}",
    ]
    if first != worst:
        details.append(f"  first bad element {name}{list(first)}: expected {_fmt(e[first])}, actual {_fmt(a[first])}")
    if e.size <= 64:
        details.append(f"  expected {name} = {np.array2string(e, precision=6, separator=', ')}")
        details.append(f"  actual   {name} = {np.array2string(a, precision=6, separator=', ')}")
    raise Violation(rule, f"{name} differs from the expected value", case, details, snippet)


# --------------------------------------------------------------------------- bounds from the spec's model

def _terms_conv(problem: Problem) -> tuple[int, int, int]:
    """(K forward, K dx, K dw/db) for a convolution."""
    assert problem.w_shape is not None
    groups = int(problem.params["groups"])
    kernel = math.prod(problem.w_shape[2:])
    out = problem.output_shape()
    return problem.w_shape[1] * kernel, (problem.w_shape[0] // groups) * kernel, out[0] * math.prod(out[2:])


def _signal_points(problem: Problem) -> int:
    return math.prod(n + lo + hi for n, (lo, hi) in zip(problem.x_shape[2:], problem.params["padding"]))


def forward_bound(case: Case, accuracy: spec.AccuracyClass) -> Bound:
    """The spec's bound on the forward output of a correct backend."""
    p, i = case.problem, case.inputs
    dtype = p.dtype
    ax, aw, ab = np.abs(np.asarray(as64(i.x))), as64(i.w), as64(i.b)
    if p.op == "max_pool":
        return exact_bound()
    if p.op == "avg_pool":
        magnitude = reference.avg_pool_forward(np.asarray(ax), **p.params)
        return Bound(spec.elementwise_bound(np.nan_to_num(magnitude), math.prod(p.params["kernel_size"]), dtype))
    assert aw is not None
    aw = np.abs(aw)
    ab = None if ab is None else np.abs(ab)
    if p.op == "linear":
        magnitude = ax @ aw.T + (0 if ab is None else ab)
        return Bound(spec.elementwise_bound(magnitude, p.x_shape[1], dtype))
    magnitude = reference.conv_forward(np.asarray(ax), aw, ab, **p.params)
    k_fwd, _, _ = _terms_conv(p)
    elementwise = spec.elementwise_bound(magnitude, k_fwd, dtype)
    if accuracy == "direct":
        return Bound(elementwise)
    # ||x_n restricted to o's group|| * ||w_o|| per (n, o).
    groups = int(p.params["groups"])
    n, c = p.x_shape[:2]
    xg = np.sqrt((np.asarray(ax).reshape(n, groups, c // groups, math.prod(p.x_shape[2:])) ** 2).sum(axis=(2, 3)))  # (N, G)
    wo = np.sqrt((aw.reshape(aw.shape[0], -1) ** 2).sum(axis=1))  # (O,)
    group_of = np.arange(aw.shape[0]) // (aw.shape[0] // groups)
    norms = xg[:, group_of] * wo[None, :]
    return Bound(elementwise, (0, 1), spec.normwise_bound(norms, _signal_points(p), dtype))


def backward_bounds(case: Case, accuracy: spec.AccuracyClass) -> dict[str, Bound]:
    """The spec's bounds on each gradient a backward function returns."""
    p, i = case.problem, case.inputs
    dtype = p.dtype
    x64 = np.asarray(as64(i.x))
    ady = np.abs(np.asarray(as64(i.dy)))
    if p.op == "max_pool":
        magnitude = reference.max_pool_backward(x64, ady, **p.params)
        return {"dx": Bound(spec.elementwise_bound(magnitude, math.prod(p.params["kernel_size"]), dtype))}
    if p.op == "avg_pool":
        magnitude = reference.avg_pool_backward(x64, ady, **p.params)
        return {"dx": Bound(spec.elementwise_bound(magnitude, math.prod(p.params["kernel_size"]), dtype))}
    w64 = np.asarray(as64(i.w))
    ax, aw = np.abs(x64), np.abs(w64)
    if p.op == "linear":
        n = p.x_shape[0]
        return {
            "dx": Bound(spec.elementwise_bound(ady @ aw, p.w_shape[0] if p.w_shape else 1, dtype)),
            "dw": Bound(spec.elementwise_bound(ady.T @ ax, n, dtype)),
            "db": Bound(spec.elementwise_bound(ady.sum(axis=0), n, dtype)),
        }
    mdx, mdw, mdb = reference.conv_backward(ax, aw, ady, **p.params)
    k_fwd, k_dx, k_dw = _terms_conv(p)
    bounds = {
        "dx": Bound(spec.elementwise_bound(mdx, k_dx, dtype)),
        "dw": Bound(spec.elementwise_bound(mdw, k_dw, dtype)),
        "db": Bound(spec.elementwise_bound(mdb, k_dw, dtype)),
    }
    if accuracy == "fast":
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
        bounds["dx"] = Bound(bounds["dx"].elementwise, (0, 1), spec.normwise_bound(norms_dx, points, dtype))
        bounds["dw"] = Bound(bounds["dw"].elementwise, (0, 1), spec.normwise_bound(norms_dw, points, dtype))
    return bounds


def expected_forward(case: Case) -> NDArray[F64]:
    """The reference forward output, computed in float64 from the case's (exact) inputs."""
    p, i = case.problem, case.inputs
    fn = getattr(reference, f"{p.op}_forward")
    if p.op in ("conv", "linear"):
        return np.asarray(fn(as64(i.x), as64(i.w), as64(i.b), **p.params))
    return np.asarray(fn(as64(i.x), **p.params))


def expected_backward(case: Case) -> dict[str, NDArray[F64]]:
    """The reference gradients in float64, by name."""
    p, i = case.problem, case.inputs
    fn = getattr(reference, f"{p.op}_backward")
    if p.op in ("conv", "linear"):
        dx, dw, db = fn(as64(i.x), as64(i.w), as64(i.dy), **p.params)
        return {"dx": dx, "dw": dw, "db": db}
    return {"dx": np.asarray(fn(as64(i.x), as64(i.dy), **p.params))}

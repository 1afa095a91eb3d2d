"""Max-pool indices' own rules: the first maximum on ties, NaN windows, windows without a real element,
and agreement with max pooling's forward and backward (MAXIDX-C2 … MAXIDX-C6).

Indices are integers: every comparison is exact. The generic ``forward-values``
already compares them with the reference on ordinary inputs; these rules draw
the inputs where implementations differ (ties, NaN, all-padding windows) and
check properties that need no reference at all.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference
import spec
from conformance.compare import Violation, as64, backward_bounds, compare, expected_forward
from conformance.context import Context, Unsupported, derive
from conformance.rules.base import F64, rule
from conformance.snippets import call_source
from conformance.strategies import Case, Inputs, cases, make_inputs, problems
from spec import Capabilities, OpName

SEED = st.integers(0, 2**32 - 1)


def window_members(x_shape: tuple[int, ...], params: dict[str, Any]) -> np.ndarray[Any, Any]:
    """(*out_spatial, K): the in-plane flat index of every kernel offset of every window (row-major), -1 in padding.

    Output ``o`` reads input position ``o*s + j*d - p_before`` at offset ``j`` (MAXPOOL-C3), per spatial dim.
    """
    spatial = x_shape[2:]
    out = spec.pool_output_shape(np.empty(x_shape), **{k: v for k, v in params.items() if k != "count_include_pad"})[2:]
    per_dim = []
    for o, k, s, d, (lo, _) in zip(out, params["kernel_size"], params["stride"], params["dilation"], params["padding"]):
        per_dim.append(np.arange(o)[:, None] * s + np.arange(k)[None, :] * d - lo)  # (o, k)
    members = np.full((*out, math.prod(params["kernel_size"])), -1, dtype=np.int64)
    for index, offset in enumerate(itertools.product(*(range(k) for k in params["kernel_size"]))):
        flat = np.zeros(out, dtype=np.int64)
        inside = np.ones(out, dtype=bool)
        for axis, (positions, j) in enumerate(zip(per_dim, offset)):
            shape = [1] * len(out)
            shape[axis] = out[axis]
            at = positions[:, j].reshape(shape)
            flat = flat + at * math.prod(spatial[axis + 1:])
            inside = inside & (at >= 0) & (at < spatial[axis])
        members[..., index] = np.where(inside, flat, -1)
    return members


def _pooling_case(case: Case, op: OpName) -> Case:
    """The same call as max pooling (forward and backward), with an upstream gradient of y's shape."""
    p = case.problem
    problem = replace(p, op=op)
    dy = make_inputs(problem, "integers", 0).dy
    return Case(problem, Inputs(case.inputs.x, None, None, dy, case.inputs.kind))


def _exact(rule_id: str, what: str, actual: np.ndarray[Any, Any], expected: np.ndarray[Any, Any], case: Case,
           snippet: list[str]) -> None:
    """Integer indices must equal the expected ones exactly; the report names the first window that differs."""
    __tracebackhide__ = True
    bad = np.argwhere(np.asarray(actual) != np.asarray(expected))
    if not len(bad):
        return
    first = tuple(int(k) for k in bad[0])
    details = [f"{len(bad)} of {expected.size} indices differ; first at indices{list(first)}: "
               f"expected {int(expected[first])}, actual {int(actual[first])}"]
    if expected.size <= 64:
        details += [f"expected indices = {np.asarray(expected).tolist()}", f"actual   indices = {np.asarray(actual).tolist()}"]
    raise Violation(rule_id, what, case, details, snippet)


def _snippet(ctx: Context, case: Case) -> list[str]:
    return ctx.snippet(case, [f"got = {call_source('max_pool_indices', case)}",
                              f"want = {call_source('max_pool_indices', case, backend='reference')}",
                              "print(got, want, sep='\\n')"])


# --------------------------------------------------------------------------- ties (MAXIDX-C3)

@st.composite
def _tie_cases(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str) -> Case:
    """Few distinct values, so windows tie: 0 and 1, or -0.0 and 0.0 (equal: the first one wins)."""
    case = draw(cases(op, caps, dtype, kinds=("integers",)))
    rng = np.random.default_rng(draw(SEED))
    shape = case.problem.x_shape
    if draw(st.booleans()):
        x = rng.integers(0, 2, size=shape).astype(F64)
    else:
        x = np.where(rng.random(shape) < 0.5, -0.0, 0.0) - (rng.random(shape) < 0.2)
    return derive(case, x=x.astype(dtype))


def check_ties(ctx: Context, case: Case) -> None:
    """Windows with a real element (the others are indices-empty-windows') must point at their first maximum."""
    got = ctx.forward("indices-ties", case)
    want = expected_forward(case)
    real = want >= 0
    _exact("indices-ties", "on ties the index must be the first maximum in row-major window order (MAXIDX-C3)",
           np.where(real, got, -1), want, case, _snippet(ctx, case))


# --------------------------------------------------------------------------- NaN windows (MAXIDX-C4)

@st.composite
def _nan_cases(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str) -> Case:
    """An ordinary case with one to three elements set to NaN."""
    case = draw(cases(op, caps, dtype, kinds=("integers", "floats")))
    rng = np.random.default_rng(draw(SEED))
    x = np.array(case.inputs.x, copy=True)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, size=min(flat.size, draw(st.integers(1, 3))), replace=False)] = np.nan
    return derive(case, x=x)


def check_nan(ctx: Context, case: Case) -> None:
    """A window holding NaN must point at one of its NaN elements; the other windows at their first maximum."""
    p = case.problem
    got = ctx.forward("indices-nan", case)
    want = expected_forward(case)
    x = np.asarray(as64(case.inputs.x))
    members = window_members(p.x_shape, dict(p.params))
    planes = x.reshape(*p.x_shape[:2], -1)
    nan_window = want >= 0
    nan_window &= np.isnan(np.take_along_axis(planes, np.maximum(want, 0).reshape(*p.x_shape[:2], -1), axis=2)
                           ).reshape(want.shape)
    in_window = (members[None, None] == got[..., None]).any(axis=-1) & (got >= 0)
    picked = np.take_along_axis(planes, np.clip(got, 0, planes.shape[2] - 1).reshape(*p.x_shape[:2], -1),
                                axis=2).reshape(got.shape)
    bad = nan_window & ~(in_window & np.isnan(picked))
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        raise Violation("indices-nan", "a window holding NaN must point at a NaN of that window (MAXIDX-C4)", case,
                        [f"window {list(where)}: expected the index of a NaN of the window (the reference's is "
                         f"{int(want[where])}), actual {int(got[where])}, where x holds "
                         f"{float(picked[where]) if in_window[where] else 'nothing of this window'}"],
                        _snippet(ctx, case))
    other = ~nan_window & (want >= 0)  # windows without a real element are indices-empty-windows'
    _exact("indices-nan", "a window without NaN must point at its first maximum", np.where(other, got, -1),
           np.where(other, want, -1), case, _snippet(ctx, case))


def _nan_applies(op: OpName, caps: Capabilities) -> str | None:
    return None if caps.nonfinite else "backend declares no non-finite inputs"


# --------------------------------------------------------------------------- empty windows (MAXIDX-C5)

def _dilated(op: OpName, caps: Capabilities) -> bool:
    return bool(getattr(caps, spec.OPERATIONS[op].dilation_field or "max_pool_dilation"))


@st.composite
def _empty_window_cases(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str) -> Case:
    """A problem whose first window along dim 0 lies entirely in padding."""
    base = draw(problems(op, caps, dtype))
    n = draw(st.integers(1, 3))
    params = dict(base.params)
    k, d = (2, n + 1) if _dilated(op, caps) else (1, 1)  # positions -1 and n of the dilated kernel are padding
    params["kernel_size"] = (k, *params["kernel_size"][1:])
    params["dilation"] = (d, *params["dilation"][1:])
    params["padding"] = ((1, 1), *params["padding"][1:])
    params["stride"] = (draw(st.integers(1, 2)), *params["stride"][1:])
    problem = replace(base, x_shape=(base.x_shape[0], base.x_shape[1], n, *base.x_shape[3:]), params=params)
    return Case(problem, make_inputs(problem, draw(st.sampled_from(("integers", "floats"))), draw(SEED)))


def _empty_window_applies(op: OpName, caps: Capabilities) -> str | None:
    # The two ways _empty_window_cases builds one: k=2 dilated past the input, or k=1 over a padding of 1.
    if (_dilated(op, caps) and spec.pool_padding_allowed(caps.pool_padding, 2, 2, 1, 1)
            or spec.pool_padding_allowed(caps.pool_padding, 1, 1, 1, 1)):
        return None
    return "needs pooling dilation, or padding beyond half the kernel"


def check_empty_windows(ctx: Context, case: Case) -> None:
    got = ctx.forward("indices-empty-windows", case)
    _exact("indices-empty-windows", "a window with no real element must have index -1 (MAXIDX-C5)", got,
           expected_forward(case), case, _snippet(ctx, case))


# --------------------------------------------------------------------------- agreement (MAXIDX-C2, MAXIDX-C6)

def check_agreement(ctx: Context, case: Case) -> None:
    """Indices lie in the plane; x at the index is y; scattering dy at the indices is max pooling's dx.

    y and dx are the backend's own max pooling where it has it (a relation needing no reference),
    otherwise the reference's.
    """
    p = case.problem
    got = ctx.forward("indices-agreement", case)
    plane = math.prod(p.x_shape[2:])
    snippet = _snippet(ctx, case)
    outside = (got < -1) | (got >= plane)
    if outside.any():
        where = tuple(int(k) for k in np.argwhere(outside)[0])
        raise Violation("indices-agreement", f"index outside the input plane of {plane} elements (MAXIDX-C2)", case,
                        [f"indices{list(where)} = {int(got[where])}: must be in [0, {plane}) (or -1 for a window "
                         "without a real element), counted within the plane x[n, c], not over the whole tensor"],
                        snippet)
    pooling = _pooling_case(case, "max_pool")
    own = ctx.has("max_pool_forward")
    try:
        y = ctx.forward("indices-agreement", pooling) if own else None
    except Unsupported:
        own, y = False, None
    if y is None:
        y = reference.max_pool_forward(case.inputs.x, **p.params)
    source = "the backend's max_pool_forward" if own else "the reference's max_pool_forward"
    x64 = np.asarray(as64(case.inputs.x)).reshape(*p.x_shape[:2], -1)
    selected = np.take_along_axis(x64, np.maximum(got, 0).reshape(*p.x_shape[:2], -1), axis=2).reshape(got.shape)
    members = window_members(p.x_shape, dict(p.params))
    in_window = (members[None, None] == got[..., None]).any(axis=-1)
    y64 = np.asarray(y, dtype=F64)
    ok = (got < 0) | (in_window & ((selected == y64) | (np.isnan(selected) & np.isnan(y64))))
    ok &= (got >= 0) | (y64 == -np.inf)  # -1 only where the window has no real element
    if not ok.all():
        where = tuple(int(k) for k in np.argwhere(~ok)[0])
        detail = ("outside its window" if got[where] >= 0 and not in_window[where] else
                  f"x.flat[{int(got[where])}] = {selected[where]!r}" if got[where] >= 0 else "-1")
        raise Violation("indices-agreement", f"the indexed element is not the window's maximum from {source} "
                        "(MAXIDX-C6)", case, [f"window {list(where)}: index {int(got[where])} ({detail}), "
                                              f"y = {y64[where]!r}"], snippet)
    if np.isnan(x64).any() or not ctx.has("max_pool_backward"):
        return
    try:
        dx = ctx.backward("indices-agreement", pooling)["dx"]
    except Unsupported:
        return
    dy = np.asarray(pooling.inputs.dy, dtype=F64)
    scattered = np.zeros(x64.shape)
    keep = got >= 0
    flat_got = got.reshape(*p.x_shape[:2], -1)
    flat_dy = np.where(keep, dy, 0.0).reshape(*p.x_shape[:2], -1)
    for n in range(p.x_shape[0]):
        for c in range(p.x_shape[1]):
            np.add.at(scattered[n, c], np.maximum(flat_got[n, c], 0), flat_dy[n, c])
    try:
        compare("indices-agreement", "dx", np.asarray(dx), scattered.reshape(p.x_shape),
                backward_bounds(pooling, ctx.backend.capabilities)["dx"], case, snippet)
    except Violation as violation:
        violation.summary = ("adding dy at the indices must give the backend's max_pool_backward dx (MAXIDX-C6): "
                             + violation.summary)
        raise


def _agreement_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return cases(op, caps, dtype, kinds=("integers", "distinct", "floats"))


INDICES_TIES = rule("indices-ties", "on ties the index is the first maximum in row-major window order",
                    ("max_pool_indices",), ("forward",), _tie_cases, check_ties, weight=0.5)
INDICES_NAN = rule("indices-nan", "a window holding NaN points at one of its NaN elements", ("max_pool_indices",),
                   ("forward",), _nan_cases, check_nan, weight=0.5, applies=_nan_applies)
INDICES_EMPTY_WINDOWS = rule("indices-empty-windows", "a window with no real element has index -1",
                             ("max_pool_indices",), ("forward",), _empty_window_cases, check_empty_windows,
                             weight=0.5, applies=_empty_window_applies)
INDICES_AGREEMENT = rule("indices-agreement", "indices lie in the plane and locate max pooling's y; dy scattered "
                         "at them is max pooling's dx", ("max_pool_indices",), ("forward",), _agreement_cases,
                         check_agreement, weight=0.5)

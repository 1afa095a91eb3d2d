"""The conformance rules. Each is named (its spec citations are in conformance.citations),
draws its cases from :mod:`conformance.strategies` and raises a
:class:`~conformance.compare.Violation` when the backend breaks it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.signal
from hypothesis import strategies as st

import spec
from conformance.compare import (
    Bound,
    Violation,
    as64,
    backward_bounds,
    compare,
    expected_backward,
    expected_forward,
    forward_bound,
)
from conformance.context import Context, derive
from conformance.large import check_large, large_cases
from conformance.nonfinite import (
    check_nonfinite,
    check_nonfinite_backward,
    check_overflow,
    nonfinite_applies,
    nonfinite_cases,
    overflow_cases,
)
from conformance.snippets import call_source
from conformance.strategies import (
    ORDINARY_KINDS,
    Case,
    Problem,
    ValueKind,
    cases,
    make_inputs,
    make_values,
    pool_problems,
    problems,
)
from spec import Capabilities, OpName

F64 = np.float64
CaseStrategy = Callable[[OpName, Capabilities, str], st.SearchStrategy[Case]]
Check = Callable[[Context, Case], None]
ALL_OPS: tuple[OpName, ...] = ("conv", "max_pool", "avg_pool", "linear")


@dataclass(frozen=True)
class Rule:
    """One named property of the spec, checked on generated cases."""

    id: str
    title: str
    ops: tuple[OpName, ...]
    #: Protocol functions the rule needs: "forward", "backward".
    needs: tuple[str, ...]
    strategy: CaseStrategy
    check: Check
    #: Relative number of examples (1.0 = the profile's base count).
    weight: float = 1.0
    #: Run in every requested dtype (False: only the widest the backend supports).
    per_dtype: bool = True
    #: Returns why the rule cannot run for (op, caps), or None.
    applies: Callable[[OpName, Capabilities], str | None] = lambda op, caps: None


# --------------------------------------------------------------------------- helpers

def _ordinary(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return cases(op, caps, dtype)


def _dot(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(np.sum(np.asarray(a, dtype=F64) * np.asarray(b, dtype=F64)))


def _dot_bound(weights: np.ndarray[Any, Any], bound: Bound) -> float:
    """A bound on |<weights, e>| for an error e within ``bound`` (elementwise, or per-slice norms)."""
    w = np.abs(np.asarray(weights, dtype=F64))
    total = float(np.sum(w * bound.elementwise))
    if bound.normwise is not None and bound.slice_axes is not None:
        other = tuple(i for i in range(w.ndim) if i not in bound.slice_axes)
        norms = np.sqrt(np.sum(w ** 2, axis=other)) if other else w
        total = max(total, float(np.sum(norms * bound.normwise)))
    return total


def _rounding64(*products: float) -> float:
    """Rounding of the float64 dot products the rules themselves compute."""
    return 1e-12 * sum(products)


def _cast(a: np.ndarray[Any, Any], dtype: str) -> np.ndarray[Any, Any]:
    with np.errstate(over="ignore"):
        return np.asarray(a).astype(dtype)


# --------------------------------------------------------------------------- value rules

def check_output_shape(ctx: Context, case: Case) -> None:
    """Shapes, dtypes and the result contract: every call goes through the checked caller."""
    ctx.forward("output-shape", case)
    if ctx.has(f"{case.problem.op}_backward"):
        ctx.backward("output-shape", case)


def check_forward_values(ctx: Context, case: Case) -> None:
    y = ctx.forward("forward-values", case)
    body = [f"got = {call_source(case.problem.op + '_forward', case)}",
            f"want = {call_source(case.problem.op + '_forward', case, backend='reference')}  # same values, computed in "
            f"{case.problem.dtype} by the reference",
            "print(np.abs(got.astype('float64') - want.astype('float64')).max())"]
    compare("forward-values", "y", y, expected_forward(case), forward_bound(case, ctx.backend.capabilities),
            case, ctx.snippet(case, body))


def check_backward_values(ctx: Context, case: Case) -> None:
    grads = ctx.backward("backward-values", case)
    want = expected_backward(case)
    bounds = backward_bounds(case, ctx.backend.capabilities)
    names = list(grads)
    fn = case.problem.op + "_backward"
    body = [f"got = {call_source(fn, case, dy=True)}",
            f"want = {call_source(fn, case, dy=True, backend='reference')}",
            f"for name, g, r in zip({names!r}, got if isinstance(got, tuple) else (got,), "
            "want if isinstance(want, tuple) else (want,)):",
            "    print(name, np.abs(g.astype('float64') - r.astype('float64')).max())"]
    for name in names:
        compare("backward-values", name, grads[name], want[name], bounds[name], case, ctx.snippet(case, body))


# --------------------------------------------------------------------------- scipy oracle

def _dilate(a: np.ndarray[Any, Any], factors: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Insert factor - 1 zeros between neighbours along each axis."""
    shape = tuple((n - 1) * f + 1 for n, f in zip(a.shape, factors))
    out = np.zeros(shape, dtype=a.dtype)
    out[tuple(slice(None, None, f) for f in factors)] = a
    return out


def correlate2d_oracle(x: np.ndarray[Any, Any], w: np.ndarray[Any, Any], dy: np.ndarray[Any, Any],
                       params: dict[str, Any]) -> tuple[np.ndarray[Any, Any], ...]:
    """(y, dx, dw) of a 2-D single-channel convolution, from scipy.signal alone (float64, no bias).

    y  = correlate2d(x_padded, w_dilated, "valid") subsampled by the stride;
    dW = correlate2d(x_padded, dY zero-inserted by the stride, "valid") subsampled by the dilation;
    dX = convolve2d(dY zero-inserted by the stride, w_dilated, "full"), cropped to the input.
    """
    (lo0, hi0), (lo1, hi1) = params["padding"]
    s, d = params["stride"], params["dilation"]
    xp = np.pad(x, ((lo0, hi0), (lo1, hi1)))
    wd = _dilate(w, d)
    full = scipy.signal.correlate2d(xp, wd, mode="valid")
    y = full[::s[0], ::s[1]][: dy.shape[0], : dy.shape[1]]
    dyz = _dilate(dy, s)
    dw_full = scipy.signal.correlate2d(xp, dyz, mode="valid")
    dw = dw_full[::d[0], ::d[1]][: w.shape[0], : w.shape[1]]
    dxp = np.zeros_like(xp)
    conv = scipy.signal.convolve2d(dyz, wd, mode="full")
    dxp[: conv.shape[0], : conv.shape[1]] = conv[: xp.shape[0], : xp.shape[1]]
    dx = dxp[lo0: lo0 + x.shape[0], lo1: lo1 + x.shape[1]]
    return y, dx, dw


def _single_channel_2d(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return cases(op, caps, dtype, rank=2, single_channel=True, max_batch=1)


def check_correlate2d(ctx: Context, case: Case) -> None:
    p, i = case.problem, case.inputs
    if p.x_shape[0] == 0:
        return
    assert i.w is not None
    x, w, dy = (np.asarray(as64(a))[0, 0] for a in (i.x, i.w, i.dy))
    y_o, dx_o, dw_o = correlate2d_oracle(x, w, dy, p.params)
    if i.b is not None:
        y_o = y_o + float(i.b[0])
    accuracy = ctx.backend.capabilities
    body = ["import scipy.signal", f"got = {call_source('conv_forward', case)}[0, 0]",
            "(lo0, hi0), (lo1, hi1) = " + repr(p.params["padding"]),
            "xp = np.pad(x[0, 0].astype('float64'), ((lo0, hi0), (lo1, hi1)))",
            f"wd = np.zeros(((w.shape[2] - 1) * {p.params['dilation'][0]} + 1, (w.shape[3] - 1) * "
            f"{p.params['dilation'][1]} + 1))",
            f"wd[::{p.params['dilation'][0]}, ::{p.params['dilation'][1]}] = w[0, 0]",
            f"want = scipy.signal.correlate2d(xp, wd, 'valid')[::{p.params['stride'][0]}, ::{p.params['stride'][1]}]"
            + (" + b[0]" if i.b is not None else ""),
            "print(got, want, sep='\\n')"]
    snippet = ctx.snippet(case, body)
    y = ctx.forward("correlate2d", case)
    fb = forward_bound(case, accuracy)
    compare("correlate2d", "y", y, y_o[None, None], fb, case, snippet)
    if ctx.has("conv_backward"):
        grads = ctx.backward("correlate2d", case)
        bb = backward_bounds(case, accuracy)
        compare("correlate2d", "dx", grads["dx"], dx_o[None, None], bb["dx"], case, snippet)
        compare("correlate2d", "dw", grads["dw"], dw_o[None, None], bb["dw"], case, snippet)


# --------------------------------------------------------------------------- gradients by finite differences

def _fd_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    # Max pooling is piecewise linear: distinct values one apart and steps of at most 0.25
    # never cross a kink, so central differences are exact up to rounding.
    kinds: tuple[ValueKind, ...] = ("distinct",) if op == "max_pool" else ORDINARY_KINDS
    return cases(op, caps, dtype, kinds=kinds)


def _variables(case: Case) -> list[tuple[str, str]]:
    """(input name, gradient name) pairs the rule perturbs."""
    out = [("x", "dx")]
    if case.problem.op in ("conv", "linear"):
        out.append(("w", "dw"))
        if case.problem.bias:
            out.append(("b", "db"))
    return out


def check_finite_differences(ctx: Context, case: Case) -> None:
    """<dy, f(v + h) - f(v - h)> = <grad, 2h>: exact for these piecewise-linear maps, up to rounding."""
    p = case.problem
    if p.x_shape[0] == 0:
        return
    rng = np.random.default_rng(zlib.crc32(p.describe().encode()))
    grads = ctx.backward("finite-differences", case)
    accuracy = ctx.backend.capabilities
    grad_bounds = backward_bounds(case, accuracy)
    dy = np.asarray(case.inputs.dy, dtype=F64)
    for name, grad_name in _variables(case):
        value = getattr(case.inputs, name)
        step = 0.25 if p.op == "max_pool" else 0.5
        if value.size <= 6:  # tiny inputs: every element on its own
            directions = [np.eye(value.size)[k].reshape(value.shape) * step for k in range(value.size)]
        else:
            directions = [rng.uniform(-step, step, size=value.shape)]
        for k, direction in enumerate(directions):
            plus = derive(case, **{name: _cast(value + direction, p.dtype)})
            minus = derive(case, **{name: _cast(value - direction, p.dtype)})
            y_plus, y_minus = ctx.forward("finite-differences", plus), ctx.forward("finite-differences", minus)
            delta = np.asarray(getattr(plus.inputs, name), dtype=F64) - np.asarray(getattr(minus.inputs, name), dtype=F64)
            # Windows with no real element (average pooling's 0/0) have no derivative: leave them out.
            defined = np.isfinite(np.asarray(y_plus, dtype=F64)) & np.isfinite(np.asarray(y_minus, dtype=F64))
            dy_f = np.where(defined, np.asarray(y_plus, dtype=F64) - np.asarray(y_minus, dtype=F64), 0.0)
            lhs = _dot(dy, dy_f)
            rhs = _dot(grads[grad_name], delta)
            if not (np.isfinite(lhs) and np.isfinite(rhs)):
                continue
            bound = (_dot_bound(dy, forward_bound(plus, accuracy)) + _dot_bound(dy, forward_bound(minus, accuracy))
                     + _dot_bound(delta, grad_bounds[grad_name])
                     + _rounding64(_dot(np.abs(dy), np.abs(dy_f)), _dot(np.abs(grads[grad_name]), np.abs(delta))))
            if abs(lhs - rhs) > bound:
                where = f"element {list(np.unravel_index(k, value.shape))}" if len(directions) > 1 else "a random direction"
                fn = p.op + "_forward"
                body = [
                    f"h = {_literal_array(direction)}  # perturbation of {name}",
                    f"{name}_plus, {name}_minus = ({name} + h).astype({name}.dtype), ({name} - h).astype({name}.dtype)",
                    f"y_plus = {call_source(fn, case, rename={name: name + '_plus'})}",
                    f"y_minus = {call_source(fn, case, rename={name: name + '_minus'})}",
                    f"grads = {call_source(p.op + '_backward', case, dy=True)}",
                    f"g = grads{'' if p.op.endswith('pool') else '[' + str(['dx', 'dw', 'db'].index(grad_name)) + ']'}",
                    "lhs = np.sum(dy.astype('float64') * (y_plus.astype('float64') - y_minus.astype('float64')))",
                    f"rhs = np.sum(g.astype('float64') * ({name}_plus.astype('float64') - {name}_minus.astype('float64')))",
                    "print(lhs, rhs)",
                ]
                raise Violation(
                    "finite-differences",
                    f"{grad_name} disagrees with central differences of the backend's own forward along {where}",
                    case,
                    [f"<dy, f({name}+h) - f({name}-h)> = {lhs:.9g}", f"<{grad_name}, 2h>          = {rhs:.9g}",
                     f"difference {abs(lhs - rhs):.3g} > bound {bound:.3g}"],
                    ctx.snippet(case, body),
                )


def _literal_array(a: np.ndarray[Any, Any]) -> str:
    from conformance.snippets import array_literal

    return array_literal(np.asarray(a, dtype=F64))


# --------------------------------------------------------------------------- adjoint (dot-product) tests

def _adjoint_applies(op: OpName, caps: Capabilities) -> str | None:
    return "max pooling is not linear; its routing is checked by finite-differences" if op == "max_pool" else None


def check_adjoint(ctx: Context, case: Case) -> None:
    """<dy, J v> = <J^T dy, v> with J v computed by the backend's forward on the direction v itself."""
    p, i = case.problem, case.inputs
    if p.x_shape[0] == 0:
        return
    rng = np.random.default_rng(zlib.crc32(p.describe().encode()) + 1)
    grads = ctx.backward("adjoint", case)
    accuracy = ctx.backend.capabilities
    gb = backward_bounds(case, accuracy)
    dy = np.asarray(i.dy, dtype=F64)
    pairs: list[tuple[str, Case, np.ndarray[Any, Any]]] = []
    v = make_values(p.x_shape, "floats", p.dtype, rng)
    if p.op in ("conv", "linear"):
        pairs.append(("dx", derive(case, x=v, b=None), v))
        u = make_values(p.w_shape or (), "floats", p.dtype, rng)
        pairs.append(("dw", derive(case, w=u, b=None), u))
    else:
        pairs.append(("dx", derive(case, x=v), v))
    for grad_name, linear_case, direction in pairs:
        # Windows with no real element (average pooling's 0/0) are outside the linear map.
        jv = np.nan_to_num(np.asarray(ctx.forward("adjoint", linear_case), dtype=F64), nan=0.0)
        lhs = _dot(dy, jv)
        rhs = _dot(grads[grad_name], direction)
        bound = (_dot_bound(dy, forward_bound(linear_case, accuracy)) + _dot_bound(direction, gb[grad_name])
                 + _rounding64(_dot(np.abs(dy), np.abs(jv)), _dot(np.abs(grads[grad_name]), np.abs(direction))))
        if abs(lhs - rhs) > bound or not np.isfinite(lhs - rhs):
            raise Violation("adjoint", f"{grad_name} is not the adjoint of the forward map: <dy, J v> != <{grad_name}, v>",
                            case, [f"<dy, J v> = {lhs:.9g}", f"<{grad_name}, v> = {rhs:.9g}",
                                   f"difference {abs(lhs - rhs):.3g} > bound {bound:.3g}"],
                            ctx.snippet(linear_case, [f"jv = {call_source(p.op + '_forward', linear_case)}",
                                                      "# compare np.sum(dy * jv) with np.sum(grad * direction)"]))


# --------------------------------------------------------------------------- metamorphic relations

def _relation_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[tuple[Case, int]]:
    # Small integers keep sums of inputs exact, so relations need no rounding argument of their own.
    return st.tuples(cases(op, caps, dtype, kinds=("integers",)), st.integers(0, 5))


def _fail_relation(relation: str, case: Case, lhs: np.ndarray[Any, Any], rhs: np.ndarray[Any, Any], bound: Bound,
                   ctx: Context, lines: list[str]) -> None:
    __tracebackhide__ = True
    try:
        compare("metamorphic", f"y[{relation}]", lhs, rhs, bound, case, ctx.snippet(case, lines))
    except Violation as violation:
        violation.summary = f"relation '{relation}' does not hold: {violation.summary}"
        raise


def _slice_norms(elementwise: np.ndarray[Any, Any], shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray[Any, Any]:
    other = tuple(k for k in range(len(shape)) if k not in axes)
    full = np.broadcast_to(np.asarray(elementwise, dtype=F64), shape)
    return np.sqrt(np.sum(full ** 2, axis=other)) if other else full


def _sum_bounds(*bounds: Bound) -> Bound:
    """The bound on a sum of errors, each within one of ``bounds``.

    Elementwise bounds add. When some bound is normwise (a fast algorithm),
    each error meets its elementwise bound or its per-slice norm bound, so the
    slice norm of the sum is at most the sum over terms of
    max(normwise, slice norm of elementwise) (triangle inequality).
    """
    elementwise = sum((b.elementwise for b in bounds), np.zeros(()))
    fast = [b for b in bounds if b.normwise is not None and b.slice_axes is not None]
    if not fast:
        return Bound(elementwise)
    axes = fast[0].slice_axes
    assert axes is not None and all(b.slice_axes == axes for b in fast)
    shape = np.broadcast_shapes(*(np.shape(b.elementwise) for b in bounds))
    normwise = sum((_slice_norms(b.elementwise, shape, axes) if b.normwise is None
                    else np.maximum(b.normwise, _slice_norms(b.elementwise, shape, axes)) for b in bounds),
                   np.zeros(()))
    return Bound(elementwise, axes, normwise)


def _take_channels(bound: Bound, perm: np.ndarray[Any, Any]) -> Bound:
    """The bound of ``y[:, perm]`` given the bound of ``y``."""
    elementwise = bound.elementwise[:, perm] if bound.elementwise.ndim else bound.elementwise
    normwise = None if bound.normwise is None else bound.normwise[:, perm]
    return Bound(elementwise, bound.slice_axes, normwise)


def check_metamorphic(ctx: Context, drawn: Any) -> None:
    case, choice = drawn
    p, i = case.problem, case.inputs
    accuracy = ctx.backend.capabilities
    fwd = p.op + "_forward"
    relations = _relations(p.op, ctx)
    relation = relations[choice % len(relations)]
    y = ctx.forward("metamorphic", case)
    yb = forward_bound(case, accuracy)
    if relation == "batch-independence":
        if p.x_shape[0] < 2:
            return
        parts = [ctx.forward("metamorphic", derive(case, x=i.x[k:k + 1])) for k in range(p.x_shape[0])]
        _fail_relation(relation, case, np.concatenate(parts), y, _sum_bounds(yb, yb), ctx,
                       [f"whole = {call_source(fwd, case)}", "# compare whole[k:k+1] with the call on x[k:k+1]"])
    elif relation == "channel-permutation":
        if p.op in ("conv", "linear"):
            assert i.w is not None
            groups = int(p.params.get("groups", 1))
            og = i.w.shape[0] // groups
            perm = np.concatenate([g * og + np.arange(og)[::-1] for g in range(groups)])
            permuted = derive(case, w=i.w[perm].copy(), b=None if i.b is None else i.b[perm].copy())
            expected = y[:, perm]
        else:
            perm = np.arange(p.x_shape[1])[::-1]
            permuted = derive(case, x=i.x[:, perm].copy())
            expected = y[:, perm]
        bound = _sum_bounds(forward_bound(permuted, accuracy), _take_channels(yb, perm))
        _fail_relation(relation, case, ctx.forward("metamorphic", permuted), expected, bound, ctx,
                       [f"y = {call_source(fwd, case)}", f"perm = {perm.tolist()!r}",
                        "# permuting output channels of w (or input channels of a pool) must permute y's channels"])
    elif relation == "linearity-x" or relation == "linearity-w":
        name = "x" if relation == "linearity-x" else "w"
        base = getattr(i, name)
        other = make_values(base.shape, "integers", p.dtype, np.random.default_rng(choice))
        no_bias = {"b": None} if p.op in ("conv", "linear") else {}
        c1, c2 = derive(case, **{name: base}, **no_bias), derive(case, **{name: other}, **no_bias)
        c12 = derive(case, **{name: (base.astype(F64) + other.astype(F64)).astype(p.dtype)}, **no_bias)
        lhs = ctx.forward("metamorphic", c12)
        rhs = ctx.forward("metamorphic", c1).astype(F64) + ctx.forward("metamorphic", c2).astype(F64)
        _fail_relation(relation, case, lhs, rhs, _sum_bounds(*(forward_bound(c, accuracy) for c in (c1, c2, c12))), ctx,
                       [f"# f({name}1 + {name}2) must equal f({name}1) + f({name}2) (no bias)"])
    elif relation == "monotone-map":
        mapped = derive(case, x=(i.x.astype(F64) * 2 + 1).astype(p.dtype))
        _fail_relation(relation, case, ctx.forward("metamorphic", mapped), (y.astype(F64) * 2 + 1).astype(p.dtype),
                       Bound(np.zeros(())), ctx, [f"y = {call_source(fwd, case)}",
                                                  "# max_pool(2 x + 1) must equal 2 max_pool(x) + 1 exactly"])
    elif relation == "translation":
        _check_translation(ctx, case, y, yb)
    elif relation == "linear-as-1x1-conv":
        assert i.w is not None
        conv_case = Case(Problem("conv", p.dtype, (*p.x_shape, 1), (*i.w.shape, 1), p.bias,
                                 {"stride": (1,), "padding": ((0, 0),), "dilation": (1,), "groups": 1}),
                         replace(i, x=i.x[:, :, None].copy(), w=i.w[:, :, None].copy(), dy=i.dy[:, :, None].copy()))
        y_conv = ctx.forward("metamorphic", conv_case)[:, :, 0]
        cb = forward_bound(conv_case, accuracy)
        conv_bound = Bound(cb.elementwise[:, :, 0], cb.slice_axes, cb.normwise)
        _fail_relation(relation, case, y_conv, y, _sum_bounds(yb, conv_bound), ctx,
                       ["# conv_forward(x[:, :, None], w[:, :, None], b, stride=(1,), padding=((0, 0),), dilation=(1,),"
                        " groups=1)[:, :, 0] must equal linear_forward(x, w, b)"])
    elif relation == "avg-as-depthwise-conv":
        params = p.params
        if any(lo or hi for lo, hi in params["padding"]) or params["ceil_mode"]:
            return
        channels = p.x_shape[1]
        kernel = tuple(params["kernel_size"])
        ones = np.ones((channels, 1, *kernel), dtype=p.dtype)
        conv_case = Case(Problem("conv", p.dtype, p.x_shape, ones.shape, False,
                                 {"stride": tuple(params["stride"]), "padding": params["padding"],
                                  "dilation": tuple(params["dilation"]), "groups": channels}),
                         replace(i, w=ones, b=None))
        sums = ctx.forward("metamorphic", conv_case).astype(F64) / math.prod(kernel)
        _fail_relation(relation, case, y, sums, _sum_bounds(yb, forward_bound(conv_case, accuracy)), ctx,
                       ["# without padding, avg_pool(x) must equal depthwise conv(x, ones) / prod(kernel_size)"])


def _relations(op: OpName, ctx: Context) -> list[str]:
    caps = ctx.backend.capabilities
    common = ["batch-independence", "channel-permutation"]
    if op == "conv":
        return [*common, "linearity-x", "linearity-w", "translation"]
    if op == "linear":
        extra = ["linear-as-1x1-conv"] if ctx.has("conv_forward") and 1 in caps.spatial_ranks else []
        return [*common, "linearity-x", "linearity-w", *extra]
    if op == "avg_pool":
        extra = ["avg-as-depthwise-conv"] if ctx.has("conv_forward") and caps.groups else []
        return [*common, "linearity-x", "translation", *extra]
    return [*common, "monotone-map", "translation"]


def _check_translation(ctx: Context, case: Case, y: np.ndarray[Any, Any], yb: Bound) -> None:
    """Dropping one stride of input along the first spatial dim drops one output row, away from padding."""
    p, i = case.problem, case.inputs
    s = p.params["stride"][0]
    lo, hi = p.params["padding"][0]
    if lo or hi or p.params.get("ceil_mode"):
        return
    shifted = derive(case, x=i.x[:, :, s:].copy())
    try:
        shifted_problem = shifted.problem
        out = shifted_problem.output_shape()
    except spec.SpecError:
        return
    shifted = Case(shifted_problem, replace(shifted.inputs, dy=np.zeros(out, dtype=p.dtype)))
    y_shift = ctx.forward("metamorphic", shifted)
    window = (slice(None), slice(None), slice(1, 1 + out[2]))
    # A sub-slice's error norm is at most the whole slice's: yb's normwise part still applies to the window.
    restricted = Bound(np.broadcast_to(yb.elementwise, y.shape)[window], yb.slice_axes, yb.normwise)
    bound = _sum_bounds(restricted, forward_bound(shifted, ctx.backend.capabilities))
    _fail_relation("translation", case, y_shift, y[window], bound, ctx,
                   [f"y = {call_source(p.op + '_forward', case)}",
                    f"# the same call on x[:, :, {s}:] must equal y[:, :, 1:] (no padding on that dim)"])


# --------------------------------------------------------------------------- where frameworks disagree

def _with_padding(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    def pad_first_dim(problem: Problem) -> Problem:
        params = dict(problem.params)
        (lo, hi), *rest = params["padding"]
        if lo == 0 and hi == 0:
            limit = params["kernel_size"][0] // 2 if caps.pool_padding == "half_kernel" else 1
            if limit == 0:
                return problem
            params["padding"] = ((1, 1), *rest)
            problem = replace(problem, params=params)
        return problem

    return st.builds(lambda pr, s: Case(pr, make_inputs(pr, "negative", s)),
                     pool_problems(caps, dtype, op).map(pad_first_dim), st.integers(0, 2**32 - 1))


def check_maxpool_pad_value(ctx: Context, case: Case) -> None:
    """All-negative inputs: a window at the border must return a negative maximum, never the 0 of 0-padding."""
    y = ctx.forward("maxpool-pad-value", case)
    compare("maxpool-pad-value", "y", y, expected_forward(case), Bound(np.zeros(())), case,
            ctx.snippet(case, [f"print({call_source('max_pool_forward', case)})  # all inputs < 0: so must be y"]))


def check_tie_routing(ctx: Context, case: Case) -> None:
    """Inputs of only a few distinct values: each window's gradient goes to its first maximum."""
    grads = ctx.backward("tie-routing", case)
    compare("tie-routing", "dx", grads["dx"], expected_backward(case)["dx"],
            backward_bounds(case, ctx.backend.capabilities)["dx"], case,
            ctx.snippet(case, [f"print({call_source('max_pool_backward', case, dy=True)})",
                               f"print({call_source('max_pool_backward', case, dy=True, backend='reference')})"]))


TIE_VALUES: tuple[str, ...] = ("zero-one", "signed-zeros", "minus-inf")


def _pad_before(problem: Problem, caps: Capabilities) -> Problem:
    """The problem with one element of padding before the first spatial axis, where the capabilities allow."""
    params = dict(problem.params)
    (lo, hi), *rest = params["padding"]
    limit = params["kernel_size"][0] // 2 if caps.pool_padding == "half_kernel" else 1
    if lo or limit < 1:
        return problem
    params["padding"] = ((1, hi if caps.asymmetric_padding else 1), *rest)
    return replace(problem, params=params)


def _tie_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    """Few distinct values, so windows tie: 0 and 1; -0.0 and 0.0 (equal, MAXPOOL-C10); and, when the backend
    takes non-finite inputs, real -inf values next to the padding (a real -inf beats the padding on a tie)."""
    values = TIE_VALUES if caps.nonfinite else TIE_VALUES[:2]

    def tied(case: Case, kind: str, seed: int) -> Case:
        rng = np.random.default_rng(seed)
        if kind == "minus-inf":  # padding before the input on the first axis, where the padding comes first
            problem = _pad_before(case.problem, caps)
            case = Case(problem, make_inputs(problem, "integers", seed))
        shape = case.problem.x_shape
        if kind == "zero-one":
            x = rng.integers(0, 2, size=shape).astype(F64)
        elif kind == "signed-zeros":
            x = np.where(rng.random(shape) < 0.5, -0.0, 0.0) - (rng.random(shape) < 0.2)
        else:  # all -inf, or -inf with some -1
            x = np.where(rng.random(shape) < float(rng.choice([1.0, 0.8])), -np.inf, -1.0)
        return derive(case, x=x.astype(dtype))

    return st.builds(tied, cases(op, caps, dtype, kinds=("integers",)), st.sampled_from(values),
                     st.integers(0, 2**32 - 1))


def _forward_and_backward(rule: str) -> Check:
    def check(ctx: Context, case: Case) -> None:
        accuracy = ctx.backend.capabilities
        fn = case.problem.op
        snippet = ctx.snippet(case, [f"print({call_source(fn + '_forward', case)})",
                                     f"print({call_source(fn + '_forward', case, backend='reference')})"])
        compare(rule, "y", ctx.forward(rule, case), expected_forward(case), forward_bound(case, accuracy), case,
                snippet)
        if ctx.has(f"{fn}_backward"):
            grads = ctx.backward(rule, case)
            want, bounds = expected_backward(case), backward_bounds(case, accuracy)
            for name in grads:
                compare(rule, name, grads[name], want[name], bounds[name], case, snippet)

    return check


@st.composite
def _ceil_cases(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str) -> Case:
    """Ceil-mode pooling; sometimes a dimension shorter than the (dilated) kernel, where only ceil mode
    gives a window (n = 1, k = 2, s = 2: one window, overhanging the input)."""
    problem = draw(pool_problems(caps, dtype, op, ceil_mode=True))
    if draw(st.booleans()):
        params = dict(problem.params)
        d = params["dilation"][0]
        k = draw(st.integers(2, 3))
        s = draw(st.integers(2, 3))
        span = d * (k - 1) + 1
        n = draw(st.integers(max(1, span - s + 1), span - 1))
        params = _set_first(_set_first(_set_first(params, "kernel_size", k), "stride", s), "padding", (0, 0))
        problem = replace(problem, x_shape=(*problem.x_shape[:2], n, *problem.x_shape[3:]), params=params)
    return Case(problem, make_inputs(problem, draw(st.sampled_from(ORDINARY_KINDS)), draw(st.integers(0, 2**32 - 1))))


def _ceil_applies(op: OpName, caps: Capabilities) -> str | None:
    return None if caps.ceil_mode else "backend declares no ceil_mode"


def _divisor_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return st.builds(lambda c: Case(c.problem, make_inputs(c.problem, "floats", 0)), _with_padding(op, caps, dtype))


@st.composite
def _empty_window_cases(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str) -> Case:
    """A pooling problem whose first window along dim 0 lies entirely in padding."""
    base = draw(pool_problems(caps, dtype, op))
    dilated = caps.max_pool_dilation if op == "max_pool" else caps.avg_pool_dilation
    n = draw(st.integers(1, 3))
    params = dict(base.params)
    if dilated:  # positions -1 and n of a 2-tap kernel with dilation n + 1 are both padding
        k, d, pad = 2, n + 1, (1, 1)
    else:  # a 1-tap kernel over one element of padding
        k, d, pad = 1, 1, (1, 1)
    params["kernel_size"] = (k, *params["kernel_size"][1:])
    params["dilation"] = (d, *params["dilation"][1:])
    params["padding"] = (pad, *params["padding"][1:])
    params["stride"] = (draw(st.integers(1, 2)), *params["stride"][1:])
    problem = replace(base, x_shape=(max(base.x_shape[0], 1), base.x_shape[1], n, *base.x_shape[3:]), params=params)
    return Case(problem, make_inputs(problem, draw(st.sampled_from(("integers", "floats"))), draw(st.integers(0, 2**32 - 1))))


def _empty_window_applies(op: OpName, caps: Capabilities) -> str | None:
    dilated = caps.max_pool_dilation if op == "max_pool" else caps.avg_pool_dilation
    if dilated or caps.pool_padding == "any":
        return None
    return "needs pooling dilation, or padding beyond half the kernel"


def _empty_batch_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return problems(op, caps, dtype).map(
        lambda pr: Case(replace(pr, x_shape=(0, *pr.x_shape[1:])), make_inputs(replace(pr, x_shape=(0, *pr.x_shape[1:])),
                                                                                  "floats", 0)))


def _empty_batch_applies(op: OpName, caps: Capabilities) -> str | None:
    return None if caps.empty_batch else "backend declares no empty batch"


# --------------------------------------------------------------------------- invalid parameters

INVALID_MUTATIONS: dict[str, tuple[str, ...]] = {
    "conv": ("stride=0", "dilation=0", "negative padding", "groups not dividing C_in", "w.shape[1] mismatch",
             "bias shape mismatch", "x of rank 2", "integer dtype", "empty output", "dy shape mismatch",
             "groups not dividing C_out", "groups=0", "kernel size 0", "C_in=0", "mixed dtypes", "bool inputs",
             "dy dtype mismatch"),
    "max_pool": ("kernel_size=0", "stride=0", "dilation=0", "negative padding", "empty output", "integer dtype",
                 "x of rank 2", "dy shape mismatch", "C=0", "non-bool ceil_mode", "bool inputs", "dy dtype mismatch"),
    "avg_pool": ("kernel_size=0", "stride=0", "dilation=0", "negative padding", "empty output", "integer dtype",
                 "x of rank 2", "dy shape mismatch", "C=0", "non-bool ceil_mode", "non-bool count_include_pad",
                 "bool inputs", "dy dtype mismatch"),
    # Not "x of rank 3": frameworks accept leading batch dimensions in linear layers (LINEAR-C1 allows it).
    "linear": ("w.shape[1] mismatch", "bias shape mismatch", "integer dtype", "dy shape mismatch", "in_features=0",
               "mixed dtypes", "bool inputs", "dy dtype mismatch"),
}


def _other_float(dtype: np.dtype[Any]) -> str:
    return "float32" if dtype == np.float64 else "float64"


def _invalid_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[tuple[Case, str]]:
    return st.tuples(cases(op, caps, dtype, kinds=("integers",)), st.sampled_from(INVALID_MUTATIONS[op]))


def _set_first(params: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = dict(params)
    out[key] = (value, *out[key][1:])
    return out


def break_case(case: Case, mutation: str) -> tuple[str, list[Any], dict[str, Any]]:
    """(function, args, kwargs) of a call that the spec declares invalid."""
    p, i = case.problem, case.inputs
    params = dict(p.params)
    x, w, b, dy = i.x, i.w, i.b, i.dy
    function = f"{p.op}_forward"
    if mutation in ("stride=0", "dilation=0", "kernel_size=0"):
        params = _set_first(params, mutation.split("=")[0], 0)
    elif mutation == "negative padding":
        params = _set_first(params, "padding", (-1, params["padding"][0][1]))
    elif mutation == "groups not dividing C_in":
        params["groups"] = x.shape[1] + 1
    elif mutation == "w.shape[1] mismatch":
        assert w is not None
        w = np.concatenate([w, w[:, :1]], axis=1)
    elif mutation == "bias shape mismatch":
        assert w is not None
        b = np.zeros(w.shape[0] + 1, dtype=x.dtype)
    elif mutation == "x of rank 2":
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))
        if w is not None and p.op == "conv":
            w = w.reshape(w.shape[0], math.prod(w.shape[1:]))
    elif mutation == "integer dtype":
        x = x.astype(np.int64)
        w = None if w is None else w.astype(np.int64)
        b = None if b is None else b.astype(np.int64)
    elif mutation == "empty output":
        # Longer than the padded input by more than a stride: no window, even in ceil mode.
        big = x.shape[2] + sum(params["padding"][0]) + params["stride"][0] + 1
        if p.op == "conv":
            assert w is not None
            w = np.zeros((w.shape[0], w.shape[1], big, *w.shape[3:]), dtype=w.dtype)
            params = _set_first(params, "dilation", 1)
        else:
            params = _set_first(_set_first(params, "kernel_size", big), "dilation", 1)
    elif mutation == "dy shape mismatch":
        function = f"{p.op}_backward"
        dy = np.zeros((*dy.shape[:-1], dy.shape[-1] + 1), dtype=dy.dtype)
    elif mutation == "groups not dividing C_out":
        # Two groups over two input channels and three output channels.
        assert w is not None
        x = np.concatenate([x[:, :1], x[:, :1]], axis=1)
        w = np.concatenate([w[:1, :1]] * 3, axis=0)
        b = None if b is None else np.zeros(3, dtype=x.dtype)
        params["groups"] = 2
    elif mutation == "groups=0":
        params["groups"] = 0
    elif mutation == "kernel size 0":
        assert w is not None
        w = w[:, :, :0]
    elif mutation in ("C_in=0", "C=0", "in_features=0"):
        x = x[:, :0]
        if w is not None:
            w = w[:, :0]
            params = {**params, "groups": 1} if p.op == "conv" else params
    elif mutation == "mixed dtypes":
        assert w is not None
        w = w.astype(_other_float(x.dtype))
    elif mutation == "bool inputs":
        x = x != 0
        w = None if w is None else w != 0
        b = None if b is None else b != 0
    elif mutation == "dy dtype mismatch":
        function = f"{p.op}_backward"
        dy = dy.astype(_other_float(x.dtype))
    elif mutation in ("non-bool ceil_mode", "non-bool count_include_pad"):
        key = mutation.split()[-1]
        params[key] = int(params[key])
    if function.endswith("_backward"):
        args: list[Any] = [x, w, dy] if p.op in ("conv", "linear") else [x, dy]
    else:
        args = [x, w, b] if p.op in ("conv", "linear") else [x]
    return function, args, params


def check_invalid(ctx: Context, drawn: Any) -> None:
    case, mutation = drawn
    function, args, kwargs = break_case(case, mutation)
    if not ctx.has(function):
        return
    # UnsupportedError declines the example (it is not a rejection); a crash or hang raises its finding.
    outcome = ctx.call(function, args, kwargs, case, what=f"on an invalid call ({mutation})")
    if outcome.error is None:
        got = outcome.result
        shape = getattr(got, "shape", None) or [getattr(g, "shape", None) for g in got] if got is not None else None
        raise Violation("invalid-params", f"{function} accepted an invalid call ({mutation}) instead of raising",
                        case, [f"kwargs: {kwargs}", f"returned {type(got).__name__} with shape {shape}"],
                        ctx.snippet(case, [f"# {mutation}", f"args, kwargs = ..., {kwargs!r}",
                                           "# the spec requires an exception (spec.SpecError in the reference)"]))


def _widest(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return cases(op, caps, dtype)


# --------------------------------------------------------------------------- the registry

def _rule(id: str, title: str, ops: tuple[OpName, ...], needs: tuple[str, ...],
          strategy: Any, check: Any, **kw: Any) -> Rule:
    return Rule(id, title, ops, needs, strategy, check, **kw)


RULES: tuple[Rule, ...] = (
    _rule("output-shape", "output shape and dtype follow the output-size rule; results are fresh arrays", ALL_OPS,
          ("forward",), _ordinary, check_output_shape, weight=0.5),
    _rule("forward-values", "forward values equal the reference within the accuracy bound", ALL_OPS,
          ("forward",), _ordinary, check_forward_values, weight=2.0),
    _rule("backward-values", "gradients equal the reference's within the accuracy bound", ALL_OPS,
          ("backward",), _ordinary, check_backward_values, weight=2.0),
    _rule("correlate2d", "2-D single-channel conv and its gradients equal scipy.signal.correlate2d", ("conv",),
          ("forward",), _single_channel_2d, check_correlate2d,
          applies=lambda op, caps: None if 2 in caps.spatial_ranks else "backend has no 2-D convolution"),
    _rule("finite-differences", "gradients equal central differences of the backend's own forward", ALL_OPS,
          ("forward", "backward"), _fd_cases, check_finite_differences),
    _rule("adjoint", "backward is the exact adjoint of the (linear) forward map", ("conv", "avg_pool", "linear"),
          ("forward", "backward"), _ordinary, check_adjoint),
    _rule("metamorphic", "linearity, batch independence, translation, permutation, equivalences", ALL_OPS,
          ("forward",), _relation_cases, check_metamorphic),
    _rule("maxpool-pad-value", "max pooling pads with -inf, never 0", ("max_pool",),
          ("forward",), _with_padding, check_maxpool_pad_value, weight=0.5),
    _rule("nan-propagation", "NaN and infinities propagate to every output whose window holds them", ALL_OPS,
          ("forward",), nonfinite_cases, check_nonfinite, weight=0.5, applies=nonfinite_applies),
    _rule("nonfinite-backward", "backward at NaN/inf inputs returns arrays of the right shape and does not raise",
          ALL_OPS, ("backward",), nonfinite_cases, check_nonfinite_backward, weight=0.25, applies=nonfinite_applies),
    _rule("overflow", "a result beyond the dtype's range is +-inf with the exact result's sign", ("conv", "linear"),
          ("forward",), overflow_cases, check_overflow, weight=0.2),
    _rule("tie-routing", "on ties the gradient goes to the first maximum in row-major window order", ("max_pool",),
          ("backward",), _tie_cases, check_tie_routing, weight=0.5),
    _rule("ceil-mode", "ceil mode: the last window starts inside the input or the before-padding",
          ("max_pool", "avg_pool"), ("forward",), _ceil_cases, _forward_and_backward("ceil-mode"), weight=0.5,
          applies=_ceil_applies),
    _rule("avgpool-divisor", "the divisor counts the padded input (count_include_pad) or the input, never overhang",
          ("avg_pool",), ("forward",), _divisor_cases, _forward_and_backward("avgpool-divisor"), weight=0.5),
    _rule("empty-windows", "a window entirely in padding: max -inf, average 0 or NaN, no gradient",
          ("max_pool", "avg_pool"), ("forward",), _empty_window_cases, _forward_and_backward("empty-windows"),
          weight=0.5, applies=_empty_window_applies),
    _rule("empty-batch", "an empty batch (N = 0) gives empty results", ALL_OPS, ("forward",),
          _empty_batch_cases, _forward_and_backward("empty-batch"), weight=0.2, applies=_empty_batch_applies),
    _rule("invalid-params", "invalid parameters raise instead of returning a result", ALL_OPS, ("forward",),
          _invalid_cases, check_invalid, weight=1.0, per_dtype=False),
    # Last, so that a bug the ordinary rules catch is reported by them first.
    _rule("large-shapes", "channels and planes one past block sizes (33, 65, 129 channels; 17 to 65 pixels) "
          "match the reference forward and backward", ALL_OPS, ("forward",), large_cases,
          check_large, weight=0.1),
)
RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}

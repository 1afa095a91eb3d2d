"""Metamorphic relations: properties linking several calls of the backend, checked without the reference."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import spec
from conformance.bounds import sum_bounds, take_channels
from conformance.compare import Bound, Violation, compare, forward_bound
from conformance.context import Context, derive
from conformance.rules.base import ALL_OPS, F64, rule
from conformance.snippets import call_source
from conformance.strategies import Case, Problem, cases, make_values
from spec import Capabilities, OpName


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
        _fail_relation(relation, case, np.concatenate(parts), y, sum_bounds(yb, yb), ctx,
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
        bound = sum_bounds(forward_bound(permuted, accuracy), take_channels(yb, perm))
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
        _fail_relation(relation, case, lhs, rhs, sum_bounds(*(forward_bound(c, accuracy) for c in (c1, c2, c12))), ctx,
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
        _fail_relation(relation, case, y_conv, y, sum_bounds(yb, conv_bound), ctx,
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
        _fail_relation(relation, case, y, sums, sum_bounds(yb, forward_bound(conv_case, accuracy)), ctx,
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
    bound = sum_bounds(restricted, forward_bound(shifted, ctx.backend.capabilities))
    _fail_relation("translation", case, y_shift, y[window], bound, ctx,
                   [f"y = {call_source(p.op + '_forward', case)}",
                    f"# the same call on x[:, :, {s}:] must equal y[:, :, 1:] (no padding on that dim)"])


METAMORPHIC = rule("metamorphic", "linearity, batch independence, translation, permutation, equivalences", ALL_OPS,
                   ("forward",), _relation_cases, check_metamorphic)

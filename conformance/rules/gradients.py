"""Gradients checked against the backend's own forward: central finite differences and the adjoint identity."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.bounds import dot_bound
from conformance.compare import Violation, backward_bounds, forward_bound
from conformance.context import Context, derive
from conformance.rules.base import F64, WITH_BACKWARD, cast, dot, ops_where, ordinary, rounding64, rule, zero_bias
from conformance.strategies import ORDINARY_KINDS, Case, ValueKind, cases, make_values
from spec import OPERATIONS, Capabilities, OpName


def _fd_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    # Max pooling (an operation that selects) is piecewise linear: distinct values one apart and steps
    # of at most 0.25 never cross a kink, so central differences are exact up to rounding.
    kinds: tuple[ValueKind, ...] = ("distinct",) if OPERATIONS[op].selects else ORDINARY_KINDS
    return cases(op, caps, dtype, kinds=kinds)


def _variables(case: Case) -> list[tuple[str, str]]:
    """(input name, gradient name) pairs the rule perturbs."""
    out = [("x", "dx")]
    if case.problem.operation.has_weights:
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
        step = 0.25 if p.operation.selects else 0.5
        if value.size <= 6:  # tiny inputs: every element on its own
            directions = [np.eye(value.size)[k].reshape(value.shape) * step for k in range(value.size)]
        else:
            directions = [rng.uniform(-step, step, size=value.shape)]
        for k, direction in enumerate(directions):
            plus = derive(case, **{name: cast(value + direction, p.dtype)})
            minus = derive(case, **{name: cast(value - direction, p.dtype)})
            y_plus, y_minus = ctx.forward("finite-differences", plus), ctx.forward("finite-differences", minus)
            delta = np.asarray(getattr(plus.inputs, name), dtype=F64) - np.asarray(getattr(minus.inputs, name), dtype=F64)
            # Windows with no real element (average pooling's 0/0) have no derivative: leave them out.
            defined = np.isfinite(np.asarray(y_plus, dtype=F64)) & np.isfinite(np.asarray(y_minus, dtype=F64))
            dy_f = np.where(defined, np.asarray(y_plus, dtype=F64) - np.asarray(y_minus, dtype=F64), 0.0)
            lhs = dot(dy, dy_f)
            rhs = dot(grads[grad_name], delta)
            if not (np.isfinite(lhs) and np.isfinite(rhs)):
                continue
            bound = (dot_bound(dy, forward_bound(plus, accuracy)) + dot_bound(dy, forward_bound(minus, accuracy))
                     + dot_bound(delta, grad_bounds[grad_name])
                     + rounding64(dot(np.abs(dy), np.abs(dy_f)), dot(np.abs(grads[grad_name]), np.abs(delta))))
            if abs(lhs - rhs) > bound:
                where = f"element {list(np.unravel_index(k, value.shape))}" if len(directions) > 1 else "a random direction"
                raise Violation(
                    "finite-differences",
                    f"{grad_name} disagrees with central differences of the backend's own forward along {where}",
                    case,
                    [f"<dy, f({name}+h) - f({name}-h)> = {lhs:.9g}", f"<{grad_name}, 2h>          = {rhs:.9g}",
                     f"difference {abs(lhs - rhs):.3g} > bound {bound:.3g}"],
                )


# --------------------------------------------------------------------------- adjoint (dot-product) tests

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
    if p.operation.has_weights:
        pairs.append(("dx", derive(case, x=v, b=zero_bias(case)), v))
        u = make_values(p.w_shape or (), "floats", p.dtype, rng)
        pairs.append(("dw", derive(case, w=u, b=zero_bias(case)), u))
    else:
        pairs.append(("dx", derive(case, x=v), v))
    for grad_name, linear_case, direction in pairs:
        # Windows with no real element (average pooling's 0/0) are outside the linear map.
        jv = np.nan_to_num(np.asarray(ctx.forward("adjoint", linear_case), dtype=F64), nan=0.0)
        lhs = dot(dy, jv)
        rhs = dot(grads[grad_name], direction)
        bound = (dot_bound(dy, forward_bound(linear_case, accuracy)) + dot_bound(direction, gb[grad_name])
                 + rounding64(dot(np.abs(dy), np.abs(jv)), dot(np.abs(grads[grad_name]), np.abs(direction))))
        if abs(lhs - rhs) > bound or not np.isfinite(lhs - rhs):
            raise Violation("adjoint", f"{grad_name} is not the adjoint of the forward map: <dy, J v> != <{grad_name}, v>",
                            case, [f"<dy, J v> = {lhs:.9g}", f"<{grad_name}, v> = {rhs:.9g}",
                                   f"difference {abs(lhs - rhs):.3g} > bound {bound:.3g}"])


FINITE_DIFFERENCES = rule("finite-differences", "gradients equal central differences of the backend's own forward",
                          WITH_BACKWARD, ("forward", "backward"), _fd_cases, check_finite_differences)
#: Max pooling is not linear: its routing is checked by finite-differences.
ADJOINT = rule("adjoint", "backward is the exact adjoint of the (linear) forward map",
               ops_where(lambda r: r.linear and r.has_backward), ("forward", "backward"), ordinary, check_adjoint)

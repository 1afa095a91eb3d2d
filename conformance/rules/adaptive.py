"""Adaptive pooling's own rules: the window rule at its edges, global pooling and the identity
(ADAPTIVE-C3, ADAPTIVE-C4, ADAPTIVE-C7 … ADAPTIVE-C9).

The generic rules compare both operations with the reference, with central
differences and (average) with the adjoint; these draw the output sizes where
implementations differ — larger than the input, not dividing it, 1, equal to
it — and check the last two against oracles that need no reference: the mean
or maximum of the whole plane, and the input itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference
from conformance.compare import (
    as64,
    backward_bounds,
    compare_explained,
    exact_bound,
    expected_backward,
    expected_forward,
    forward_bound,
)
from conformance.context import Context
from conformance.rules.base import F64, rule
from conformance.snippets import call_source
from conformance.strategies import ORDINARY_KINDS, Case, make_inputs, problems
from spec import Capabilities, OpName

SEED = st.integers(0, 2**32 - 1)


def _with_output_size(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str, sizes: Any) -> Case:
    """A problem of ``op`` whose output size per dim is ``sizes(draw, n)``, with values of an ordinary kind."""
    base = draw(problems(op, caps, dtype))
    output_size = tuple(sizes(draw, n) for n in base.x_shape[2:])
    problem = replace(base, params={**base.params, "output_size": output_size})
    return Case(problem, make_inputs(problem, draw(st.sampled_from(ORDINARY_KINDS)), draw(SEED)))


def _edge_size(draw: st.DrawFn, n: int) -> int:
    """Larger than the input, not dividing it, or dividing it: where a wrong window rule shows."""
    kind = draw(st.sampled_from(("larger", "any", "divides")))
    if kind == "larger":
        return draw(st.integers(n + 1, 2 * n + 2))
    if kind == "divides":
        return draw(st.sampled_from([o for o in range(1, n + 1) if n % o == 0]))
    return draw(st.integers(1, n + 2))


@st.composite
def _window_cases(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str) -> Case:
    return _with_output_size(draw, op, caps, dtype, _edge_size)


@st.composite
def _global_cases(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str) -> Case:
    return _with_output_size(draw, op, caps, dtype, lambda draw, n: 1)


@st.composite
def _identity_cases(draw: st.DrawFn, op: OpName, caps: Capabilities, dtype: str) -> Case:
    return _with_output_size(draw, op, caps, dtype, lambda draw, n: n)


def _snippet(ctx: Context, case: Case) -> list[str]:
    fn = case.problem.op
    return ctx.snippet(case, [f"print({call_source(fn + '_forward', case)})",
                              f"print({call_source(fn + '_forward', case, backend='reference')})"])




def check_windows(ctx: Context, case: Case) -> None:
    """Forward and backward against the reference at output sizes larger than, dividing and not dividing the input."""
    caps = ctx.backend.capabilities
    sizes = f"output_size {case.problem.params['output_size']} for input {case.problem.x_shape[2:]}"
    snippet = _snippet(ctx, case)
    compare_explained("adaptive-windows", f"windows [floor(i·n/o), ceil((i+1)·n/o)) at {sizes}", "y",
               ctx.forward("adaptive-windows", case), expected_forward(case), forward_bound(case, caps), case, snippet)
    p = case.problem
    if all(n % o == 0 for n, o in zip(p.x_shape[2:], p.params["output_size"])):
        _check_tiling(ctx, case, snippet)
    if ctx.has(f"{p.op}_backward"):
        compare_explained("adaptive-windows", f"the backward's windows at {sizes}", "dx",
                   ctx.backward("adaptive-windows", case)["dx"], expected_backward(case)["dx"],
                   backward_bounds(case, caps)["dx"], case, snippet)


def _check_tiling(ctx: Context, case: Case, snippet: list[str]) -> None:
    """Output sizes dividing the input: the windows tile it, so adaptive pooling is fixed-window pooling with
    kernel_size = stride = n / o (ADAPTIVE-C4), computed by the reference's fixed-window pooling in float64."""
    p = case.problem
    kernel = tuple(n // o for n, o in zip(p.x_shape[2:], p.params["output_size"]))
    padding = tuple((0, 0) for _ in kernel)
    ones = (1,) * len(kernel)
    x = np.asarray(as64(case.inputs.x))
    if p.op == "adaptive_avg_pool":
        want = reference.avg_pool_forward(x, kernel_size=kernel, stride=kernel, padding=padding, dilation=ones,
                                          ceil_mode=False, count_include_pad=True)
        bound = forward_bound(case, ctx.backend.capabilities)
    else:
        want = reference.max_pool_forward(x, kernel_size=kernel, stride=kernel, padding=padding, dilation=ones,
                                          ceil_mode=False)
        bound = exact_bound()
    compare_explained("adaptive-windows", f"output sizes dividing the input must equal fixed-window pooling with kernel_size "
               f"= stride = {kernel}", "y", ctx.forward("adaptive-windows", case), want, bound, case, snippet)


def check_global(ctx: Context, case: Case) -> None:
    """Output size 1: the mean or the maximum of the whole plane, and its gradient (np.mean / np.max as the oracle)."""
    p = case.problem
    caps = ctx.backend.capabilities
    x = np.asarray(as64(case.inputs.x)).reshape(*p.x_shape[:2], -1)
    dy = np.asarray(as64(case.inputs.dy)).reshape(*p.x_shape[:2])
    average = p.op == "adaptive_avg_pool"
    spatial_ones = (1,) * (len(p.x_shape) - 2)
    want = (x.mean(axis=2) if average else x.max(axis=2)).reshape(*p.x_shape[:2], *spatial_ones)
    snippet = _snippet(ctx, case)
    what = "global pooling (output size 1) must be the " + ("mean" if average else "maximum") + " of the plane"
    compare_explained("adaptive-global", what, "y", ctx.forward("adaptive-global", case), want,
               forward_bound(case, caps) if average else exact_bound(), case, snippet)
    if not ctx.has(f"{p.op}_backward"):
        return
    if average:
        dx = np.broadcast_to((dy / x.shape[2])[..., None], x.shape)
    else:
        dx = np.zeros(x.shape)
        first = np.argmax(x, axis=2)  # the first maximum (a NaN's, if the plane holds one)
        np.put_along_axis(dx, first[..., None], dy[..., None], axis=2)
    compare_explained("adaptive-global", "its gradient must go " + ("in equal shares to every element" if average else
               "to the plane's first maximum"), "dx", ctx.backward("adaptive-global", case)["dx"],
               dx.reshape(p.x_shape), backward_bounds(case, caps)["dx"], case, snippet)


def check_identity(ctx: Context, case: Case) -> None:
    """Output size equal to the input size: every window is one element, so y = x and dx = dy, exactly."""
    p = case.problem
    snippet = _snippet(ctx, case)
    compare_explained("adaptive-identity", "output size = input size must give y = x", "y",
               ctx.forward("adaptive-identity", case), np.asarray(case.inputs.x, dtype=F64), exact_bound(), case,
               snippet)
    if ctx.has(f"{p.op}_backward"):
        compare_explained("adaptive-identity", "output size = input size must give dx = dy", "dx",
                   ctx.backward("adaptive-identity", case)["dx"], np.asarray(case.inputs.dy, dtype=F64),
                   exact_bound(), case, snippet)


ADAPTIVE_OPS: tuple[OpName, ...] = ("adaptive_avg_pool", "adaptive_max_pool")


def _any_size(op: OpName, caps: Capabilities) -> str | None:
    return None if caps.adaptive_output_size == "any" else "backend declares global pooling only"


ADAPTIVE_WINDOWS = rule("adaptive-windows", "adaptive windows at output sizes larger than, dividing and not dividing "
                        "the input", ADAPTIVE_OPS, ("forward",), _window_cases, check_windows, weight=0.5, applies=_any_size)
ADAPTIVE_GLOBAL = rule("adaptive-global", "output size 1 is the mean or maximum of the whole plane", ADAPTIVE_OPS,
                       ("forward",), _global_cases, check_global, weight=0.3)
ADAPTIVE_IDENTITY = rule("adaptive-identity", "output size equal to the input size is the identity", ADAPTIVE_OPS,
                         ("forward",), _identity_cases, check_identity, weight=0.3,
                         applies=_any_size)


# --------------------------------------------------------------------------- invalid calls of its own (ADAPTIVE-C11)

def break_call(case: Case, mutation: str) -> tuple[str, list[Any], dict[str, Any]] | None:
    """(function, args, kwargs) of an invalid adaptive pooling call for the mutations only it has, else None."""
    p = case.problem
    params = dict(p.params)
    x = case.inputs.x
    sizes = tuple(params["output_size"])
    if mutation == "output_size=0":  # ADAPTIVE-C2: every output size is >= 1
        params["output_size"] = (0, *sizes[1:])
    elif mutation == "negative output_size":
        params["output_size"] = (-1, *sizes[1:])
    elif mutation == "output_size of wrong length":  # ADAPTIVE-C2: one per spatial dim
        params["output_size"] = (*sizes, 1)
    elif mutation == "empty input plane":  # ADAPTIVE-C1: every spatial size is >= 1
        x = x[:, :, :0]
    else:
        return None
    return f"{p.op}_forward", [x], params


#: The invalid calls conformance.rules.invalid draws for adaptive pooling.
INVALID_MUTATIONS: tuple[str, ...] = (
    "output_size=0", "negative output_size", "output_size of wrong length", "empty input plane", "integer dtype",
    "x of rank 2", "C=0", "dy shape mismatch", "bool inputs", "dy dtype mismatch")

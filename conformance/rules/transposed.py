"""Transposed convolution's own rules: it is the adjoint of convolution (CONVT-C8, CONVT-C9).

The generic rules compare it with the reference, with central differences and
with its own adjoint; ``transpose-identity`` checks the identities the
document states between it and the convolution with the same weight, stride,
padding, dilation and groups:

* ``conv_transpose_forward(x, w)`` is that convolution's input gradient at upstream gradient ``x⁺``
  (``x`` extended by zeros to the shape the convolution maps ``y``'s shape to);
* ``conv_transpose_backward``'s ``dx`` is the convolution of ``dy`` (cropped to ``x``), and its ``dw``
  the convolution's weight gradient with the roles of input and upstream gradient swapped.

The convolution is the reference's ``conv_forward`` / ``conv_backward``, computed in
float64: an oracle reached by another path than the reference's transposed
convolution (im2col and matmul, not a scatter). Not the backend's own
convolution: its failures belong to the convolution's rules, and a framework's
convolution may be declined (``supports``) or crash on cases its transposed
convolution handles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import reference
import spec
from conformance.compare import backward_bounds, compare_explained, forward_bound
from conformance.context import Context, derive
from conformance.rules.base import ordinary, rule, zero_bias
from conformance.snippets import call_source
from conformance.strategies import Case, Inputs, Problem

RULE = "transpose-identity"


def conv_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of the convolution a transposed convolution is the adjoint of."""
    return {key: value for key, value in params.items() if key != "output_padding"}


def matching_conv(case: Case) -> Case:
    """The convolution of ``case``'s transposed convolution, with the case's ``dy`` as its input and ``x⁺``
    (x extended by zeros at the end of each spatial dim to that convolution's output shape) as its ``dy``."""
    p, i = case.problem, case.inputs
    assert p.w_shape is not None and i.w is not None
    params = conv_params(dict(p.params))
    back = spec.conv_output_shape(np.empty(i.dy.shape, dtype=i.dy.dtype), i.w, None, **params)
    extended = np.pad(i.x, [(0, 0), (0, 0), *((0, m - n) for n, m in zip(p.x_shape[2:], back[2:]))])
    problem = Problem("conv", p.dtype, tuple(i.dy.shape), p.w_shape, False, params)
    return Case(problem, Inputs(i.dy, i.w, None, extended, i.kind))


def _crop(a: np.ndarray[Any, Any], spatial: tuple[int, ...]) -> np.ndarray[Any, Any]:
    return a[(slice(None), slice(None), *(slice(0, n) for n in spatial))]


def _f64(a: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any]:
    assert a is not None
    return np.asarray(a, dtype=np.float64)


def check_transpose_identity(ctx: Context, case: Case) -> None:
    """CONVT-C8 and CONVT-C9: the transposed convolution against the convolution it is the adjoint of."""
    p = case.problem
    if p.x_shape[0] == 0:
        return
    caps = ctx.backend.capabilities
    unbiased = derive(case, b=zero_bias(case))  # the call's own signature: nothing new to compile
    conv = matching_conv(case)
    c = conv.inputs
    conv_dx, conv_dw, _ = reference.conv_backward(_f64(c.x), _f64(c.w), _f64(c.dy), **conv.problem.params)
    lines = [
        "params = " + repr(dict(p.params)),
        "conv = {k: v for k, v in params.items() if k != 'output_padding'}  # the convolution it transposes",
        f"xp = np.pad(x, [(0, 0), (0, 0)] + [(0, m - n) for n, m in zip(x.shape[2:], {list(c.dy.shape[2:])})])"
        "  # x extended by zeros",
        "f64 = lambda a: a.astype('float64')",
    ]
    y = ctx.forward(RULE, unbiased)
    snippet = ctx.snippet(case, [*lines, f"y = {call_source('conv_transpose_forward', unbiased)}",
                                 "dx_conv = reference.conv_backward(f64(dy), f64(w), f64(xp), **conv)[0]",
                                 "print(np.abs(f64(y) - dx_conv).max())"])
    compare_explained(RULE, "conv_transpose_forward(x, w) must be the input gradient of the matching convolution at "
                      "upstream gradient x⁺ (CONVT-C8)", "y", y, conv_dx, forward_bound(unbiased, caps), case, snippet)
    if not ctx.has("conv_transpose_backward"):
        return
    mine = ctx.backward(RULE, case)
    bounds = backward_bounds(case, caps)
    conv_y = reference.conv_forward(_f64(c.x), _f64(c.w), None, **conv.problem.params)
    snippet = ctx.snippet(case, [*lines, f"dx, dw, db = {call_source('conv_transpose_backward', case, dy=True)}",
                                 "conv_y = reference.conv_forward(f64(dy), f64(w), None, **conv)",
                                 "dw_conv = reference.conv_backward(f64(dy), f64(w), f64(xp), **conv)[1]",
                                 "print(np.abs(f64(dx) - conv_y[(..., *[slice(0, n) for n in x.shape[2:]])]).max(), "
                                 "np.abs(f64(dw) - dw_conv).max())"])
    compare_explained(RULE, "conv_transpose_backward's dx must be the matching convolution of dy, cropped to x "
                      "(CONVT-C9)", "dx", mine["dx"], _crop(conv_y, p.x_shape[2:]), bounds["dx"], case, snippet)
    compare_explained(RULE, "conv_transpose_backward's dw must be the matching convolution's weight gradient at "
                      "input dy and upstream gradient x⁺ (CONVT-C9)", "dw", mine["dw"], conv_dw, bounds["dw"], case, snippet)




TRANSPOSE_IDENTITY = rule(
    RULE, "transposed convolution is the adjoint of convolution: its forward is conv's dx, its backward conv and "
    "conv's dW", ("conv_transpose",), ("forward",), ordinary, check_transpose_identity)


# --------------------------------------------------------------------------- invalid calls of its own (CONVT-C10)

def break_call(case: Case, mutation: str) -> tuple[str, list[Any], dict[str, Any]] | None:
    """(function, args, kwargs) of an invalid transposed-convolution call for the mutations only it has, else None."""
    p, i = case.problem, case.inputs
    assert i.w is not None
    params = dict(p.params)
    x, w, b = i.x, i.w, i.b
    if mutation == "output_padding too large":  # CONVT-C6: must be < max(stride, dilation)
        params["output_padding"] = (max(params["stride"][0], params["dilation"][0]), *params["output_padding"][1:])
    elif mutation == "empty output":  # CONVT-C6: the padding crops the whole scatter away
        full = (p.x_shape[2] - 1) * params["stride"][0] + params["dilation"][0] * (w.shape[2] - 1) + 1
        params["padding"] = ((full, full), *params["padding"][1:])
        params["output_padding"] = (0, *params["output_padding"][1:])
    elif mutation == "w.shape[0] mismatch":  # CONVT-C1: w is (C_in, C_out / groups, *K)
        w = np.concatenate([w, w[:1]], axis=0)
    elif mutation == "bias shape mismatch":  # CONVT-C1: b is (C_out,) = (w.shape[1] * groups,)
        b = np.zeros(w.shape[1] * params["groups"] + 1, dtype=x.dtype)
    else:
        return None
    return "conv_transpose_forward", [x, w, b], params


#: The invalid calls conformance.rules.invalid draws for a transposed convolution: those it shares with
#: convolution, and the four above.
INVALID_MUTATIONS: tuple[str, ...] = (
    "stride=0", "dilation=0", "negative padding", "groups not dividing C_in", "w.shape[0] mismatch",
    "bias shape mismatch", "x of rank 2", "integer dtype", "output_padding too large", "empty output",
    "dy shape mismatch", "groups=0", "kernel size 0", "C_in=0", "mixed dtypes", "bool inputs", "dy dtype mismatch")

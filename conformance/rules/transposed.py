"""Transposed convolution's own rules: it is the adjoint of convolution (CONVT-C8, CONVT-C9).

The generic rules compare it with the reference, with central differences and
with its own adjoint; ``transpose-identity`` checks the identities the
document states between it and the convolution with the same weight, stride,
padding, dilation and groups:

* ``conv_transpose_forward(x, w)`` is that convolution's input gradient at upstream gradient ``x⁺``
  (``x`` extended by zeros to the shape the convolution maps ``y``'s shape to);
* ``conv_transpose_backward``'s ``dx`` is the convolution of ``dy`` (cropped to ``x``), and its ``dw``
  the convolution's weight gradient with the roles of input and upstream gradient swapped.

The convolution is the backend's own when it has one (a relation between two of
its functions, which needs no reference), otherwise the reference's in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import reference
import spec
from conformance.bounds import sum_bounds
from conformance.compare import Bound, backward_bounds, compare, exact_bound, forward_bound
from conformance.context import Context, Unsupported, derive
from conformance.rules.base import ordinary, rule
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


def _crop_bound(bound: Bound, spatial: tuple[int, ...]) -> Bound:
    elementwise = _crop(bound.elementwise, spatial) if bound.elementwise.ndim else bound.elementwise
    return Bound(elementwise, bound.slice_axes, bound.normwise)


def _f64(a: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any]:
    assert a is not None
    return np.asarray(a, dtype=np.float64)


class _Conv:
    """The convolution side of the identities: the backend's own functions, or the reference's in float64."""

    def __init__(self, ctx: Context, conv: Case) -> None:
        self.ctx, self.case = ctx, conv
        self.own = ctx.has("conv_forward") and ctx.has("conv_backward")
        self.source = "the backend's own conv" if self.own else "the reference's conv (float64)"

    def _fallback(self) -> None:
        self.own = False
        self.source = "the reference's conv (float64; the backend declined this convolution)"

    def backward(self) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, Bound]]:
        if self.own:
            try:
                grads = self.ctx.backward(RULE, self.case)
                return grads, backward_bounds(self.case, self.ctx.backend.capabilities)
            except Unsupported:
                self._fallback()
        i = self.case.inputs
        dx, dw, db = reference.conv_backward(_f64(i.x), _f64(i.w), _f64(i.dy), **self.case.problem.params)
        return {"dx": dx, "dw": dw, "db": db}, {"dx": exact_bound(), "dw": exact_bound(), "db": exact_bound()}

    def forward(self) -> tuple[np.ndarray[Any, Any], Bound]:
        if self.own:
            try:
                return (self.ctx.forward(RULE, self.case),
                        forward_bound(self.case, self.ctx.backend.capabilities))
            except Unsupported:
                self._fallback()
        i = self.case.inputs
        return reference.conv_forward(_f64(i.x), _f64(i.w), None, **self.case.problem.params), exact_bound()


def check_transpose_identity(ctx: Context, case: Case) -> None:
    """CONVT-C8 and CONVT-C9: the transposed convolution against the convolution it is the adjoint of."""
    p = case.problem
    if p.x_shape[0] == 0:
        return
    caps = ctx.backend.capabilities
    unbiased = derive(case, b=None)
    conv = _Conv(ctx, matching_conv(case))
    lines = [
        "params = " + repr(dict(p.params)),
        "conv = {k: v for k, v in params.items() if k != 'output_padding'}  # the convolution it transposes",
        f"xp = np.pad(x, [(0, 0), (0, 0)] + [(0, m - n) for n, m in zip(x.shape[2:], "
        f"{list(conv.case.inputs.dy.shape[2:])})])  # x extended by zeros",
    ]
    conv_backend = "backend" if conv.own else "reference"
    y = ctx.forward(RULE, unbiased)
    grads, grad_bounds = conv.backward()
    snippet = ctx.snippet(case, [*lines, f"y = {call_source('conv_transpose_forward', unbiased)}",
                                 f"dx_conv = {conv_backend}.conv_backward(dy, w, xp, **conv)[0]",
                                 "print(np.abs(y.astype('float64') - dx_conv.astype('float64')).max())"])
    _compare("y", f"conv_transpose_forward(x, w) against the input gradient of {conv.source} at upstream "
             "gradient x⁺", y, grads["dx"], sum_bounds(forward_bound(unbiased, caps), grad_bounds["dx"]), case, snippet)
    if not ctx.has("conv_transpose_backward"):
        return
    mine = ctx.backward(RULE, case)
    conv_y, conv_bound = conv.forward()
    snippet = ctx.snippet(case, [*lines, f"dx, dw, db = {call_source('conv_transpose_backward', case, dy=True)}",
                                 f"conv_y = {conv_backend}.conv_forward(dy, w, None, **conv)",
                                 f"dw_conv = {conv_backend}.conv_backward(dy, w, xp, **conv)[1]",
                                 "print(np.abs(dx - conv_y[(..., *[slice(0, n) for n in x.shape[2:]])]).max(), "
                                 "np.abs(dw - dw_conv).max())"])
    mine_bounds = backward_bounds(case, caps)
    _compare("dx", f"conv_transpose_backward's dx against {conv.source} of dy, cropped to x", mine["dx"],
             _crop(conv_y, p.x_shape[2:]), sum_bounds(mine_bounds["dx"], _crop_bound(conv_bound, p.x_shape[2:])),
             case, snippet)
    _compare("dw", f"conv_transpose_backward's dw against the weight gradient of {conv.source} at input dy and "
             "upstream gradient x⁺", mine["dw"], grads["dw"], sum_bounds(mine_bounds["dw"], grad_bounds["dw"]),
             case, snippet)


def _compare(name: str, what: str, actual: np.ndarray[Any, Any], expected: np.ndarray[Any, Any], bound: Bound,
             case: Case, snippet: list[str]) -> None:
    __tracebackhide__ = True
    from conformance.compare import Violation

    try:
        compare(RULE, name, actual, expected, bound, case, snippet)
    except Violation as violation:
        violation.summary = f"{what}: {violation.summary}"
        raise


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

"""Invalid parameters: calls the spec declares invalid must raise, not return a result."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.compare import Violation
from conformance.context import Context
from conformance.rules import adaptive, transposed
from conformance.rules.base import rule, set_first
from conformance.strategies import Case, cases
from spec import Capabilities, OpName

INVALID_MUTATIONS: dict[OpName, tuple[str, ...]] = {
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
    "conv_transpose": transposed.INVALID_MUTATIONS,
    # Every input max_pool_forward rejects (MAXIDX-C7); it has no backward.
    "max_pool_indices": ("kernel_size=0", "stride=0", "dilation=0", "negative padding", "empty output",
                         "integer dtype", "x of rank 2", "C=0", "non-bool ceil_mode", "bool inputs"),
    "adaptive_avg_pool": adaptive.INVALID_MUTATIONS,
    "adaptive_max_pool": adaptive.INVALID_MUTATIONS,
}
Breaker = Callable[[Case, str], "tuple[str, list[Any], dict[str, Any]] | None"]
#: Invalid calls only some operations have: the operation's own (function, args, kwargs) for those
#: mutations, None for the ones break_case shares between operations.
OWN_MUTATIONS: dict[OpName, Breaker] = {
    "conv_transpose": transposed.break_call,
    "adaptive_avg_pool": adaptive.break_call,
    "adaptive_max_pool": adaptive.break_call,
}


def _other_float(dtype: np.dtype[Any]) -> str:
    return "float32" if dtype == np.float64 else "float64"


def _invalid_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[tuple[Case, str]]:
    # Each (shape, mutation) is a call no other rule makes: with pooled shapes, a quarter of the pool (at least two).
    return st.tuples(cases(op, caps, dtype, kinds=("integers",), few=4), st.sampled_from(INVALID_MUTATIONS[op]))


def break_case(case: Case, mutation: str) -> tuple[str, list[Any], dict[str, Any]]:
    """(function, args, kwargs) of a call that the spec declares invalid."""
    p, i = case.problem, case.inputs
    own = OWN_MUTATIONS.get(p.op)
    broken = None if own is None else own(case, mutation)
    if broken is not None:
        return broken
    record = p.operation
    params = dict(p.params)
    x, w, b, dy = i.x, i.w, i.b, i.dy
    function = record.forward
    if mutation in ("stride=0", "dilation=0", "kernel_size=0"):
        params = set_first(params, mutation.split("=")[0], 0)
    elif mutation == "negative padding":
        params = set_first(params, "padding", (-1, params["padding"][0][1]))
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
            params = set_first(params, "dilation", 1)
        else:
            params = set_first(set_first(params, "kernel_size", big), "dilation", 1)
    elif mutation == "dy shape mismatch":
        function = record.backward or record.forward
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
        function = record.backward or record.forward
        dy = dy.astype(_other_float(x.dtype))
    elif mutation in ("non-bool ceil_mode", "non-bool count_include_pad"):
        key = mutation.split()[-1]
        params[key] = int(params[key])
    arrays = {"x": x, "w": w, "b": b, "dy": dy}
    names = record.backward_args if function == record.backward else record.forward_args
    return function, [arrays[name] for name in names], params


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
                        case, [f"kwargs: {kwargs}", f"returned {type(got).__name__} with shape {shape}"])


INVALID_PARAMS = rule("invalid-params", "invalid parameters raise instead of returning a result",
                      tuple(INVALID_MUTATIONS), ("forward",),
                      _invalid_cases, check_invalid, weight=1.0, per_dtype=False)

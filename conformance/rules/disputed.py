"""Where frameworks disagree, the spec decides: max-pool padding value, tie routing, ceil mode, the
average-pool divisor, windows entirely in padding and the empty batch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import strategies as st

import spec
from conformance.compare import Bound, backward_bounds, compare, expected_backward, expected_forward
from conformance.context import Context, derive
from conformance.rules.base import EVERY_OP, F64, rule, set_first
from conformance.rules.values import against_reference
from conformance.strategies import (
    ORDINARY_KINDS,
    Case,
    Choices,
    Problem,
    cases,
    make_inputs,
    pool_problems,
    problems,
    variant_problems,
)
from spec import OPERATIONS, Capabilities, OpName


def _with_padding(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    def pad_first_dim(problem: Problem) -> Problem:
        params = dict(problem.params)
        (lo, hi), *rest = params["padding"]
        if lo == 0 and hi == 0:
            if not spec.pool_padding_allowed(caps.pool_padding, params["kernel_size"][0], params["dilation"][0], 1, 1):
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
[])


def check_tie_routing(ctx: Context, case: Case) -> None:
    """Inputs of only a few distinct values: each window's gradient goes to its first maximum."""
    grads = ctx.backward("tie-routing", case)
    compare("tie-routing", "dx", grads["dx"], expected_backward(case)["dx"],
            backward_bounds(case, ctx.backend.capabilities)["dx"], case,
[])


TIE_VALUES: tuple[str, ...] = ("zero-one", "signed-zeros", "minus-inf")


def _pad_before(problem: Problem, caps: Capabilities) -> Problem:
    """The problem with one element of padding before the first spatial axis, where the capabilities allow."""
    params = dict(problem.params)
    (lo, hi), *rest = params["padding"]
    if lo or not spec.pool_padding_allowed(caps.pool_padding, params["kernel_size"][0], params["dilation"][0], 1, 1):
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


def _short_dimension(choose: Choices, problem: Problem, slot: int | None) -> Problem:
    """Sometimes (every other pooled problem) a first dimension shorter than the (dilated) kernel, where only
    ceil mode gives a window (n = 1, k = 2, s = 2: one window, overhanging the input)."""
    if not (choose.boolean() if slot is None else slot % 2 == 1):
        return problem
    params = dict(problem.params)
    d = params["dilation"][0]
    k = choose.integer(2, 3)
    s = choose.integer(2, 3)
    span = d * (k - 1) + 1
    n = choose.integer(max(1, span - s + 1), span - 1)
    params = set_first(set_first(set_first(params, "kernel_size", k), "stride", s), "padding", (0, 0))
    return replace(problem, x_shape=(*problem.x_shape[:2], n, *problem.x_shape[3:]), params=params)


def _ceil_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    """Ceil-mode pooling; sometimes a dimension shorter than the kernel (:func:`_short_dimension`)."""
    return st.builds(lambda problem, kind, seed: Case(problem, make_inputs(problem, kind, seed)),
                     variant_problems(op, caps, dtype, _short_dimension, name="ceil-mode", ceil_mode=True),
                     st.sampled_from(ORDINARY_KINDS), st.integers(0, 2**32 - 1))


def _ceil_applies(op: OpName, caps: Capabilities) -> str | None:
    return None if caps.ceil_mode else "backend declares no ceil_mode"


def _divisor_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return st.builds(lambda c: Case(c.problem, make_inputs(c.problem, "floats", 0)), _with_padding(op, caps, dtype))


def _dilates(op: OpName, caps: Capabilities) -> bool:
    """Whether the backend declares dilation > 1 for this pooling operation."""
    field = OPERATIONS[op].dilation_field
    return field is not None and bool(getattr(caps, field))


def _empty_window_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    """A pooling problem whose first window along dim 0 lies entirely in padding."""
    dilated = _dilates(op, caps)

    def in_padding(choose: Choices, base: Problem, slot: int | None) -> Problem:
        n = choose.integer(1, 3) if slot is None else 1 + slot % 3  # pooled: each length 1 to 3 in turn
        params = dict(base.params)
        if dilated:  # positions -1 and n of a 2-tap kernel with dilation n + 1 are both padding
            k, d, pad = 2, n + 1, (1, 1)
        else:  # a 1-tap kernel over one element of padding
            k, d, pad = 1, 1, (1, 1)
        params["kernel_size"] = (k, *params["kernel_size"][1:])
        params["dilation"] = (d, *params["dilation"][1:])
        params["padding"] = (pad, *params["padding"][1:])
        params["stride"] = (choose.integer(1, 2), *params["stride"][1:])
        return replace(base, x_shape=(max(base.x_shape[0], 1), base.x_shape[1], n, *base.x_shape[3:]), params=params)

    # Each is a shape no other rule calls: with pooled shapes, half the pool's (at least two).
    return st.builds(lambda problem, kind, seed: Case(problem, make_inputs(problem, kind, seed)),
                     variant_problems(op, caps, dtype, in_padding, name="empty-windows", few=2),
                     st.sampled_from(("integers", "floats")), st.integers(0, 2**32 - 1))


def _empty_window_applies(op: OpName, caps: Capabilities) -> str | None:
    dilated = _dilates(op, caps)
    # The two ways _empty_window_cases builds one: k=2 dilated past the input, or k=1 over a padding of 1.
    if (dilated and spec.pool_padding_allowed(caps.pool_padding, 2, 2, 1, 1)
            or spec.pool_padding_allowed(caps.pool_padding, 1, 1, 1, 1)):
        return None
    return "needs pooling dilation, or padding beyond half the kernel"


def _empty_batch_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    # N = 0 of a pooled shape is a shape of its own: with pooled shapes, a quarter of the pool (at least two).
    return problems(op, caps, dtype, few=4).map(
        lambda pr: Case(replace(pr, x_shape=(0, *pr.x_shape[1:])), make_inputs(replace(pr, x_shape=(0, *pr.x_shape[1:])),
                                                                                  "floats", 0)))


def _empty_batch_applies(op: OpName, caps: Capabilities) -> str | None:
    return None if caps.empty_batch else "backend declares no empty batch"


MAXPOOL_PAD_VALUE = rule("maxpool-pad-value", "max pooling pads with -inf, never 0", ("max_pool",),
                         ("forward",), _with_padding, check_maxpool_pad_value, weight=0.5)
TIE_ROUTING = rule("tie-routing", "on ties the gradient goes to the first maximum in row-major window order",
                   ("max_pool",), ("backward",), _tie_cases, check_tie_routing, weight=0.5)
CEIL_MODE = rule("ceil-mode", "ceil mode: the last window starts inside the input or the before-padding",
                 ("max_pool", "avg_pool"), ("forward",), _ceil_cases, against_reference("ceil-mode"), weight=0.5,
                 applies=_ceil_applies)
AVGPOOL_DIVISOR = rule("avgpool-divisor",
                       "the divisor counts the padded input (count_include_pad) or the input, never overhang",
                       ("avg_pool",), ("forward",), _divisor_cases, against_reference("avgpool-divisor"),
                       weight=0.5)
EMPTY_WINDOWS = rule("empty-windows", "a window entirely in padding: max -inf, average 0 or NaN, no gradient",
                     ("max_pool", "avg_pool"), ("forward",), _empty_window_cases, against_reference("empty-windows"),
                     weight=0.5, applies=_empty_window_applies)
EMPTY_BATCH = rule("empty-batch", "an empty batch (N = 0) gives empty results", EVERY_OP, ("forward",),
                   _empty_batch_cases, against_reference("empty-batch"), weight=0.2, applies=_empty_batch_applies)

"""Metamorphic relations: properties linking several calls of the backend, checked without the reference.

Each relation is a :class:`Relation` in :data:`RELATIONS`: the operations it applies to, the calls it
derives from a case (its transform) and how their results must relate to the case's own (its check,
with the bound of the difference from the bounds of the results). The rule ``metamorphic`` draws a
case and picks one of the relations that apply to the operation and the backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

import spec
from conformance.bounds import sum_bounds, take_channels
from conformance.compare import Bound, Violation, compare, exact_bound, forward_bound
from conformance.context import Context, derive
from conformance.rules.base import EVERY_OP, F64, rule, weight_out_axis, zero_bias
from conformance.strategies import Case, Problem, cases, make_values
from spec import OPERATIONS, Capabilities, Operation, OpName

Array = np.ndarray[Any, Any]
#: (lhs, rhs, bound on |lhs - rhs|) from the case, its result and bound, and the derived calls' results and bounds.
Relate = Callable[[Case, Array, Bound, Sequence[Array], Sequence[Bound]], tuple[Array, Array, Bound]]


@dataclass(frozen=True)
class Relation:
    """One metamorphic relation between the backend's result on a case and its results on derived calls."""

    name: str
    #: Whether the relation applies to an operation on this backend (its functions and capabilities).
    applies: Callable[[OpName, Context], bool]
    #: The calls derived from (case, seed), in the order they are made; None: not for this case.
    transform: Callable[[Case, int], tuple[Case, ...] | None]
    relate: Relate
    #: What the relation says about the case, one line for the report.
    says: Callable[[Case], str]


def _weighted(op: OpName) -> bool:
    return OPERATIONS[op].has_weights


def _transposed(record: Operation) -> bool:
    """A transposed convolution spreads each input element over a window of outputs."""
    return "output_padding" in record.param_names


# --------------------------------------------------------------------------- batch independence

def _per_sample(case: Case, seed: int) -> tuple[Case, ...] | None:
    x = case.inputs.x
    return None if x.shape[0] < 2 else tuple(derive(case, x=x[k:k + 1]) for k in range(x.shape[0]))


def _batch_relate(case: Case, y: Array, yb: Bound, outs: Sequence[Array], bounds: Sequence[Bound]) -> tuple[Array, Array, Bound]:
    return np.concatenate(outs), y, sum_bounds(yb, yb)


# --------------------------------------------------------------------------- channel permutation

def _channel_perm(case: Case) -> Array:
    """y's channels reversed within each group (one group without weights: pooling's channels are x's)."""
    p = case.problem
    channels = p.output_shape()[1]
    groups = int(p.params.get("groups", 1)) if _weighted(p.op) else 1
    og = channels // groups
    return np.concatenate([g * og + np.arange(og)[::-1] for g in range(groups)])


def _permuted(case: Case, seed: int) -> tuple[Case, ...]:
    i, perm = case.inputs, _channel_perm(case)
    if _weighted(case.problem.op):
        assert i.w is not None
        axis = weight_out_axis(case.problem.operation)
        # w's output-channel axis holds every output channel, or (transposed, grouped) one group's, the same in each
        index = perm if i.w.shape[axis] == len(perm) else perm[: i.w.shape[axis]]
        return (derive(case, w=np.take(i.w, index, axis=axis), b=None if i.b is None else i.b[perm].copy()),)
    return (derive(case, x=i.x[:, perm].copy()),)


def _permutation_relate(case: Case, y: Array, yb: Bound, outs: Sequence[Array],
                        bounds: Sequence[Bound]) -> tuple[Array, Array, Bound]:
    perm = _channel_perm(case)
    return outs[0], y[:, perm], sum_bounds(bounds[0], take_channels(yb, perm))


def _permutation_says(case: Case) -> str:
    what = "output channels of w and b" if _weighted(case.problem.op) else "input channels"
    return f"permuting the {what} by {_channel_perm(case).tolist()} must permute y's channels the same way"


# --------------------------------------------------------------------------- linearity

def _sums(name: str) -> Callable[[Case, int], tuple[Case, ...]]:
    """f(a + b), f(a), f(b) in that order, for a = the case's ``name`` and b drawn from ``seed``; a zero bias."""

    def transform(case: Case, seed: int) -> tuple[Case, ...]:
        p = case.problem
        base = getattr(case.inputs, name)
        other = make_values(base.shape, "integers", p.dtype, np.random.default_rng(seed))
        no_bias: dict[str, Any] = {"b": zero_bias(case)} if _weighted(p.op) else {}
        both = (base.astype(F64) + other.astype(F64)).astype(p.dtype)
        return (derive(case, **{name: both}, **no_bias), derive(case, **{name: base}, **no_bias),
                derive(case, **{name: other}, **no_bias))

    return transform


def _linearity_relate(case: Case, y: Array, yb: Bound, outs: Sequence[Array],
                      bounds: Sequence[Bound]) -> tuple[Array, Array, Bound]:
    both, first, second = outs
    return both, first.astype(F64) + second.astype(F64), sum_bounds(bounds[1], bounds[2], bounds[0])


def _linearity_says(name: str) -> Callable[[Case], str]:
    return lambda case: f"f({name}1 + {name}2) must equal f({name}1) + f({name}2) (a zero bias)"


# --------------------------------------------------------------------------- monotone map (max pooling)

def _mapped(case: Case, seed: int) -> tuple[Case, ...]:
    return (derive(case, x=(case.inputs.x.astype(F64) * 2 + 1).astype(case.problem.dtype)),)


def _monotone_relate(case: Case, y: Array, yb: Bound, outs: Sequence[Array],
                     bounds: Sequence[Bound]) -> tuple[Array, Array, Bound]:
    return outs[0], (y.astype(F64) * 2 + 1).astype(case.problem.dtype), exact_bound()


# --------------------------------------------------------------------------- translation

def _shifted(case: Case, seed: int) -> tuple[Case, ...] | None:
    """The same call on x without its first stride of rows along the first spatial dim (no padding there)."""
    p = case.problem
    s = p.params["stride"][0]
    lo, hi = p.params["padding"][0]
    if lo or hi or p.params.get("ceil_mode"):
        return None
    shifted = derive(case, x=case.inputs.x[:, :, s:].copy())
    try:
        out = shifted.problem.output_shape()
    except spec.SpecError:
        return None
    return (Case(shifted.problem, replace(shifted.inputs, dy=np.zeros(out, dtype=p.dtype))),)


def _translation_relate(case: Case, y: Array, yb: Bound, outs: Sequence[Array],
                        bounds: Sequence[Bound]) -> tuple[Array, Array, Bound]:
    """Dropping one stride of input along the first spatial dim drops one output row."""
    window = (slice(None), slice(None), slice(1, 1 + outs[0].shape[2]))
    # A sub-slice's error norm is at most the whole slice's: yb's normwise part still applies to the window.
    restricted = Bound(np.broadcast_to(yb.elementwise, y.shape)[window], yb.slice_axes, yb.normwise)
    return outs[0], y[window], sum_bounds(restricted, bounds[0])


def _translation_says(case: Case) -> str:
    s = case.problem.params["stride"][0]
    return f"the same call on x[:, :, {s}:] must equal y[:, :, 1:] (no padding on that dim)"


def _slides(record: Operation) -> bool:
    """Kernel windows sliding over x with a float result: dropping a stride of x drops an output row."""
    return record.windowing == "kernel" and record.result_dtype is None and not _transposed(record)


# --------------------------------------------------------------------------- equivalences with convolution

def _unweighted_linear_window(record: Operation) -> bool:
    """Average pooling: a linear map over kernel windows without weights (a depthwise conv with ones)."""
    return record.linear and record.windowing == "kernel" and not record.has_weights


def _as_1x1_conv(case: Case, seed: int) -> tuple[Case, ...]:
    p, i = case.problem, case.inputs
    assert i.w is not None
    return (Case(Problem("conv", p.dtype, (*p.x_shape, 1), (*i.w.shape, 1), p.bias,
                         {"stride": (1,), "padding": ((0, 0),), "dilation": (1,), "groups": 1}),
                 replace(i, x=i.x[:, :, None].copy(), w=i.w[:, :, None].copy(), dy=i.dy[:, :, None].copy())),)


def _1x1_relate(case: Case, y: Array, yb: Bound, outs: Sequence[Array],
                bounds: Sequence[Bound]) -> tuple[Array, Array, Bound]:
    cb = bounds[0]
    conv_bound = Bound(cb.elementwise[:, :, 0], cb.slice_axes, cb.normwise)
    return outs[0][:, :, 0], y, sum_bounds(yb, conv_bound)


def _as_depthwise_conv(case: Case, seed: int) -> tuple[Case, ...] | None:
    p, i = case.problem, case.inputs
    params = p.params
    if any(lo or hi for lo, hi in params["padding"]) or params["ceil_mode"]:
        return None
    channels = p.x_shape[1]
    ones = np.ones((channels, 1, *params["kernel_size"]), dtype=p.dtype)
    return (Case(Problem("conv", p.dtype, p.x_shape, ones.shape, False,
                         {"stride": tuple(params["stride"]), "padding": params["padding"],
                          "dilation": tuple(params["dilation"]), "groups": channels}),
                 replace(i, w=ones, b=None)),)


def _depthwise_relate(case: Case, y: Array, yb: Bound, outs: Sequence[Array],
                      bounds: Sequence[Bound]) -> tuple[Array, Array, Bound]:
    sums = outs[0].astype(F64) / math.prod(case.problem.params["kernel_size"])
    return y, sums, sum_bounds(yb, bounds[0])


# --------------------------------------------------------------------------- the registry of relations

RELATIONS: tuple[Relation, ...] = (
    Relation("batch-independence", lambda op, ctx: True, _per_sample, _batch_relate,
             lambda case: "y[k:k+1] must equal the same call on x[k:k+1]"),
    Relation("channel-permutation", lambda op, ctx: True, _permuted, _permutation_relate, _permutation_says),
    Relation("linearity-x", lambda op, ctx: OPERATIONS[op].linear, _sums("x"), _linearity_relate,
             _linearity_says("x")),
    Relation("linearity-w", lambda op, ctx: OPERATIONS[op].linear and _weighted(op), _sums("w"), _linearity_relate,
             _linearity_says("w")),
    Relation("monotone-map", lambda op, ctx: OPERATIONS[op].selects and OPERATIONS[op].result_dtype is None, _mapped,
             _monotone_relate,
             lambda case: "max_pool(2 x + 1) must equal 2 max_pool(x) + 1 exactly"),
    Relation("translation", lambda op, ctx: _slides(OPERATIONS[op]), _shifted, _translation_relate, _translation_says),
    Relation("linear-as-1x1-conv",
             lambda op, ctx: OPERATIONS[op].windowing == "none" and _weighted(op) and ctx.has("conv_forward")
             and 1 in ctx.backend.capabilities.spatial_ranks,
             _as_1x1_conv, _1x1_relate,
             lambda case: "conv_forward(x[:, :, None], w[:, :, None], b, stride=(1,), padding=((0, 0),), "
                          "dilation=(1,), groups=1)[:, :, 0] must equal linear_forward(x, w, b)"),
    Relation("avg-as-depthwise-conv",
             lambda op, ctx: _unweighted_linear_window(OPERATIONS[op]) and ctx.has("conv_forward")
             and ctx.backend.capabilities.groups,
             _as_depthwise_conv, _depthwise_relate,
             lambda case: "without padding, avg_pool(x) must equal depthwise conv(x, ones) / prod(kernel_size)"),
)
RELATIONS_BY_NAME: dict[str, Relation] = {relation.name: relation for relation in RELATIONS}


def relations(op: OpName, ctx: Context) -> list[Relation]:
    """The relations that apply to ``op`` on this backend, in registry order."""
    return [relation for relation in RELATIONS if relation.applies(op, ctx)]


# --------------------------------------------------------------------------- the rule

def _relation_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[tuple[Case, int]]:
    # Small integers keep sums of inputs exact, so relations need no rounding argument of their own.
    return st.tuples(cases(op, caps, dtype, kinds=("integers",)), st.integers(0, 5))


def check_metamorphic(ctx: Context, drawn: Any) -> None:
    """One relation, chosen by the drawn integer among those that apply: the derived calls' results relate."""
    __tracebackhide__ = True
    case, choice = drawn
    applicable = relations(case.problem.op, ctx)
    relation = applicable[choice % len(applicable)]
    accuracy = ctx.backend.capabilities
    y = ctx.forward("metamorphic", case)
    derived = relation.transform(case, choice)
    if derived is None:
        return
    outs = [ctx.forward("metamorphic", c) for c in derived]
    lhs, rhs, bound = relation.relate(case, y, forward_bound(case, accuracy), outs,
                                      [forward_bound(c, accuracy) for c in derived])
    try:
        compare("metamorphic", f"y[{relation.name}]", lhs, rhs, bound, case, [])
    except Violation as violation:
        violation.summary = f"relation '{relation.name}' does not hold: {violation.summary}"
        violation.details.insert(0, f"relation: {relation.says(case)}")
        raise


METAMORPHIC = rule("metamorphic", "linearity, batch independence, translation, permutation, equivalences", EVERY_OP,
                   ("forward",), _relation_cases, check_metamorphic)

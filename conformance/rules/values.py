"""Values against the reference: output shapes and dtypes, forward values, gradients."""

from __future__ import annotations

from conformance.compare import backward_bounds, compare, expected_backward, expected_forward, forward_bound
from conformance.context import Context
from conformance.rules.base import EVERY_OP, WITH_BACKWARD, Check, ordinary, rule
from conformance.strategies import Case


def check_output_shape(ctx: Context, case: Case) -> None:
    """Shapes, dtypes and the result contract: every call goes through the checked caller."""
    ctx.forward("output-shape", case)
    backward = case.problem.operation.backward
    if backward is not None and ctx.has(backward):
        ctx.backward("output-shape", case)


def compare_forward(ctx: Context, rule: str, case: Case) -> None:
    """The forward result equals the reference's within the accuracy bound."""
    result = case.problem.operation.forward_results[0]
    compare(rule, result, ctx.forward(rule, case), expected_forward(case), forward_bound(case, ctx.backend.capabilities),
            case, [])


def compare_backward(ctx: Context, rule: str, case: Case) -> None:
    """Each gradient equals the reference's within the accuracy bound."""
    grads = ctx.backward(rule, case)
    want = expected_backward(case)
    bounds = backward_bounds(case, ctx.backend.capabilities)
    for name in grads:
        compare(rule, name, grads[name], want[name], bounds[name], case, [])


def against_reference(rule: str) -> Check:
    """A check: forward, and backward when the operation and the backend have it, equal the reference's."""

    def check(ctx: Context, case: Case) -> None:
        compare_forward(ctx, rule, case)
        backward = case.problem.operation.backward
        if backward is not None and ctx.has(backward):
            compare_backward(ctx, rule, case)

    return check


def check_forward_values(ctx: Context, case: Case) -> None:
    compare_forward(ctx, "forward-values", case)


def check_backward_values(ctx: Context, case: Case) -> None:
    compare_backward(ctx, "backward-values", case)


OUTPUT_SHAPE = rule("output-shape", "output shape and dtype follow the output-size rule; results are fresh arrays",
                    EVERY_OP, ("forward",), ordinary, check_output_shape, weight=0.5)
FORWARD_VALUES = rule("forward-values", "forward values equal the reference within the accuracy bound", EVERY_OP,
                      ("forward",), ordinary, check_forward_values, weight=2.0)
BACKWARD_VALUES = rule("backward-values", "gradients equal the reference's within the accuracy bound", WITH_BACKWARD,
                       ("backward",), ordinary, check_backward_values, weight=2.0)

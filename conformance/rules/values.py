"""Values against the reference: output shapes and dtypes, forward values, gradients."""

from __future__ import annotations

from conformance.compare import backward_bounds, compare, expected_backward, expected_forward, forward_bound
from conformance.context import Context
from conformance.rules.base import ALL_OPS, ordinary, rule
from conformance.strategies import Case


def check_output_shape(ctx: Context, case: Case) -> None:
    """Shapes, dtypes and the result contract: every call goes through the checked caller."""
    ctx.forward("output-shape", case)
    if ctx.has(f"{case.problem.op}_backward"):
        ctx.backward("output-shape", case)


def check_forward_values(ctx: Context, case: Case) -> None:
    y = ctx.forward("forward-values", case)
    compare("forward-values", "y", y, expected_forward(case), forward_bound(case, ctx.backend.capabilities), case, [])


def check_backward_values(ctx: Context, case: Case) -> None:
    grads = ctx.backward("backward-values", case)
    want = expected_backward(case)
    bounds = backward_bounds(case, ctx.backend.capabilities)
    for name in grads:
        compare("backward-values", name, grads[name], want[name], bounds[name], case, [])


OUTPUT_SHAPE = rule("output-shape", "output shape and dtype follow the output-size rule; results are fresh arrays",
                    ALL_OPS, ("forward",), ordinary, check_output_shape, weight=0.5)
FORWARD_VALUES = rule("forward-values", "forward values equal the reference within the accuracy bound", ALL_OPS,
                      ("forward",), ordinary, check_forward_values, weight=2.0)
BACKWARD_VALUES = rule("backward-values", "gradients equal the reference's within the accuracy bound", ALL_OPS,
                       ("backward",), ordinary, check_backward_values, weight=2.0)

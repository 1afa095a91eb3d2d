"""Values against the reference: output shapes and dtypes, forward values, gradients."""

from __future__ import annotations

from conformance.compare import backward_bounds, compare, expected_backward, expected_forward, forward_bound
from conformance.context import Context
from conformance.rules.base import ALL_OPS, ordinary, rule
from conformance.snippets import call_source
from conformance.strategies import Case


def check_output_shape(ctx: Context, case: Case) -> None:
    """Shapes, dtypes and the result contract: every call goes through the checked caller."""
    ctx.forward("output-shape", case)
    if ctx.has(f"{case.problem.op}_backward"):
        ctx.backward("output-shape", case)


def check_forward_values(ctx: Context, case: Case) -> None:
    y = ctx.forward("forward-values", case)
    body = [f"got = {call_source(case.problem.op + '_forward', case)}",
            f"want = {call_source(case.problem.op + '_forward', case, backend='reference')}  # same values, computed in "
            f"{case.problem.dtype} by the reference",
            "print(np.abs(got.astype('float64') - want.astype('float64')).max())"]
    compare("forward-values", "y", y, expected_forward(case), forward_bound(case, ctx.backend.capabilities),
            case, ctx.snippet(case, body))


def check_backward_values(ctx: Context, case: Case) -> None:
    grads = ctx.backward("backward-values", case)
    want = expected_backward(case)
    bounds = backward_bounds(case, ctx.backend.capabilities)
    names = list(grads)
    fn = case.problem.op + "_backward"
    body = [f"got = {call_source(fn, case, dy=True)}",
            f"want = {call_source(fn, case, dy=True, backend='reference')}",
            f"for name, g, r in zip({names!r}, got if isinstance(got, tuple) else (got,), "
            "want if isinstance(want, tuple) else (want,)):",
            "    print(name, np.abs(g.astype('float64') - r.astype('float64')).max())"]
    for name in names:
        compare("backward-values", name, grads[name], want[name], bounds[name], case, ctx.snippet(case, body))


OUTPUT_SHAPE = rule("output-shape", "output shape and dtype follow the output-size rule; results are fresh arrays",
                    ALL_OPS, ("forward",), ordinary, check_output_shape, weight=0.5)
FORWARD_VALUES = rule("forward-values", "forward values equal the reference within the accuracy bound", ALL_OPS,
                      ("forward",), ordinary, check_forward_values, weight=2.0)
BACKWARD_VALUES = rule("backward-values", "gradients equal the reference's within the accuracy bound", ALL_OPS,
                       ("backward",), ordinary, check_backward_values, weight=2.0)

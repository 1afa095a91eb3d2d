"""``convspec bench``'s quick check: is the backend right on the problems it is about to be timed on?

Timing a backend that computes something else is meaningless, and a fast wrong
kernel is the easiest one to write. Before timing, each benchmarked problem runs
once at batch 1 (the same configuration otherwise) through the backend's forward
and backward, and the results are compared with the reference's under the spec's
accuracy bounds (:mod:`conformance.compare`), as ``convspec check`` compares them.
This is no substitute for ``convspec check``: one random input per problem.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance import compare, strategies
from conformance.bench.measuring import call_kwargs, make_inputs
from conformance.bench_shapes import Problem, with_batch
from conformance.loader import LoadedBackend
from spec import OPERATIONS, UnsupportedError

#: The rule name a difference is reported under.
RULE = "bench-check"


def check_values(backend: LoadedBackend, problem: Problem, dtype: str, *, seed: int = 1) -> str | None:
    """None when the backend's forward and backward agree with the reference on ``problem`` at batch 1.

    Otherwise one line saying what differs (or what the backend raised). A problem
    the backend declines (:class:`spec.UnsupportedError`) is not a difference.
    """
    small = with_batch(problem, min(problem.n, 1))
    inputs = make_inputs(small, dtype, seed=seed)
    kwargs = call_kwargs(small)
    case = strategies.Case(
        strategies.Problem(small.op, dtype, inputs.x.shape, None if inputs.w is None else inputs.w.shape,
                           bias=inputs.b is not None, params=kwargs),
        strategies.Inputs(inputs.x, inputs.w, inputs.b, inputs.dy, "floats"),
    )
    record = OPERATIONS[small.op]
    forward = backend.functions.get(record.forward)
    backward = None if record.backward is None else backend.functions.get(record.backward)
    weighted = record.has_weights
    try:
        if forward is not None:
            args: tuple[Any, ...] = (inputs.x, inputs.w, inputs.b) if weighted else (inputs.x,)
            y = np.asarray(forward(*args, **kwargs))
            bound = compare.forward_bound(case, backend.capabilities)
            compare.compare(RULE, "y", y, compare.expected_forward(case), bound, case, [])
        if backward is not None:
            args = (inputs.x, inputs.w, inputs.dy) if weighted else (inputs.x, inputs.dy)
            result = backward(*args, **kwargs)
            grads = dict(zip(record.backward_results, result)) if weighted else {"dx": result}
            bounds = compare.backward_bounds(case, backend.capabilities)
            for name, expected in compare.expected_backward(case).items():
                compare.compare(RULE, name, np.asarray(grads[name]), expected, bounds[name], case, [])
    except UnsupportedError:
        return None
    except compare.Violation as violation:
        detail = violation.details[1].strip() if len(violation.details) > 1 else ""
        return f"{violation.summary}" + (f" ({detail})" if detail else "")
    except Exception as exc:  # the timing will report the error itself; say it here too
        return f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return None

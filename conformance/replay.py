"""The checks a reproduction snippet asserts, and the suite's test of each recorded call.

A snippet replays the backend calls of a failing example and, after each,
asserts what the spec requires of that one call: a valid call returns a fresh
array of the right shape and dtype whose values equal the reference's (computed
in float64) within the spec's bound, and leaves its inputs alone; an invalid
call raises. The suite runs the very same test (:func:`deviation`) on the calls
it recorded, so the snippet stops at the first call that breaks the spec, and
passes once that call is fixed (or when ``backend`` is the reference).

Every rule's bound is a sum of these per-call bounds (a metamorphic relation,
an adjoint identity or a finite difference holds for the reference up to
float64 rounding), so a failing example always has a call that deviates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import reference
import spec
from conformance.compare import Violation, backward_bounds, compare, expected_backward, expected_forward, forward_bound
from conformance.invoke import _input_names, inspect_result, result_names
from conformance.strategies import Case, Inputs, Problem


def _split(function: str) -> tuple[spec.OpName, bool]:
    record = spec.OPERATION_OF[function]
    return record.name, function == record.backward


def case_of(function: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Case:
    """The suite's case for one protocol call (raises spec.SpecError when the call is invalid)."""
    op, backward = _split(function)
    x = np.asarray(args[0])
    w: np.ndarray[Any, Any] | None
    b: np.ndarray[Any, Any] | None
    dy: np.ndarray[Any, Any] | None
    if spec.OPERATIONS[op].has_weights:
        w = np.asarray(args[1])
        third = None if args[2] is None else np.asarray(args[2])
        b, dy = (None, third) if backward else (third, None)
        problem = Problem(op, str(x.dtype), tuple(x.shape), tuple(w.shape), b is not None, dict(kwargs))
    else:
        w, b = None, None
        dy = np.asarray(args[1]) if backward else None
        problem = Problem(op, str(x.dtype), tuple(x.shape), None, False, dict(kwargs))
    out = problem.output_shape()
    if dy is None:
        dy = np.zeros(out, dtype=x.dtype)
    else:
        spec.check_dy(dy, out, x.dtype)
    return Case(problem, Inputs(x, w, b, dy, "floats"))


def is_valid(function: str, args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    """Whether the spec accepts the call: the reference raises spec.SpecError on every invalid one."""
    try:
        getattr(reference, function)(*[np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args],
                                     **kwargs)
    except spec.SpecError:
        return False
    return True


def _names(function: str) -> tuple[str, ...]:
    return result_names(function)


def value_deviation(function: str, result: Any, args: Sequence[Any], kwargs: dict[str, Any],
                    accuracy: spec.AccuracyClass = "direct", accumulation: dict[str, str] | None = None) -> str | None:
    """Why the result of a valid call breaks the spec (contract, shape, dtype, values), or None.

    ``accuracy`` and ``accumulation`` are the backend's declared accuracy class and accumulation precisions.
    """
    model = spec.Capabilities(accuracy=accuracy, accumulation=accumulation or {})
    problems = inspect_result(function, result, dict(zip(_input_names(function, len(args)), args)))
    if problems:
        return f"{function}: {problems[0]}"
    case = case_of(function, args, kwargs)
    names = _names(function)
    results = result if isinstance(result, (tuple, list)) else (result,)
    if function == case.problem.operation.forward:
        expected = {names[0]: expected_forward(case)}
        bounds = {names[0]: forward_bound(case, model)}
        shapes = {names[0]: case.problem.output_shape()}
        dtype = np.dtype(case.problem.result_dtype())
    else:
        expected = expected_backward(case)
        bounds = backward_bounds(case, model)
        shapes = {name: np.shape(value) for name, value in expected.items()}
        dtype = np.dtype(case.problem.dtype)
    for name, value in zip(names, results):
        if value.shape != shapes[name]:
            return f"{function}: {name}.shape={value.shape}, but should be {shapes[name]}"
        if value.dtype != dtype:
            return f"{function}: {name}.dtype={value.dtype}, but should be {dtype}"
    for name, value in zip(names, results):
        try:
            with np.errstate(all="ignore"):
                compare("replay", name, value, expected[name], bounds[name], case, [])
        except Violation as violation:
            return "\n".join([f"{function}: {violation.summary}", *violation.details])
    return None


def expect(function: str, result: Any, *args: Any, accuracy: spec.AccuracyClass = "direct",
           accumulation: dict[str, str] | None = None, **kwargs: Any) -> None:
    """Assert that ``result`` is what the spec requires of ``function(*args, **kwargs)``.

    The expected values are the reference's, computed in float64 from the same
    inputs; the tolerance is the spec's bound for the dtype (max pooling: exact).
    """
    __tracebackhide__ = True
    problem = value_deviation(function, result, args, kwargs, accuracy, accumulation)
    if problem is not None:
        raise AssertionError(problem)


def expect_raises(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Assert that ``fn`` rejects an invalid call by raising (the reference raises spec.SpecError)."""
    __tracebackhide__ = True
    try:
        result = fn(*args, **kwargs)
    except Exception:
        return
    name = getattr(fn, "__name__", "the backend")
    shapes = [getattr(r, "shape", None) for r in result] if isinstance(result, (tuple, list)) else getattr(
        result, "shape", None)
    raise AssertionError(f"{name} accepted an invalid call instead of raising (returned shape {shapes})")


def expect_unchanged(name: str, before: np.ndarray[Any, Any], after: np.ndarray[Any, Any]) -> None:
    """Assert that the backend did not write into its input ``name``."""
    __tracebackhide__ = True
    if not np.array_equal(before, after, equal_nan=True):
        changed = int(np.sum(~((before == after) | (np.isnan(before) & np.isnan(after)))))
        raise AssertionError(f"the backend wrote into its input {name}: {changed} of {before.size} elements changed")


__all__ = ["case_of", "expect", "expect_raises", "expect_unchanged", "is_valid", "value_deviation"]

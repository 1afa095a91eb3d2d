"""The operation registry (spec/operations.py) agrees with the reference, the documents and the capabilities.

Nothing here pins how many operations there are: every check runs over the registry itself, so a new
record is checked the moment it is added.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import reference
import spec
from conformance.strategies import BUILDERS, Problem, make_inputs, problems
from spec import OPERATIONS, Capabilities, Operation

DOCS = Path(__file__).resolve().parents[1] / "spec" / "docs"
RECORDS = list(OPERATIONS.values())


def _ids(record: Operation) -> str:
    return record.name


@pytest.mark.parametrize("record", RECORDS, ids=_ids)
def test_functions_exist_in_the_reference_with_the_registered_signature(record: Operation) -> None:
    """Positional arrays, then exactly the parameter model's fields as keyword-only arguments."""
    params = list(record.param_names)
    for name, arrays in ((record.forward, record.forward_args), (record.backward, record.backward_args)):
        if name is None:
            assert arrays == () and not hasattr(reference, f"{record.name}_backward")
            continue
        signature = inspect.signature(getattr(reference, name))
        positional = [p.name for p in signature.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        keyword = [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]
        assert positional == list(arrays), f"{name}: positional {positional}, but should be {list(arrays)}"
        assert keyword == params, f"{name}: keyword-only {keyword}, but should be {params}"
    assert record.functions == tuple(n for n in (record.forward, record.backward) if n)


def test_function_names_are_unique_and_derived() -> None:
    assert len(set(spec.FUNCTION_NAMES)) == len(spec.FUNCTION_NAMES)
    assert set(spec.FUNCTION_NAMES) == set(spec.OPERATION_OF)
    assert all(spec.OPERATION_OF[f].name == op for op, r in OPERATIONS.items() for f in r.functions)
    assert set(spec.supported_functions(reference)) == set(spec.FUNCTION_NAMES)
    assert spec.protocol.OPERATIONS is OPERATIONS and spec.protocol.FUNCTION_NAMES is spec.FUNCTION_NAMES


@pytest.mark.parametrize("record", RECORDS, ids=_ids)
def test_document_constraint_prefix_and_capabilities_exist(record: Operation) -> None:
    text = (DOCS / record.document).read_text()
    assert re.search(rf"\*\*{record.constraint_prefix}-C1\*\*", text), f"{record.document} has no {record.constraint_prefix}-C1"
    fields = {f.name for f in dataclasses.fields(Capabilities)}
    assert set(record.capabilities) <= fields, set(record.capabilities) - fields
    assert record.dilation_field is None or record.dilation_field in record.capabilities
    assert record.locates is None or record.locates in OPERATIONS
    assert record.name in BUILDERS, f"conformance.strategies has no builder for {record.name}"


def test_every_capability_field_applies_to_some_operation() -> None:
    """A capability no operation lists would narrow nothing (notes and the pooling alias aside)."""
    listed = {c for record in RECORDS for c in record.capabilities}
    unused = {f.name for f in dataclasses.fields(Capabilities)} - listed - {"notes", "asymmetric_padding"}
    assert unused == set()


def test_operation_lookup_names_the_known_ones() -> None:
    assert spec.operation("linear") is OPERATIONS["linear"]
    with pytest.raises(spec.SpecError) as info:
        spec.operation("deconv")
    assert info.value.parameter == "operation"


#: (op, x, w, params) with the expected output shape worked out by hand.
_WORKED: list[tuple[str, tuple[int, ...], tuple[int, ...] | None, dict[str, Any], tuple[int, ...]]] = [
    ("conv", (1, 1, 28, 28), (16, 1, 4, 4),
     {"stride": (2, 2), "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "groups": 1}, (1, 16, 13, 13)),
    ("conv_transpose", (2, 4, 28), (4, 3, 3),
     {"stride": (2,), "padding": ((1, 1),), "output_padding": (1,), "dilation": (1,), "groups": 1}, (2, 3, 56)),
    ("max_pool", (1, 2, 5), None,
     {"kernel_size": (2,), "stride": (2,), "padding": ((0, 0),), "dilation": (1,), "ceil_mode": True}, (1, 2, 3)),
    ("max_pool_indices", (1, 2, 5, 5), None,
     {"kernel_size": (3, 3), "stride": (2, 2), "padding": ((1, 1), (1, 1)), "dilation": (1, 1), "ceil_mode": False},
     (1, 2, 3, 3)),
    ("avg_pool", (1, 1, 6), None, {"kernel_size": (3,), "stride": (3,), "padding": ((0, 0),), "dilation": (1,),
                                   "ceil_mode": False, "count_include_pad": True}, (1, 1, 2)),
    ("adaptive_avg_pool", (2, 8, 7, 7), None, {"output_size": (1, 1)}, (2, 8, 1, 1)),
    ("adaptive_max_pool", (1, 1, 2, 3), None, {"output_size": (3, 5)}, (1, 1, 3, 5)),
    ("linear", (4, 784), (100, 784), {}, (4, 100)),
]


def test_the_worked_examples_cover_every_operation() -> None:
    assert {op for op, *_ in _WORKED} == set(OPERATIONS)


@pytest.mark.parametrize(("op", "x_shape", "w_shape", "params", "expected"), _WORKED, ids=[w[0] for w in _WORKED])
def test_output_shape_agrees_with_the_reference(op: str, x_shape: tuple[int, ...], w_shape: tuple[int, ...] | None,
                                                params: dict[str, Any], expected: tuple[int, ...]) -> None:
    record = spec.operation(op)
    x = np.ones(x_shape)
    w = None if w_shape is None else np.ones(w_shape)
    assert record.output_shape(x, w, None, **params) == expected
    args = {"x": x, "w": w, "b": None}
    result = getattr(reference, record.forward)(*(args[a] for a in record.forward_args), **params)
    assert result.shape == expected
    assert result.dtype == np.dtype(record.result_dtype or "float64")
    assert record.call(params)._asdict() == params  # type: ignore[attr-defined]
    terms = record.terms(x_shape, w_shape, params)
    assert terms.forward >= 1 and terms.dx >= 1


def test_an_invalid_call_raises_through_the_registry() -> None:
    with pytest.raises(spec.SpecError):
        OPERATIONS["adaptive_avg_pool"].output_shape(np.ones((1, 1, 4)), output_size=(0,))
    with pytest.raises(TypeError):
        OPERATIONS["linear"].call({"stride": (1,)})


@pytest.mark.parametrize("record", RECORDS, ids=_ids)
def test_generated_problems_are_accepted_by_the_reference(record: Operation) -> None:
    """Every generated problem is valid: forward and backward run on it and give the registered shapes."""
    @settings(max_examples=12, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(problems(record.name, Capabilities(), "float64"))
    def check(problem: Problem) -> None:
        inputs = make_inputs(problem, "integers", 0)
        named = {"x": inputs.x, "w": inputs.w, "b": inputs.b, "dy": inputs.dy}
        y = getattr(reference, record.forward)(*(named[a] for a in record.forward_args), **problem.params)
        assert y.shape == problem.output_shape() and y.dtype == np.dtype(problem.result_dtype())
        if record.backward is not None:
            grads = getattr(reference, record.backward)(*(named[a] for a in record.backward_args), **problem.params)
            grads = grads if isinstance(grads, tuple) else (grads,)
            assert len(grads) == len(record.backward_results)
            assert grads[0].shape == problem.x_shape
        assert problem.call == record.call(problem.params)

    check()


def test_narrowed_capabilities_narrow_the_new_operations() -> None:
    """No output_padding, global adaptive pooling only: the problems stay inside."""
    caps = Capabilities(output_padding=False, adaptive_output_size="global", spatial_ranks={1, 2})

    @settings(max_examples=15, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(problems("conv_transpose", caps, "float64"), problems("adaptive_max_pool", caps, "float64"))
    def check(transposed: Problem, adaptive: Problem) -> None:
        assert set(transposed.params["output_padding"]) == {0}
        assert set(adaptive.params["output_size"]) == {1} and adaptive.spatial_rank in (1, 2)
        transposed.output_shape()  # valid without output_padding

    check()


@pytest.mark.parametrize("record", RECORDS, ids=_ids)
def test_weight_layout_gives_the_output_channels(record: Operation) -> None:
    """An operation with weights says how they are laid out: 4 -> 6 channels in 2 groups gives 6 output channels."""
    assert (record.weight_shape is not None) == record.has_weights
    if record.weight_shape is None:
        return
    rank = 0 if record.windowing == "none" else 1
    w = np.ones(record.weight_shape(4, 6, 2 if "groups" in record.param_names else 1, (3,) * rank))
    x = np.ones((2, 4, 5)[: 2 + rank])
    params = {name: value for name, value in _WORKED_PARAMS.items() if name in record.param_names}
    assert record.output_shape(x, w, np.ones(6), **params)[:2] == (2, 6)


_WORKED_PARAMS: dict[str, Any] = {"stride": (1,), "padding": ((0, 0),), "dilation": (1,), "groups": 2,
                                  "output_padding": (0,)}


@pytest.mark.parametrize("record", RECORDS, ids=_ids)
def test_replay_checks_every_function_by_its_registered_results(record: Operation) -> None:
    """A recorded call of any protocol function is re-checked by the registry's names: the reference's own result
    passes, a result off by one in its first element does not (indices included)."""
    from conformance.replay import value_deviation

    problem = _first_problem(record)
    inputs = make_inputs(problem, "integers", 1)
    named = {"x": inputs.x, "w": inputs.w, "b": inputs.b, "dy": inputs.dy}
    for function, arrays in ((record.forward, record.forward_args), (record.backward, record.backward_args)):
        if function is None:
            continue
        args = [named[a] for a in arrays]
        result = getattr(reference, function)(*args, **problem.params)
        assert value_deviation(function, result, args, problem.params) is None, function
        first = result[0] if isinstance(result, tuple) else result
        first.flat[0] += 1
        assert value_deviation(function, result, args, problem.params) is not None, function


def _first_problem(record: Operation) -> Problem:
    found: list[Problem] = []
    narrow = {"rank": 1} if record.windowing != "none" else {}

    @settings(max_examples=1, database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(problems(record.name, Capabilities(), "float64", **narrow))
    def draw(problem: Problem) -> None:
        found.append(problem)

    draw()
    return found[0]

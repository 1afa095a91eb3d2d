"""The registry of metamorphic relations: each relation holds on the reference and catches a perturbed forward.

The perturbation adds 1 to the first output element of one operation's forward. Every relation compares
results of several calls, so it sees the perturbation (batch independence: each sample's first element;
channel permutation: it moves to the last channel; linearity: +1 on one side, +2 on the other; the monotone
map: +1 against +3; translation: it lands one row off; the conv equivalences: only one side is perturbed).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import reference
import spec
from conformance.compare import Violation
from conformance.context import Context
from conformance.invoke import InProcessCaller
from conformance.loader import LoadedBackend
from conformance.rules.metamorphic import RELATIONS, check_metamorphic, relations
from conformance.strategies import Case, Problem, make_inputs

_POOL = {"kernel_size": (2, 2), "stride": (1, 2), "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "ceil_mode": False}
PROBLEMS: dict[str, Problem] = {
    "conv": Problem("conv", "float64", (2, 4, 5, 4), (4, 2, 2, 2), True,
                    {"stride": (1, 1), "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "groups": 2}),
    "max_pool": Problem("max_pool", "float64", (2, 3, 5, 4), None, False, _POOL),
    "avg_pool": Problem("avg_pool", "float64", (2, 3, 5, 4), None, False, {**_POOL, "count_include_pad": True}),
    "linear": Problem("linear", "float64", (3, 4), (3, 4), True, {}),
    # w is (C_in, C_out / groups, *K): two groups of two output channels each.
    "conv_transpose": Problem("conv_transpose", "float64", (2, 4, 3, 3), (4, 2, 2, 2), True,
                              {"stride": (2, 1), "padding": ((0, 0), (0, 0)), "output_padding": (1, 0),
                               "dilation": (1, 1), "groups": 2}),
    "max_pool_indices": Problem("max_pool_indices", "float64", (2, 3, 5, 4), None, False, _POOL),
    "adaptive_avg_pool": Problem("adaptive_avg_pool", "float64", (2, 3, 5, 4), None, False, {"output_size": (3, 2)}),
    "adaptive_max_pool": Problem("adaptive_max_pool", "float64", (2, 3, 5, 4), None, False, {"output_size": (3, 2)}),
}


def _backend(perturbed: str | None) -> LoadedBackend:
    functions: dict[str, Any] = {name: getattr(reference, name) for name in spec.FUNCTION_NAMES
                                 if hasattr(reference, name)}
    if perturbed is not None:
        name = spec.OPERATIONS[PROBLEMS[perturbed].op].forward
        forward = functions[name]

        def off_by_one(*args: Any, **kwargs: Any) -> Any:
            y = np.array(forward(*args, **kwargs))
            if y.size:
                y.reshape(-1)[0] += 1
            return y

        functions[name] = off_by_one
    obj = SimpleNamespace(**functions)
    return LoadedBackend("perturbed", "tests.test_relations", obj, spec.supported_functions(obj),
                         spec.capabilities_of(obj))


def _check(op: str, perturbed: str | None, name: str) -> None:
    ctx = Context(_backend(perturbed), InProcessCaller(_backend(perturbed).functions))
    applicable = [r.name for r in relations(PROBLEMS[op].op, ctx)]
    problem = PROBLEMS[op]
    check_metamorphic(ctx, (Case(problem, make_inputs(problem, "integers", 7)), applicable.index(name)))


CASES = [(op, r.name) for op in PROBLEMS for r in RELATIONS
         if r.applies(PROBLEMS[op].op, Context(_backend(None), InProcessCaller({})))]


def test_every_relation_applies_somewhere() -> None:
    assert {name for _, name in CASES} == {r.name for r in RELATIONS}


@pytest.mark.parametrize(("op", "name"), CASES)
def test_relation_holds_on_the_reference_and_catches_an_off_by_one_forward(op: str, name: str) -> None:
    _check(op, None, name)
    with pytest.raises(Violation, match=f"relation '{name}' does not hold"):
        _check(op, op, name)

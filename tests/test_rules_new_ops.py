"""The rules of the three operations with modules of their own (conformance.rules.transposed, .indices,
.adaptive): their helpers agree with the reference, and every invalid call they draw is invalid.

Whether the rules catch what they are for is tests/test_calibration.py's job (the bank's convt-*, maxidx-*
and adaptive-* entries); here only what those runs take on trust.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import reference
import spec
from conformance.loader import LoadedBackend
from conformance.report import render_text
from conformance.rules import RULES_BY_ID, adaptive, indices, transposed
from conformance.rules.indices import window_members
from conformance.rules.transposed import matching_conv
from conformance.runner import run
from conformance.strategies import Case, cases
from spec import OpName

NEW_OPS: tuple[OpName, ...] = ("conv_transpose", "max_pool_indices", "adaptive_avg_pool", "adaptive_max_pool")
#: The rules of the three modules, and the invalid calls they add.
OWN_RULES = (transposed.TRANSPOSE_IDENTITY, indices.INDICES_TIES, indices.INDICES_NAN, indices.INDICES_EMPTY_WINDOWS,
             indices.INDICES_AGREEMENT, adaptive.ADAPTIVE_WINDOWS, adaptive.ADAPTIVE_GLOBAL,
             adaptive.ADAPTIVE_IDENTITY, RULES_BY_ID["invalid-params"])
FEW = settings(max_examples=15, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


@FEW
@given(cases("max_pool_indices", spec.Capabilities(), "float64", kinds=("integers",)))
def test_window_members_hold_the_reference_index(case: Case) -> None:
    """The index the reference selects is one of its window's members; -1 exactly where the window has none."""
    members = window_members(case.problem.x_shape, dict(case.problem.params))
    indices = reference.max_pool_indices(case.inputs.x, **case.problem.params)
    held = (members[None, None] == indices[..., None]).any(axis=-1)
    empty = (members < 0).all(axis=-1)[None, None]
    assert np.array_equal(indices < 0, np.broadcast_to(empty, indices.shape)), case.problem.describe()
    assert (held | (indices < 0)).all(), case.problem.describe()


@FEW
@given(cases("conv_transpose", spec.Capabilities(), "float64", kinds=("integers",)))
def test_matching_conv_is_the_adjoint_of_the_transposed_convolution(case: Case) -> None:
    """CONVT-C8 on small integers (exact): the forward is the matching convolution's input gradient."""
    conv = matching_conv(case)
    y = reference.conv_transpose_forward(case.inputs.x, case.inputs.w, None, **case.problem.params)
    dx, _, _ = reference.conv_backward(conv.inputs.x, conv.inputs.w, conv.inputs.dy, **conv.problem.params)
    assert np.array_equal(y, dx), case.problem.describe()


@pytest.mark.parametrize("op", NEW_OPS)
def test_reference_passes_the_new_rules(op: OpName) -> None:
    """No false alarm: the reference passes its operation's own rules in every dtype (ci profile)."""
    backend = LoadedBackend("reference", "reference", reference, spec.supported_functions(reference),
                            spec.capabilities_of(reference))
    rules = [rule for rule in OWN_RULES if op in rule.ops]
    report = run(backend, ops=(op,), dtypes=spec.DTYPES, profile="ci", seed=3, rules=rules)
    assert report.conformant, render_text(report)
    assert {r.rule for r in report.results} == {rule.id for rule in rules}, render_text(report)

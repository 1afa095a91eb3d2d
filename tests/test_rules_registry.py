"""The generic rules read what they need from the registry, so they run on operations added to it.

The three operations added after the first four (transposed convolution, max-pool indices, adaptive
pooling) reach exactly the generic rules their records' flags select, and the reference passes them.
"""

from __future__ import annotations

import reference
import spec
from conformance.report import render_text
from conformance.rules import RULES_BY_ID
from conformance.rules.base import ALL_OPS, EVERY_OP, ops_where
from conformance.runner import run
from tests.test_calibration import loaded

NEW = tuple(op for op in spec.OPERATIONS if op not in ALL_OPS)
#: The generic rules and the new operations each applies to, by the registry's flags.
GENERIC: dict[str, tuple[str, ...]] = {
    "output-shape": NEW,
    "forward-values": NEW,
    "backward-values": tuple(op for op in NEW if spec.OPERATIONS[op].has_backward),
    "finite-differences": tuple(op for op in NEW if spec.OPERATIONS[op].has_backward),
    "adjoint": tuple(op for op in NEW if spec.OPERATIONS[op].linear and spec.OPERATIONS[op].has_backward),
    "metamorphic": NEW,
    "nan-propagation": tuple(op for op in NEW if spec.OPERATIONS[op].result_dtype is None),
    "nonfinite-backward": tuple(op for op in NEW if spec.OPERATIONS[op].has_backward),
    "overflow": tuple(op for op in NEW if spec.OPERATIONS[op].has_weights),
    "empty-batch": NEW,
}


def test_rules_take_their_operations_from_the_registry() -> None:
    assert EVERY_OP == tuple(spec.OPERATIONS)
    assert RULES_BY_ID["adjoint"].ops == ops_where(lambda r: r.linear and r.has_backward)
    assert "max_pool" not in RULES_BY_ID["adjoint"].ops and "max_pool" in RULES_BY_ID["finite-differences"].ops
    assert RULES_BY_ID["overflow"].ops == ops_where(lambda r: r.has_weights)


def test_generic_rules_reach_the_new_operations_by_their_flags() -> None:
    for rule, ops in GENERIC.items():
        assert tuple(op for op in RULES_BY_ID[rule].ops if op in NEW) == ops, rule


def test_generic_rules_pass_the_reference_on_the_new_operations() -> None:
    rules = [RULES_BY_ID[rule] for rule, ops in GENERIC.items() if ops]
    report = run(loaded("reference", "reference", reference), ops=NEW, dtypes=("float32",), profile="quick", seed=3,
                 rules=rules)
    assert report.conformant, render_text(report)
    ran = {(r.rule, r.op) for r in report.results if r.status == "passed" and r.checked}
    assert ran == {(rule, op) for rule, ops in GENERIC.items() for op in ops}, render_text(report)

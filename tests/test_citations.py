"""The citation table is complete: every constraint of every document is cited by a rule that reaches it.

"Reaches" is checked, not assumed: a cited rule must exist, cover the operation, apply under the full
capabilities and generate cases; each constraint an invalid-params mutation cites must be one whose
error the reference really raises for that mutation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
import spec
from conformance.citations import (
    CITATIONS,
    MUTATION_CITATIONS,
    NOT_CHECKED_ON_BACKENDS,
    RAISED_BY_EVERY_CALL,
)
from conformance.rules import INVALID_MUTATIONS, RULES, RULES_BY_ID, Rule, break_case
from conformance.strategies import Case, Problem, cases, make_inputs
from spec import OpName

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "spec" / "docs"
#: Every document whose constraints backends are checked against: the registry's and the backend protocol.
CONSTRAINT_DOCS = (*sorted({r.document for r in spec.OPERATIONS.values()}), "backends.md")


def test_every_document_is_checked() -> None:
    """A new document cannot slip past: it belongs to an operation of the registry (or is the protocol's),
    so the tests below require its every constraint to be cited, and it is listed in the index."""
    documents = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert documents == set(CONSTRAINT_DOCS)
    index = (DOCS / "README.md").read_text()
    for name in CONSTRAINT_DOCS:
        row = next(line for line in index.splitlines() if f"]({name})" in line)
        last = max(int(n) for n in re.findall(r"\*\*[A-Z]+-C(\d+)\*\*", (DOCS / name).read_text()))
        assert re.search(rf"… `[A-Z]+-C{last}`", row), f"spec/docs/README.md: {name}'s row does not end at C{last}"

def defined_constraints(documents: tuple[str, ...] = CONSTRAINT_DOCS) -> set[str]:
    ids: set[str] = set()
    for name in documents:
        ids |= set(re.findall(r"\*\*([A-Z]+-C\d+)\*\*", (DOCS / name).read_text()))
    return ids


def all_cited() -> set[str]:
    return {c for per_op in CITATIONS.values() for cs in per_op.values() for c in cs}


def test_documents_define_numbered_constraints() -> None:
    ids = defined_constraints()
    assert {"CONV-C1", "MAXPOOL-C10", "AVGPOOL-C6", "LINEAR-C3", "BACKEND-C6"} <= ids


def test_constraint_id_lists_match_the_constraints() -> None:
    """Each document's "Constraint ids" list names exactly the constraints it defines, numbered 1..n."""
    for name in CONSTRAINT_DOCS:
        text = (DOCS / name).read_text()
        defined = re.findall(r"\*\*([A-Z]+-C(\d+))\*\*", text)
        listed = set(re.findall(r"`([A-Z]+-C\d+)`", text.split("## Constraint ids", 1)[1].split("\n## ", 1)[0]))
        assert listed == {c for c, _ in defined}, f"{name}: listed {sorted(listed)} vs defined {[c for c, _ in defined]}"
        assert sorted(int(n) for _, n in defined) == list(range(1, len(defined) + 1)), name


def test_every_cited_id_is_defined_in_the_documents() -> None:
    ids = defined_constraints()
    assert all_cited() - ids == set(), f"cited but not defined: {sorted(all_cited() - ids)}"


def test_every_constraint_is_enforced_by_some_rule() -> None:
    unchecked = defined_constraints() - all_cited() - set(NOT_CHECKED_ON_BACKENDS)
    assert unchecked == set(), f"constraints no rule enforces: {sorted(unchecked)}"


def test_every_rule_cites_the_spec_for_each_of_its_operations() -> None:
    for rule in RULES:
        for op in rule.ops:
            assert CITATIONS.get(rule.id, {}).get(op), f"{rule.id} cites nothing for {op}"


def test_every_cited_constraint_has_an_anchor_in_its_document() -> None:
    from conformance.citations import anchor

    root = DOCS.parents[1]
    cited = {c for per_op in CITATIONS.values() for cs in per_op.values() for c in cs}
    for constraint in sorted(cited):
        path, _, fragment = anchor(constraint).partition("#")
        assert f'<a id="{fragment}"></a>**{constraint}**' in (root / path).read_text(), (
            f"{constraint}: no anchor {fragment!r} in {path}")


def test_every_citing_rule_reaches_its_operation() -> None:
    """A citation by (rule, op) counts only if that rule runs on that op under the full capabilities."""
    full = spec.Capabilities()
    for rule_id, per_op in CITATIONS.items():
        if rule_id in RAISED_BY_EVERY_CALL:  # raised by the checked caller on every call of every rule
            continue
        rule = RULES_BY_ID.get(rule_id)
        assert rule is not None, f"{rule_id} is cited but is no rule"
        for op in per_op:
            assert op in rule.ops, f"{rule_id} cites constraints for {op} but never runs on it"
            assert rule.applies(op, full) is None, f"{rule_id} does not run on {op} even with full capabilities"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_generates_cases_for_its_operations(rule: Rule) -> None:
    for op in rule.ops:
        assert _draws(rule, op) > 0, f"{rule.id} generated nothing for {op}"


def _draws(rule: Rule, op: OpName) -> int:
    drawn: list[object] = []

    @settings(max_examples=2, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rule.strategy(op, spec.Capabilities(), "float64"))
    def draw(case: object) -> None:
        drawn.append(case)

    draw()
    return len(drawn)


def test_every_mutation_is_cited_and_raises_in_the_reference() -> None:
    """Each invalid-params mutation names the constraints it reaches, and the reference rejects it."""
    for op in spec.OPERATIONS:
        assert set(MUTATION_CITATIONS[op]) == set(INVALID_MUTATIONS[op]), op
        cited = set(CITATIONS["invalid-params"][op])
        for mutation, ids in MUTATION_CITATIONS[op].items():
            assert set(ids) <= cited, (op, mutation)

        @settings(max_examples=3, database=None, derandomize=True, deadline=None)
        @given(cases(op, spec.Capabilities(), "float64", kinds=("integers",)), st.sampled_from(INVALID_MUTATIONS[op]))
        def rejected(case: Case, mutation: str) -> None:
            function, args, kwargs = break_case(case, mutation)
            with pytest.raises(spec.SpecError):
                getattr(reference, function)(*args, **kwargs)

        rejected()
        # Every mutation at least once, on one fixed small case.
        fixed = _small_case(op)
        for mutation in INVALID_MUTATIONS[op]:
            function, args, kwargs = break_case(fixed, mutation)
            with pytest.raises(spec.SpecError):
                getattr(reference, function)(*args, **kwargs)


def _small_case(op: OpName) -> Case:
    if op == "conv":
        problem = Problem("conv", "float64", (1, 2, 4), (2, 1, 2), True,
                          {"stride": (1,), "padding": ((1, 0),), "dilation": (1,), "groups": 2})
    elif op == "linear":
        problem = Problem("linear", "float64", (2, 3), (4, 3), True, {})
    elif op == "conv_transpose":
        problem = Problem("conv_transpose", "float64", (1, 2, 4), (2, 1, 2), True,
                          {"stride": (2,), "padding": ((1, 0),), "output_padding": (1,), "dilation": (1,), "groups": 2})
    elif op in ("adaptive_avg_pool", "adaptive_max_pool"):
        problem = Problem(op, "float64", (1, 2, 4), None, False, {"output_size": (3,)})
    else:
        params = {"kernel_size": (2,), "stride": (1,), "padding": ((1, 0),), "dilation": (1,), "ceil_mode": True}
        if op == "avg_pool":
            params["count_include_pad"] = False
        problem = Problem(op, "float64", (1, 2, 4), None, False, params)
    return Case(problem, make_inputs(problem, "integers", 0))


def test_backends_document_is_scanned() -> None:
    backend_ids = {c for c in defined_constraints() if c.startswith("BACKEND-")}
    assert backend_ids == {f"BACKEND-C{k}" for k in range(1, 7)}
    assert backend_ids <= all_cited()


def test_every_constraint_of_every_operation_document_has_an_anchor() -> None:
    """Reports link each cited constraint to its sentence: every bullet of every registry document carries one."""
    for name in sorted({r.document for r in spec.OPERATIONS.values()}):
        text = (DOCS / name).read_text()
        for constraint in re.findall(r"\*\*([A-Z]+-C\d+)\*\*", text):
            assert f'<a id="{constraint.lower()}"></a>**{constraint}**' in text, f"{name}: {constraint} has no anchor"

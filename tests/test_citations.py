"""Every rule cites constraints that exist, and every constraint of the spec is enforced by a rule."""

from __future__ import annotations

import re
from pathlib import Path

from conformance.citations import CITATIONS, NOT_CHECKED_ON_BACKENDS
from conformance.rules import RULES

DOCS = Path(__file__).resolve().parents[1] / "spec" / "docs"
OPERATION_DOCS = ("conv.md", "max_pool.md", "avg_pool.md", "linear.md")


def defined_constraints() -> set[str]:
    ids: set[str] = set()
    for name in OPERATION_DOCS:
        ids |= set(re.findall(r"\*\*([A-Z]+-C\d+)\*\*", (DOCS / name).read_text()))
    return ids


def test_documents_define_numbered_constraints() -> None:
    ids = defined_constraints()
    assert {"CONV-C1", "MAXPOOL-C10", "AVGPOOL-C6", "LINEAR-C3"} <= ids


def test_every_cited_id_is_defined_in_the_documents() -> None:
    ids = defined_constraints()
    cited = {c for per_op in CITATIONS.values() for cs in per_op.values() for c in cs}
    assert cited - ids == set(), f"cited but not defined: {sorted(cited - ids)}"


def test_every_constraint_is_enforced_by_some_rule() -> None:
    cited = {c for per_op in CITATIONS.values() for cs in per_op.values() for c in cs}
    unchecked = defined_constraints() - cited - set(NOT_CHECKED_ON_BACKENDS)
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

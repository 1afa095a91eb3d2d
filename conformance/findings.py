"""Findings: what tells two violations apart, and which to read first.

A rule's search keeps going after its first violation and reports every
*distinct* one: a violation is a repeat of a finding when it breaks the same
rule with the same message (numbers aside) on a case that activates at least
the finding's parameters (its minimal case shrank to those, so any case with
more of them shows the same bug again).

The "start here" list groups findings of a run that share a cause, read off
their minimal cases: the same operation and the same set of active
parameters. Groups are ordered simplest first: fewer active parameters, a
forward call before a backward one, a shape or contract problem before a
value problem.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from conformance.compare import Violation
from conformance.strategies import Problem

#: How many findings one rule x operation x dtype search reports at most.
MAX_FINDINGS = 4
#: Each further search for another finding draws this fraction of the rule's example budget (at least 2). A count,
#: not a time: the same seed must report the same findings however busy the machine is.
EXTRA_SEARCH_FRACTION = 0.5

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
#: Order of kinds of problems in the "start here" list: the contract before shapes before values.
_KIND_ORDER = {"crash": 0, "hang": 0, "error": 1, "output-contract": 2, "input-mutation": 2, "output-shape": 3}


def features(problem: Problem | None) -> frozenset[str]:
    """The parameters a problem activates beyond the simplest case (for telling findings apart).

    >>> p = Problem("conv", "float32", (2, 1, 5), (1, 1, 3), True,
    ...             {"stride": (2,), "padding": ((1, 0),), "dilation": (1,), "groups": 1})
    >>> sorted(features(p))
    ['N>1', 'asymmetric padding', 'bias', 'padding', 'stride']
    """
    if problem is None:
        return frozenset()
    out: set[str] = set()
    params = problem.params
    if problem.x_shape and problem.x_shape[0] > 1:
        out.add("N>1")
    if problem.x_shape and problem.x_shape[0] == 0:
        out.add("N=0")
    if problem.bias:
        out.add("bias")
    if any(s != 1 for s in params.get("stride", ())):
        out.add("stride")
    if any(d != 1 for d in params.get("dilation", ())):
        out.add("dilation")
    padding = params.get("padding", ())
    if any(lo or hi for lo, hi in padding):
        out.add("padding")
    if any(lo != hi for lo, hi in padding):
        out.add("asymmetric padding")
    if params.get("groups", 1) != 1:
        out.add("groups")
    if params.get("ceil_mode"):
        out.add("ceil_mode")
    if params.get("count_include_pad") is False:
        out.add("count_include_pad=False")
    if problem.operation.windowing != "none" and problem.spatial_rank == 3:
        out.add("3-D")
    return frozenset(out)


@dataclass(frozen=True)
class Signature:
    """What identifies a finding within one search."""

    rule: str
    message: str
    features: frozenset[str]

    def covers(self, violation: Violation) -> bool:
        """Whether ``violation`` is this finding seen again."""
        other = signature(violation)
        return other.rule == self.rule and other.message == self.message and self.features <= other.features


def signature(violation: Violation) -> Signature:
    problem = violation.case.problem if violation.case is not None else None
    message = _NUMBER.sub("#", violation.summary)
    if violation.kind in ("crash", "hang"):  # "f crashed ...", "f was not called again ...": one finding per function
        message = f"{violation.kind} of {violation.summary.split(' ', 1)[0]}"
    return Signature(violation.rule, message, features(problem))


@dataclass
class Finding:
    """One distinct violation of a search, with the call of its reproduction that breaks the spec."""

    violation: Violation
    #: The protocol function of the first call that breaks the spec in the reproduction (None: unknown).
    function: str | None = None
    #: What that call does wrong, as the reproduction's assertion says it.
    problem: str | None = None
    #: The active parameters, when the case itself is gone (a finding read back from a JSON report).
    recorded_active: frozenset[str] | None = None

    @property
    def active(self) -> frozenset[str]:
        """The parameters the minimal case activates (see :func:`features`)."""
        if self.violation.case is not None:
            return features(self.violation.case.problem)
        return self.recorded_active or frozenset()


@dataclass
class Cause:
    """Findings that share a minimal case's operation and active parameters: likely one bug."""

    op: str
    features: frozenset[str]
    #: (rule, dtype, finding), the simplest first.
    members: list[tuple[str, str, Finding]] = field(default_factory=list)

    def headline(self) -> str:
        rule, dtype, first = self.members[0]
        active = ", ".join(sorted(self.features)) or "no optional parameter"
        rows = sorted({(r, d) for r, d, _ in self.members})
        also = f"; {len(rows) - 1} more row(s) fail with the same active parameters" if len(rows) > 1 else ""
        return f"{self.op} [{active}]: {first.violation.summary} ({rule}, {dtype}{also})"


def _simplicity(rule: str, finding: Finding) -> tuple[int, int, int]:
    v = finding.violation
    backward = 1 if (finding.function or "").endswith("_backward") else 0
    kind = _KIND_ORDER.get(v.kind, _KIND_ORDER.get(v.rule, 4))
    return backward, len(finding.active), kind


def root_causes(findings: Sequence[tuple[str, str, str, Finding]]) -> list[Cause]:
    """Group (rule, op, dtype, finding) by shared cause, simplest cause and simplest finding first."""
    groups: dict[tuple[str, frozenset[str]], Cause] = {}
    for rule, op, dtype, finding in findings:
        key = (op, finding.active)
        groups.setdefault(key, Cause(op, key[1])).members.append((rule, dtype, finding))
    causes = list(groups.values())
    for cause in causes:
        cause.members.sort(key=lambda m: _simplicity(m[0], m[2]))
    causes.sort(key=lambda c: (_simplicity(c.members[0][0], c.members[0][2]), -len(c.members)))
    return causes


__all__ = ["EXTRA_SEARCH_FRACTION", "MAX_FINDINGS", "Cause", "Finding", "Signature", "features", "root_causes", "signature"]

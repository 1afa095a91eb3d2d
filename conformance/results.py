"""The result model of a run: one :class:`RuleResult` per plan item, gathered in a :class:`RunReport`.

Plain data, apart from the runner (:mod:`conformance.runner` produces it) and from the renderers that read it
(:mod:`conformance.report`, :mod:`conformance.merge`, :mod:`conformance.progress`), so that none of those needs
to import the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.compare import Violation
from conformance.findings import Finding


@dataclass
class RuleResult:
    rule: str
    title: str
    op: str
    dtype: str
    #: "passed", "failed", "not covered" (nothing was checked), "not run" (the function was disabled after it
    #: crashed or hung) or "error" (the suite itself failed: a bug to report).
    status: str
    examples: int = 0
    seconds: float = 0.0
    #: Every distinct violation found, the first search's first.
    findings: list[Finding] = field(default_factory=list)
    note: str = ""
    #: The failure was found by replaying an example saved by an earlier run (see conformance.database).
    replayed: bool = False
    #: Examples on which the backend computed the values the rule checked.
    checked: int = 0
    #: Examples the backend declined (spec.UnsupportedError), and their reasons counted.
    declined: int = 0
    declined_reasons: dict[str, int] = field(default_factory=dict)
    #: Seconds spent in calls of a shape signature (function, shapes, dtypes, parameters) the run had not called
    #: before: the compilation time of a backend that compiles per shape, timed apart from the checks.
    first_call_seconds: float = 0.0
    #: How many such first calls the rule made.
    first_calls: int = 0

    @property
    def violation(self) -> Violation | None:
        """The first finding's violation (None when the rule passed)."""
        return self.findings[0].violation if self.findings else None


@dataclass
class RunReport:
    backend: str
    target: str
    profile: str
    seed: int
    ops: list[str]
    dtypes: list[str]
    results: list[RuleResult] = field(default_factory=list)
    #: What the run did not cover and why: missing functions, narrowed capabilities, skipped rules.
    uncovered: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_early: bool = False
    #: "K/N" when this run is one shard of a split run (see conformance.shard), else None.
    shard: str | None = None
    #: Calls that exceeded the time limit but finished when retried with a longer one.
    slow: list[str] = field(default_factory=list)
    #: The backend declared compiles_per_shape: shapes came from pools, first calls are compilations.
    compiles_per_shape: bool = False

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if r.status in ("failed", "error")]

    @property
    def checked(self) -> int:
        """Examples the backend computed, over all rules."""
        return sum(r.checked for r in self.results)

    @property
    def conformant(self) -> bool:
        """No failure, and something was checked: a run that checked nothing proves nothing."""
        return not self.failures and any(r.status == "passed" and r.checked > 0 for r in self.results)


__all__ = ["RuleResult", "RunReport"]

"""``convspec merge``: the shards of one run, put back together into one report and one verdict.

    convspec check BACKEND --shard 1/2 --report shard-1.json
    convspec check BACKEND --shard 2/2 --report shard-2.json
    convspec merge shard-1.json shard-2.json --report merged.md

The shards must come from the same run (backend, profile, seed, operations,
dtypes), each shard exactly once. The merged report lists the results in the
order an unsharded run would, with the same tables, and renders to every
format ``convspec check`` writes; its ``seconds`` is the shards' total. For
the same seed it holds the same rule results as the unsharded run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.compare import Violation
from conformance.findings import Finding
from conformance.results import RuleResult, RunReport
from conformance.rules import RULES, RULES_BY_ID
from conformance.shard import Shard

#: Fields that must be equal in every shard of one run.
_SAME_RUN = ("backend", "target", "profile", "seed", "ops", "dtypes")


class MergeError(Exception):
    """The reports cannot be merged; the message is one line."""


@dataclass
class RecordedViolation(Violation):
    """A violation read back from a JSON report: the minimal case is kept as text."""

    recorded_case: tuple[str, str] | None = None

    @property
    def case_text(self) -> tuple[str, str] | None:
        return self.recorded_case


def result_from_dict(data: dict[str, Any]) -> RuleResult:
    """One rule result of a JSON report (the inverse of :func:`conformance.report.to_dict` for one result)."""
    rule = str(data["rule"])
    title = str(data.get("title") or (RULES_BY_ID[rule].title if rule in RULES_BY_ID else rule))
    findings = [_finding_from_dict(f) for f in (data.get("findings") or ([data["violation"]] if data.get("violation")
                                                                         else []))]
    return RuleResult(rule, title, str(data["op"]), str(data["dtype"]), str(data["status"]),
                      int(data.get("examples", 0)), float(data.get("seconds", 0.0)), findings,
                      str(data.get("note", "")), bool(data.get("replayed", False)), checked=int(data.get("checked", 0)),
                      declined=int(data.get("declined", 0)),
                      declined_reasons={str(k): int(v) for k, v in (data.get("declined_reasons") or {}).items()},
                      first_call_seconds=float(data.get("first_call_seconds", 0.0)),
                      first_calls=int(data.get("first_calls", 0)))


def _finding_from_dict(v: dict[str, Any]) -> Finding:
    case = (str(v["problem"]), str(v.get("values") or "?")) if v.get("problem") else None
    violation = RecordedViolation(str(v["rule"]), str(v["summary"]), None, [str(d) for d in v.get("details", [])],
                                  str(v.get("snippet", "")).splitlines(), str(v.get("kind", "failure")),
                                  recorded_case=case)
    return Finding(violation, v.get("failing_call"), None, frozenset(str(a) for a in v.get("active", [])))


def report_from_dict(data: dict[str, Any]) -> RunReport:
    """A run report from its JSON form."""
    return RunReport(
        str(data["backend"]), str(data["target"]), str(data["profile"]), int(data["seed"]),
        [str(o) for o in data["ops"]], [str(d) for d in data["dtypes"]],
        [result_from_dict(r) for r in data["results"]], [str(u) for u in data.get("uncovered", [])],
        {str(k): str(v) for k, v in data.get("versions", {}).items()}, float(data.get("seconds", 0.0)),
        bool(data.get("stopped_early", False)), data.get("shard"), [str(s) for s in data.get("slow", [])],
        compiles_per_shape=bool(data.get("compiles_per_shape", False)),
    )


def load_report(path: str) -> RunReport:
    """Read a JSON report written by ``convspec check --report FILE.json``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return report_from_dict(data)
    except OSError as exc:
        raise MergeError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise MergeError(f"{path!r} is not JSON ({exc.msg} at line {exc.lineno}); merge reads .json reports") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MergeError(f"{path!r} is not a convspec JSON report (missing or invalid {exc})") from None


def merge(reports: Sequence[RunReport], names: Sequence[str] | None = None) -> RunReport:
    """One report of the whole run from the reports of its shards (each exactly once)."""
    names = list(names or [f"report {i + 1}" for i in range(len(reports))])
    if not reports:
        raise MergeError("no reports to merge")
    first = reports[0]
    for report, name in zip(reports[1:], names[1:]):
        for attribute in _SAME_RUN:
            if getattr(report, attribute) != getattr(first, attribute):
                raise MergeError(f"{name} is from another run: {attribute} {getattr(report, attribute)!r}, "
                                 f"but {names[0]} has {getattr(first, attribute)!r}")
    shards: dict[int, str] = {}
    count = None
    for report, name in zip(reports, names):
        if report.shard is None:
            raise MergeError(f"{name} is not a shard (it was not run with --shard K/N)")
        shard = Shard.parse(report.shard)
        if count is not None and shard.count != count:
            raise MergeError(f"{name} is shard {shard} but the others are out of {count}")
        count = shard.count
        if shard.index in shards:
            raise MergeError(f"shard {shard} given twice: {shards[shard.index]} and {name}")
        shards[shard.index] = name
    assert count is not None
    missing = [str(Shard(k, count)) for k in range(1, count + 1) if k not in shards]
    if missing:
        raise MergeError(f"shard(s) {', '.join(missing)} missing: the verdict needs all {count}")

    rule_order = {rule.id: i for i, rule in enumerate(RULES)}
    results = [r for report in reports for r in report.results]
    results.sort(key=lambda r: (first.ops.index(r.op) if r.op in first.ops else len(first.ops),
                                rule_order.get(r.rule, len(rule_order)), r.rule,
                                first.dtypes.index(r.dtype) if r.dtype in first.dtypes else len(first.dtypes)))
    uncovered = list(dict.fromkeys(u for report in reports for u in report.uncovered))
    versions: dict[str, str] = {}
    for report in reports:
        for key, value in report.versions.items():
            seen = versions.get(key)
            versions[key] = value if seen is None or value in seen.split(" | ") else f"{seen} | {value}"
    return RunReport(first.backend, first.target, first.profile, first.seed, list(first.ops), list(first.dtypes),
                     results, uncovered, versions, sum(r.seconds for r in reports),
                     any(r.stopped_early for r in reports), None,
                     compiles_per_shape=any(r.compiles_per_shape for r in reports))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="+", metavar="REPORT.json", help="the JSON reports of the shards")
    parser.add_argument("--report", action="append", default=[], metavar="FILE",
                        help="write the merged report: .json, .md or .xml (JUnit); may be given several times")


def run_from_args(args: argparse.Namespace) -> int:
    import conformance.report as reporting

    for path in args.report:
        if not reporting.writer_for(path):
            print(f"convspec: error: --report {path!r}: use a .json, .md or .xml file name", file=sys.stderr)
            return 2
    try:
        merged = merge([load_report(path) for path in args.reports], args.reports)
    except MergeError as exc:
        print(f"convspec: error: {exc}", file=sys.stderr)
        return 2
    print(f"convspec merge: {len(args.reports)} shards of {merged.backend} ({merged.target}): profile {merged.profile}, "
          f"seed {merged.seed}")
    print(reporting.render_text(merged))
    for path in args.report:
        reporting.write_report(merged, path)
        print(f"report written to {path}")
    return 0 if merged.conformant else 1

"""Reports: progress lines, the text summary, and JSON / Markdown / JUnit XML files.

Every failure reads the same: the rule and what it requires, the operation
and its parameters, the minimal case Hypothesis found, expected vs actual at
the worst element with the bound used, and a script that reproduces it.
Files are written atomically: a run killed mid-way leaves the previous report
or a complete new one, never a truncated file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from conformance.citations import anchor, cited
from conformance.findings import Finding, root_causes
from conformance.results import RuleResult, RunReport
from conformance.textio import write_atomically

STATUS_MARK = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "not covered": "not covered", "not run": "not run"}


def _short(text: str, limit: int = 60) -> str:
    text = text.strip().splitlines()[0] if text.strip() else ""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def coverage(results: list[RuleResult]) -> str:
    """How much of the examples the backend computed: ``31 of 40; 9 declined: stride > 1``.

    >>> r = RuleResult("forward-values", "", "conv", "float64", "passed", examples=40, checked=31, declined=9,
    ...                declined_reasons={"conv_forward: stride > 1": 9})
    >>> coverage([r])
    '31 of 40; 9 declined: conv_forward: stride > 1'
    """
    checked = sum(r.checked for r in results)
    examples = sum(r.examples for r in results)
    declined = sum(r.declined for r in results)
    text = f"{checked} of {examples}"
    if declined:
        reasons: dict[str, int] = {}
        for r in results:
            for reason, n in r.declined_reasons.items():
                reasons[reason] = reasons.get(reason, 0) + n
        top = max(reasons, key=lambda k: reasons[k]) if reasons else ""
        text += f"; {declined} declined" + (f": {_short(top)}" if top else "") + (
            f" (+{len(reasons) - 1} more reasons)" if len(reasons) > 1 else "")
    return text


def progress_line(done: int, total: int, result: RuleResult) -> str:
    mark = STATUS_MARK.get(result.status, result.status)
    text = (f"[{done:>3}/{total}] {result.op:<8} {result.dtype:<7} {result.rule:<18} {mark}"
            f" ({coverage([result])} checked, {result.seconds:.2f} s)")
    if result.violation is not None:
        text += f": {result.violation.summary}"
    elif result.status == "not run":
        text += f": {result.note}"
    if result.replayed:
        text += " (replayed a saved failing example)"
    return text


def cell(results: list[RuleResult]) -> str:
    """One summary cell for a rule and operation over its dtypes.

    ``pass (31 of 40; 9 declined: ...)``, ``FAIL (float32)``, ``not covered (0 of 12; 12 declined: ...)``
    or ``not run (disabled after: ...)``: a row that checked nothing never reads "pass".
    """
    bad = [r.dtype for r in results if r.status in ("failed", "error")]
    if bad:
        return f"FAIL ({', '.join(bad)})"
    ran = [r for r in results if r.status == "passed"]
    if not ran:
        not_run = [r for r in results if r.status == "not run"]
        if not_run and len(not_run) == len(results):
            return f"not run ({_short(not_run[0].note, 90)})"
        return f"not covered ({coverage(results)})"
    text = f"pass ({coverage(results)})"
    others = [r.dtype for r in results if r.status != "passed"]
    return text + (f"; nothing checked in {', '.join(others)}" if others else "")


def failure_text(result: RuleResult) -> str:
    """The full, actionable description of one failed rule: every distinct finding, each with a reproduction."""
    lines = [f"FAILED {result.rule} [{result.op}, {result.dtype}]: {result.title}"]
    if not result.findings:
        lines.append(f"  the suite raised an unexpected error: {result.note}")
        return "\n".join(lines)
    if len(result.findings) > 1:
        lines.append(f"  {len(result.findings)} distinct findings")
    for number, finding in enumerate(result.findings, 1):
        v = finding.violation
        prefix = f"  finding {number}: " if len(result.findings) > 1 else "  "
        cites = cited(v.rule, result.op)
        links = anchor(cites[0]) + "".join(f", #{anchor(c).partition('#')[2]}" for c in cites[1:]) if cites else ""
        lines.append(f"{prefix}rule broken: {v.rule}" + (f" (spec {', '.join(cites)}: {links})" if cites else ""))
        lines.append(f"  {v.summary}")
        if v.case_text is not None:
            active = ", ".join(sorted(finding.active)) or "none"
            lines.append(f"  minimal case: {v.case_text[0]}  (values: {v.case_text[1]}; active: {active})")
        if result.replayed and number == 1:
            lines.append("  (found by replaying the failing example saved by an earlier run)")
        lines += [f"  {d}" for d in v.details]
        if v.snippet:
            lines.append("  reproduce with:")
            lines += [f"    {s}" for s in v.snippet]
    return "\n".join(lines)


def all_findings(report: RunReport) -> list[tuple[str, str, str, Finding]]:
    return [(r.rule, r.op, r.dtype, f) for r in report.failures for f in r.findings]


def start_here(report: RunReport, limit: int = 5) -> list[str]:
    """The "start here" list: likely root causes, the simplest minimal case first."""
    causes = root_causes(all_findings(report))
    lines = [f"{k}. {cause.headline()}" for k, cause in enumerate(causes[:limit], 1)]
    if len(causes) > limit:
        lines.append(f"   ... and {len(causes) - limit} more group(s) below")
    return lines


def summary_table(report: RunReport) -> list[list[str]]:
    """Rows of operation x rule -> pass / FAIL (dtypes) / n/c, with a header row."""
    rules: list[str] = []
    for r in report.results:
        if r.rule not in rules:
            rules.append(r.rule)
    ops = [op for op in report.ops if any(r.op == op for r in report.results)]
    rows = [["rule", *ops]]
    for rule in rules:
        row = [rule]
        for op in ops:
            mine = [r for r in report.results if r.rule == rule and r.op == op]
            row.append(cell(mine) if mine else "-")
        rows.append(row)
    return rows


def nothing_checked(report: RunReport) -> str:
    """One line saying why a run without failures still proves nothing."""
    examples = sum(r.examples for r in report.results)
    declined = sum(r.declined for r in report.results)
    if not report.results:
        return f"nothing was checked: no rule applies to {report.backend!r} with these operations and dtypes"
    return (f"nothing was checked: {report.backend!r} computed none of the {examples} examples "
            f"({declined} declined with spec.UnsupportedError, the rest never reached it or were not run)")


def _table_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_text(report: RunReport) -> str:
    out = []
    if report.failures and any(r.findings for r in report.failures):
        out += ["", "start here (findings grouped by operation and active parameters, simplest first):"]
        out += [f"  {line}" for line in start_here(report)]
    for result in report.failures:
        out += ["", failure_text(result)]
    out += ["", _table_text(summary_table(report))]
    if report.uncovered:
        out += ["", "not covered:"] + [f"  - {u}" for u in report.uncovered]
    if report.slow:
        out += ["", "slow calls (over the time limit, but they finished when retried alone with a longer one):"]
        out += [f"  - {s}" for s in report.slow]
    passed = sum(r.status == "passed" for r in report.results)
    uncovered = sum(r.status in ("not covered", "not run") for r in report.results)
    verdict = "CONFORMANT" if report.conformant else "NOT CONFORMANT"
    if report.shard is not None and not report.failures:
        verdict = f"NO FAILURES IN SHARD {report.shard} (convspec merge gives the verdict)"
    out += ["", f"{verdict}: {report.backend}: {passed} passed, {len(report.failures)} failed"
                + (f", {uncovered} not covered or not run" if uncovered else "")
                + f" ({report.checked} of {sum(r.examples for r in report.results)} examples checked, "
                f"{report.seconds:.1f} s" + (", stopped at the first failure" if report.stopped_early else "") + ")"]
    if report.compiles_per_shape:
        first = sum(r.first_call_seconds for r in report.results)
        out.append(f"compiles per shape: shapes drawn from pools; {sum(r.first_calls for r in report.results)} calls of "
                   f"a new shape signature took {first:.1f} s (compilation included), the checks {report.seconds - first:.1f} s")
    return "\n".join(out)


def to_dict(report: RunReport, *, timings: bool = True) -> dict[str, Any]:
    """The report as plain data; ``timings=False`` drops what varies between identical runs."""
    def result(r: RuleResult) -> dict[str, Any]:
        item: dict[str, Any] = {"rule": r.rule, "title": r.title, "op": r.op, "dtype": r.dtype, "status": r.status,
                                "examples": r.examples, "checked": r.checked, "declined": r.declined,
                                "declined_reasons": r.declined_reasons, "coverage": cell([r]), "note": r.note,
                                "replayed": r.replayed}
        if timings:
            item["seconds"] = round(r.seconds, 4)
            item["first_call_seconds"], item["first_calls"] = round(r.first_call_seconds, 4), r.first_calls
        findings = [{
            "rule": f.violation.rule, "kind": f.violation.kind, "summary": f.violation.summary,
            "details": f.violation.details, "snippet": "\n".join(f.violation.snippet),
            "problem": f.violation.case_text[0] if f.violation.case_text else None,
            "values": f.violation.case_text[1] if f.violation.case_text else None,
            "active": sorted(f.active), "failing_call": f.function,
        } for f in r.findings]
        if findings:
            item["violation"] = findings[0]
            item["findings"] = findings
        return item

    data: dict[str, Any] = {
        "backend": report.backend, "target": report.target, "profile": report.profile, "seed": report.seed,
        "ops": report.ops, "dtypes": report.dtypes, "conformant": report.conformant,
        "stopped_early": report.stopped_early, "shard": report.shard, "versions": report.versions,
        "uncovered": report.uncovered, "compiles_per_shape": report.compiles_per_shape,
        "checked": report.checked, "summary": summary_table(report),
        "start_here": start_here(report), "results": [result(r) for r in report.results],
    }
    if timings:
        data["seconds"] = round(report.seconds, 3)
        data["slow"] = report.slow
    return data


def to_json(report: RunReport) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"


def to_markdown(report: RunReport) -> str:
    rows = summary_table(report)
    notes: dict[tuple[str, str], str] = {}
    for r in report.failures:
        reason = r.violation.summary if r.violation else (r.note.splitlines() or [""])[0]
        if len(r.findings) > 1:
            reason += f" (+{len(r.findings) - 1} more)"
        notes.setdefault((r.rule, r.op), markdown_cell(reason))
    lines = [f"# convspec check {report.backend}", "",
             f"Profile `{report.profile}`, seed {report.seed}; versions: "
             + ", ".join(f"{k} {v}" for k, v in report.versions.items()), ""]
    if any(r.findings for r in report.failures):
        lines += ["Start here (findings grouped by operation and active parameters, simplest first):", ""]
        lines += [markdown_cell(line) for line in start_here(report)] + [""]
    lines += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    for row in rows[1:]:
        cells = [row[0]] + [
            cell + (f": {notes[(row[0], op)]}" if cell.startswith("FAIL") and (row[0], op) in notes else "")
            for op, cell in zip(rows[0][1:], row[1:])
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if report.uncovered:
        lines += ["", "Not covered:", ""] + [f"- {markdown_cell(u)}" for u in report.uncovered]
    if report.slow:
        lines += ["", "Slow calls (over the time limit, finished when retried with a longer one):", ""]
        lines += [f"- {markdown_cell(s)}" for s in report.slow]
    lines += ["", f"**{'Conformant' if report.conformant else 'Not conformant'}** "
                  f"({report.checked} of {sum(r.examples for r in report.results)} examples checked)"]
    for r in report.failures:
        lines += ["", "```text", failure_text(r), "```"]
    return "\n".join(lines) + "\n"


def markdown_cell(text: str) -> str:
    """Text safe inside a Markdown table cell or list line: one line, pipes escaped.

    >>> markdown_cell("raised ValueError: bad\\nsecond line | here")
    'raised ValueError: bad second line \\\\| here'
    """
    return " ".join(text.split()).replace("|", "\\|")


def to_junit(report: RunReport) -> str:
    suite = ET.Element("testsuite", name=f"convspec.{report.backend}", tests=str(len(report.results)),
                       failures=str(sum(r.status == "failed" for r in report.results)),
                       errors=str(sum(r.status == "error" for r in report.results)),
                       skipped=str(sum(r.status in ("not covered", "not run") for r in report.results)),
                       time=f"{report.seconds:.3f}")
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"convspec.{r.op}", name=f"{r.rule}[{r.dtype}]",
                             time=f"{r.seconds:.3f}")
        properties = ET.SubElement(case, "properties")
        for key, value in (("checked", r.checked), ("examples", r.examples), ("declined", r.declined),
                           ("coverage", cell([r]))):
            ET.SubElement(properties, "property", name=key, value=str(value))
        if r.status == "passed":
            ET.SubElement(case, "system-out").text = f"pass ({coverage([r])})"
        if r.status == "failed":
            ET.SubElement(case, "failure", message=r.violation.summary if r.violation else "").text = failure_text(r)
        elif r.status == "error":
            ET.SubElement(case, "error", message=r.note.splitlines()[0] if r.note else "").text = r.note
        elif r.status in ("not covered", "not run"):
            ET.SubElement(case, "skipped", message=f"{r.status}: {cell([r])}")
    return ET.tostring(suite, encoding="unicode") + "\n"


WRITERS: dict[str, Callable[[RunReport], str]] = {".json": to_json, ".md": to_markdown, ".xml": to_junit}


def writer_for(path: str) -> Callable[[RunReport], str] | None:
    return WRITERS.get(Path(path).suffix.lower())


def report_path_problem(path: str) -> str | None:
    """Why a report cannot be written to ``path`` (checked before the run), or None."""
    if writer_for(path) is None:
        return "use a .json, .md or .xml file name"
    target = Path(path)
    if target.is_dir():
        return "is a directory"
    if target.exists() and not os.access(target, os.W_OK):
        return "exists and is not writable"
    parent = target.parent
    while not parent.exists():  # the folders to create: the first existing one must be writable
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write in {parent}"
    return None


def write_report(report: RunReport, path: str) -> None:
    writer = writer_for(path)
    if writer is None:
        raise ValueError(f"no report format for {path!r}: use .json, .md or .xml")
    write_atomically(path, writer(report))

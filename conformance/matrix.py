"""``convspec matrix``: the conformance matrix of several backends, built from their JSON run reports.

    convspec matrix torch jax tensorflow onnxruntime --profile ci --out docs/conformance

runs ``convspec check`` on each backend (each in its own worker process),
writes each backend's report to ``OUT/<backend>.json`` and ``OUT/<backend>.md``,
and composes ``OUT/matrix.md`` -- framework x operation x rule -> pass / FAIL:
reason / not covered / not supported -- from the JSON reports (read back with
:func:`conformance.merge.load_report`, so the matrix is exactly what they hold).
``--from-reports`` composes it from the JSON reports already in ``OUT``
without running anything (and renders their Markdown copies): the reports of
``convspec check NAME --profile P --seed S --dtypes D --timeout 60 --no-database
--report OUT/NAME.json`` are the ones this command writes, so the backends may
also be checked side by side. ``--readme README.md`` also replaces the text between
``<!-- matrix:start -->`` and ``<!-- matrix:end -->`` there.

A cell says how much of the row the backend really computed: ``pass (60%; 40%
declined)`` when it declined 40% of the examples (its ``supports`` or
``spec.UnsupportedError``), so a backend that declines half its cases does not
read like full coverage; the reasons are listed under each operation's table.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from conformance.loader import BackendLoadError
from conformance.merge import MergeError, load_report
from conformance.report import markdown_cell, to_json, to_markdown
from conformance.results import RuleResult, RunReport
from conformance.rules import RULES, RULES_BY_ID
from conformance.runner import PROFILES, open_backend, run
from conformance.textio import parse_choices, write_atomically
from spec import DTYPES, OPERATIONS

START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a whole percentage that never rounds a nonzero part to 0 or a partial one to 100.

    >>> percent(1, 400), percent(399, 400), percent(1, 3)
    ('<1%', '>99%', '33%')
    """
    if whole <= 0:
        return "0%"
    value = 100 * part / whole
    if 0 < value < 1:
        return "<1%"
    if 99 < value < 100:
        return ">99%"
    return f"{round(value)}%"


def share(results: Sequence[RuleResult]) -> str:
    """The checked and declined shares of a row's examples: ``""`` when all were checked, else ``" (60%; 40% declined)"``.

    >>> r = RuleResult("forward-values", "", "conv", "float64", "passed", examples=40, checked=30, declined=10)
    >>> share([r])
    ' (75%; 25% declined)'
    """
    examples = sum(r.examples for r in results)
    checked = sum(r.checked for r in results)
    declined = sum(r.declined for r in results)
    if examples == 0 or checked == examples:
        return ""
    parts = [f"{percent(checked, examples)} checked" if not declined else percent(checked, examples)]
    if declined:
        parts.append(f"{percent(declined, examples)} declined")
    return f" ({'; '.join(parts)})"


def matrix_cell(results: Sequence[RuleResult]) -> str:
    """One cell: a rule on one operation over the run's dtypes, from that backend's results.

    ``pass``, ``pass (60%; 40% declined)``, ``FAIL (float32): reason``, ``not covered (all declined)``,
    ``not run (reason)``: a row the backend computed only in part never reads as a plain "pass".
    """
    failed = [r for r in results if r.status in ("failed", "error")]
    if failed:
        first = failed[0]
        reason = first.violation.summary if first.violation is not None else (first.note.splitlines() or [""])[0]
        more = sum(len(r.findings) for r in failed) - 1
        text = f"FAIL ({', '.join(r.dtype for r in failed)}): {reason}" + (f" (+{more} more)" if more > 0 else "")
        return markdown_cell(text)
    passed = [r for r in results if r.status == "passed"]
    if passed:
        others = [r.dtype for r in results if r.status != "passed"]
        return markdown_cell("pass" + share(results) + (f"; nothing checked in {', '.join(others)}" if others else ""))
    not_run = [r for r in results if r.status == "not run"]
    if not_run and len(not_run) == len(results):
        note = not_run[0].note.splitlines()[0] if not_run[0].note else ""
        return markdown_cell(f"not run ({note[:87] + '...' if len(note) > 90 else note})")
    if results and all(r.declined == r.examples and r.examples > 0 for r in results):
        return "not covered (all declined)"
    return "not covered" + share(results)


def _declined_reasons(results: Sequence[RuleResult]) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for r in results:
        reasons.update(r.declined_reasons)
        unexplained = r.declined - sum(r.declined_reasons.values())
        if unexplained > 0:
            reasons["(no reason given)"] += unexplained
    return reasons


def compose(reports: Mapping[str, RunReport], command: str) -> str:
    """The matrix document from each backend's run report (as read from its JSON file)."""
    order = {rule.id: k for k, rule in enumerate(RULES)}
    lines = [f"Generated by `{command}`.", ""]
    for name, report in reports.items():
        versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
        examples = sum(r.examples for r in report.results)
        declined = sum(r.declined for r in report.results)
        lines.append(f"- **{name}**: {versions}" + (f"; declined {percent(declined, examples)} of its {examples} examples"
                                                       if declined else ""))
    for op in OPERATIONS:
        mine = {name: [r for r in report.results if r.op == op] for name, report in reports.items()}
        if not any(mine.values()):
            continue
        rules = sorted({r.rule for results in mine.values() for r in results}, key=lambda k: (order.get(k, len(order)), k))
        lines += ["", f"**{op}**", "", "| rule | " + " | ".join(reports) + " |", "|---|" + "---|" * len(reports)]
        for rule in rules:
            applies = rule in RULES_BY_ID and op in RULES_BY_ID[rule].ops
            row = []
            for results in mine.values():
                found = [r for r in results if r.rule == rule]
                # No result: the backend's functions or capabilities gave the rule no run.
                row.append(matrix_cell(found) if found else ("not supported" if applies else "-"))
            if any(c != "-" for c in row):
                lines.append(f"| {rule} | " + " | ".join(row) + " |")
        reasons = {name: _declined_reasons(results) for name, results in mine.items()}
        if any(reasons.values()):
            lines += ["", f"Declined {op} examples (the backend's `supports` or `spec.UnsupportedError`), by reason:", ""]
            for name, counted in reasons.items():
                if counted:
                    listed = "; ".join(f"{reason} ({n})" for reason, n in counted.most_common(4))
                    extra = len(counted) - 4
                    more = f"; {extra} more reason{'s' if extra > 1 else ''}" if extra > 0 else ""
                    lines.append(f"- {name}: {markdown_cell(listed + more)}")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backends", nargs="+", help="backends to check, e.g. torch jax tensorflow onnxruntime")
    parser.add_argument("--profile", choices=tuple(PROFILES), default="ci")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtypes", default="float64,float32", help="comma-separated dtypes (default float64,float32)")
    parser.add_argument("--out", default="docs/conformance", help="folder for the reports and matrix.md")
    parser.add_argument("--readme", help="also update the marked matrix section of this file")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-call timeout in seconds")
    parser.add_argument("--from-reports", action="store_true",
                        help="run nothing: compose the matrix (and the Markdown copies) from the JSON reports OUT/<backend>.json "
                        "of an earlier run")


def run_from_args(args: argparse.Namespace) -> int:
    try:
        dtypes = parse_choices(args.dtypes, DTYPES)
    except ValueError as exc:
        print(f"convspec: error: --dtypes {args.dtypes!r}: {exc}", file=sys.stderr)
        return 2
    readme = Path(args.readme).read_text() if args.readme else None
    if readme is not None and (START not in readme or END not in readme):  # before minutes of checks, not after
        print(f"convspec: error: {args.readme} has no {START} ... {END} section", file=sys.stderr)
        return 2
    out = Path(args.out)
    reports: dict[str, RunReport] = {}
    for name in args.backends:
        path = out / f"{name}.json"
        if not args.from_reports:
            try:
                backend, caller, _ = open_backend(name, argparse.Namespace(isolation="process", timeout=args.timeout))
            except BackendLoadError as exc:
                print(f"convspec: error: {exc}", file=sys.stderr)
                return 2
            print(f"checking {name} ...", flush=True)
            report = run(backend, dtypes=dtypes, profile=args.profile, seed=args.seed, caller=caller)
            write_atomically(str(path), to_json(report))
            write_atomically(str(out / f"{name}.md"), to_markdown(report))
            print(f"  {name}: {'conformant' if report.conformant else 'NOT conformant'} ({report.seconds:.0f} s)")
        try:
            reports[name] = load_report(str(path))  # the matrix holds what the JSON report holds, nothing else
        except MergeError as exc:
            print(f"convspec: error: {exc}", file=sys.stderr)
            return 2
        report = reports[name]
        if (report.profile, report.seed, list(report.dtypes)) != (args.profile, args.seed, dtypes):
            print(f"convspec: error: {path} is from a run with --profile {report.profile} --seed {report.seed} "
                  f"--dtypes {','.join(report.dtypes)}, not the one asked for", file=sys.stderr)
            return 2
        if args.from_reports:  # e.g. reports of `convspec check NAME --report OUT/NAME.json` run side by side
            write_atomically(out / f"{name}.md", to_markdown(report))
    argv = [a for a in sys.argv[2:] if a != "--from-reports"]  # the command that makes these reports
    command = "convspec matrix " + " ".join(shlex.quote(a) for a in argv) if sys.argv[1:2] == ["matrix"] else (
        f"convspec matrix {' '.join(args.backends)} --profile {args.profile} --seed {args.seed} --dtypes {args.dtypes}")
    matrix = compose(reports, command)
    write_atomically(out / "matrix.md", matrix)
    print(f"matrix written to {out / 'matrix.md'}")
    if args.readme and readme is not None:
        head, rest = readme.split(START, 1)
        _, tail = rest.split(END, 1)
        write_atomically(args.readme, f"{head}{START}\n{matrix}{END}{tail}")
    return 0

"""Running the rules against a backend: planning, Hypothesis execution, results.

The plan is operation x dtype x rule, bounded by what the backend has and
declares; each entry runs as one Hypothesis search with a seed derived from
``--seed``, so a run is reproducible. A failure is shrunk by Hypothesis to a
minimal case before it is reported.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.database import ExampleDatabase

import spec
from conformance.compare import Violation
from conformance.context import Context, Unsupported
from conformance.database import example_key, use_key
from conformance.findings import EXTRA_SEARCH_TIME, MAX_FINDINGS, Finding, Signature, signature
from conformance.invoke import Caller, InProcessCaller
from conformance.isolation import DEFAULT_MEMORY_LIMIT_MIB, DEFAULT_TIMEOUT, SubprocessCaller, importable_in_a_worker
from conformance.loader import BackendLoadError, LoadedBackend, load_backend
from conformance.rules import RULES, Rule
from conformance.shard import Shard
from conformance.snippets import RecordedCall, RecordingCaller, reproduction
from spec import OPERATIONS, OpName

#: Base number of Hypothesis examples per (rule, operation, dtype), scaled by each rule's weight.
PROFILES: dict[str, int] = {"quick": 4, "ci": 20, "thorough": 300}


@dataclass(frozen=True)
class PlanItem:
    rule: Rule
    op: OpName
    dtype: str
    examples: int


@dataclass(frozen=True)
class NotPlanned:
    """A rule x operation (x dtype, when it is the dtype that is missing) the plan leaves out, and why.

    ``rule`` is None when the whole operation is left out (the backend lacks its forward function).
    """

    rule: str | None
    op: OpName
    dtype: str | None
    reason: str


@dataclass
class RuleResult:
    rule: str
    title: str
    op: str
    dtype: str
    #: "passed", "failed", "not covered" or "error" (the suite itself failed: a bug to report).
    status: str
    examples: int = 0
    seconds: float = 0.0
    #: Every distinct violation found, the first search's first.
    findings: list[Finding] = field(default_factory=list)
    note: str = ""
    #: The failure was found by replaying an example saved by an earlier run (see conformance.database).
    replayed: bool = False

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

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if r.status in ("failed", "error")]

    @property
    def conformant(self) -> bool:
        return not self.failures and any(r.status == "passed" for r in self.results)


def make_plan(backend: LoadedBackend, ops: Sequence[OpName], dtypes: Sequence[str], profile: str,
              rules: Sequence[Rule] = RULES, not_planned: list[NotPlanned] | None = None,
              ) -> tuple[list[PlanItem], list[str]]:
    """What to run, and what is not covered (with the reason).

    ``not_planned``, when given, receives each rule x operation (x dtype) left
    out, for callers that show them one by one (the pytest plugin's skips).
    """
    skipped: list[NotPlanned] = [] if not_planned is None else not_planned
    caps = backend.capabilities
    base = PROFILES[profile]
    items: list[PlanItem] = []
    uncovered = [f"capability not declared: {u}" for u in caps.uncovered()]
    usable = [d for d in dtypes if d in caps.dtypes]  # caps.uncovered() already names the missing dtypes
    for op in ops:
        forward, backward = OPERATIONS[op]
        if forward not in backend.functions:
            uncovered.append(f"{op}: backend has no {forward}" + (" (and no backward)" if backward not in backend.functions
                                                                   else ""))
            skipped.append(NotPlanned(None, op, None, f"backend has no {forward}"))
            continue
        if backward not in backend.functions:
            uncovered.append(f"{op}: backend has no {backward}; gradient rules not run")
        for rule in rules:
            if op not in rule.ops:
                continue
            missing = [n for n in rule.needs if {"forward": forward, "backward": backward}[n] not in backend.functions]
            if missing:
                skipped.append(NotPlanned(rule.id, op, None, f"backend has no {backward}"))
                continue
            reason = rule.applies(op, caps)
            if reason:
                uncovered.append(f"{op} / {rule.id}: {reason}")
                skipped.append(NotPlanned(rule.id, op, None, reason))
                continue
            for dtype in (usable if rule.per_dtype else usable[:1]):
                items.append(PlanItem(rule, op, dtype, max(1, round(base * rule.weight))))
            if rule.per_dtype:
                skipped += [NotPlanned(rule.id, op, d, f"dtype {d} not declared in the backend's capabilities")
                            for d in dtypes if d not in caps.dtypes]
    return items, uncovered


def _seed_for(seed: int, item: PlanItem) -> int:
    return zlib.crc32(f"{seed}/{item.rule.id}/{item.op}/{item.dtype}".encode())


def _find_violation(exc: BaseException) -> Violation | None:
    if isinstance(exc, Violation):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _find_violation(inner)
        if found is not None:
            return found
    return None


def run_item(ctx: Context, item: PlanItem, seed: int, database: ExampleDatabase | None = None, *,
             max_findings: int = MAX_FINDINGS) -> RuleResult:
    """Run one rule on one operation and dtype as Hypothesis searches.

    With a ``database``, failing examples are saved under a key of backend,
    rule, operation and dtype, and those saved by earlier runs are replayed
    before anything new is generated (see :mod:`conformance.database`).

    After a violation the search runs again (another seed) with the findings so
    far excluded, so that each distinct violation is reported, up to
    ``max_findings``. The further searches share a time budget of
    :data:`~conformance.findings.EXTRA_SEARCH_TIME` times the first search
    (at least 1 s); past it, no new example is run, but a violation already
    found is still shrunk.
    """
    result = RuleResult(item.rule.id, item.rule.title, item.op, item.dtype, "passed")
    ctx.new_search()
    calls = [0]
    first_failure: list[int] = []
    recorder = ctx.caller if isinstance(ctx.caller, RecordingCaller) else None
    seen: list[Signature] = []
    last: dict[str, Any] = {}
    search: dict[str, Any] = {"deadline": math.inf, "failing": False}

    def example(drawn: Any) -> None:
        if not search["failing"] and time.perf_counter() > search["deadline"]:
            return  # out of time for further findings: the remaining examples are not run
        calls[0] += 1
        if recorder is not None:
            recorder.begin_example()
        try:
            item.rule.check(ctx, drawn)
        except Unsupported as exc:
            ctx.unsupported.append(str(exc))
        except Violation as violation:
            if any(s.covers(violation) for s in seen):
                return  # a finding already reported: look for a different one
            last["violation"], last["calls"] = violation, list(recorder.calls) if recorder is not None else []
            search["failing"] = True
            first_failure[:] = first_failure or [calls[0]]
            raise
        except Exception:
            first_failure[:] = first_failure or [calls[0]]
            raise

    key = example_key(ctx.backend.target, item.rule.id, item.op, item.dtype)
    saved = len(list(database.fetch(key))) if database is not None else 0
    strategy = item.rule.strategy(item.op, ctx.backend.capabilities, item.dtype)
    start = time.perf_counter()
    for attempt in range(max(1, max_findings)):
        search["failing"] = False
        # @seed turns the database off, so the settings that name it are applied after the seed. Only the first
        # search uses it: in the others the saved example is an excluded finding, and would be dropped as fixed.
        db = database if attempt == 0 else None
        test = settings(
            max_examples=item.examples, deadline=None, database=db, derandomize=False,
            suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, print_blob=False,
            phases=((Phase.explicit, Phase.reuse) if db is not None else (Phase.explicit,))
            + (Phase.generate, Phase.shrink),
            report_multiple_bugs=False,
        )(hypothesis.seed(_seed_for(seed, item) + attempt)(given(strategy)(example)))
        if db is not None:
            use_key(test, key)
        try:
            # NaN and infinite inputs are generated on purpose: NumPy's warnings about them are noise here.
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                test()
        except Exception as exc:  # a Violation is the expected failure; anything else is reported as an error
            violation = _find_violation(exc)
            if violation is None:
                if not result.findings:
                    result.status = "error"
                    result.note = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    result.note += "\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
                break
            result.status = "failed"
            result.findings.append(_finding(ctx, item, violation, last))
            seen.append(signature(violation))
            if attempt == 0:
                first = time.perf_counter() - start
                search["deadline"] = time.perf_counter() + max(1.0, EXTRA_SEARCH_TIME * first)
            if time.perf_counter() > search["deadline"]:
                break
            continue
        break
    result.seconds = time.perf_counter() - start
    result.examples = calls[0]
    result.replayed = result.status == "failed" and bool(first_failure) and first_failure[0] <= saved
    if result.status == "passed" and ctx.unsupported:
        if len(ctx.unsupported) >= calls[0]:
            result.status = "not covered"
        result.note = f"{len(ctx.unsupported)} of {calls[0]} examples declined by the backend: {ctx.unsupported[0]}"
    return result


def _finding(ctx: Context, item: PlanItem, violation: Violation, last: dict[str, Any]) -> Finding:
    """The finding of a search's final violation, with a reproduction generated from its recorded calls."""
    if last.get("violation") is not violation or not isinstance(ctx.caller, RecordingCaller):
        return Finding(violation)
    recorder = ctx.caller
    recorded: list[RecordedCall] = last["calls"]
    skipped = [c for c in recorded if c.outcome.skipped is not None]
    if skipped and skipped[0].function in recorder.last_failure:  # replay the call that really crashed or hung
        recorded = [recorder.last_failure[skipped[0].function]]
    header = [f"convspec {violation.rule} [{item.op}, {item.dtype}]: {_one_line(violation.summary)}"]
    if violation.case is not None:
        header.append(f"minimal case: {violation.case.problem.describe()}")
    header.append("run from the directory the check ran in: exits 1 while the backend breaks the spec, 0 once fixed")
    try:
        lines, bad, problem = reproduction(recorded, ctx.backend.import_line,
                                           accuracy=ctx.backend.capabilities.accuracy, header=header,
                                           history=recorder.first)
    except Exception as exc:  # never lose a finding to its reproduction
        violation.details.append(f"(no reproduction could be generated: {type(exc).__name__}: {exc})")
        return Finding(violation)
    violation.snippet = lines
    return Finding(violation, bad.function if bad is not None else None, problem)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _versions(backend: LoadedBackend) -> dict[str, str]:
    import scipy

    versions = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                "hypothesis": hypothesis.__version__}
    for attr in ("VERSION", "__version__"):
        value = getattr(backend.obj, attr, None)
        if isinstance(value, str):
            versions[backend.name] = value
            break
    return versions


def run(backend: LoadedBackend, *, ops: Sequence[OpName] = tuple(OPERATIONS), dtypes: Sequence[str] = spec.DTYPES,
        profile: str = "ci", seed: int = 0, fail_fast: bool = False, caller: Caller | None = None,
        rules: Sequence[Rule] = RULES, progress: Callable[[int, int, RuleResult], None] | None = None,
        shard: Shard | None = None, database: ExampleDatabase | None = None,
        max_findings: int = MAX_FINDINGS) -> RunReport:
    """Check ``backend`` and return the full report (the CLI, the pytest plugin and tests all call this).

    ``shard`` runs only that part of the plan (:mod:`conformance.shard`); ``database`` saves and replays
    failing examples (:mod:`conformance.database`); ``max_findings`` bounds the distinct violations reported
    per rule x operation x dtype (1 with ``fail_fast``).
    """
    items, uncovered = make_plan(backend, ops, dtypes, profile, rules)
    if shard is not None:
        items = shard.select(items)
    report = RunReport(backend.name, backend.target, profile, seed, list(ops), list(dtypes), uncovered=uncovered,
                       versions=_versions(backend), shard=str(shard) if shard is not None else None)
    ctx = Context(backend, RecordingCaller(caller or InProcessCaller(backend.functions)))
    start = time.perf_counter()
    try:
        for index, item in enumerate(items):
            result = run_item(ctx, item, seed, database, max_findings=1 if fail_fast else max_findings)
            report.results.append(result)
            if progress is not None:
                progress(index + 1, len(items), result)
            if fail_fast and result.status in ("failed", "error"):
                report.stopped_early = True
                break
    finally:
        ctx.caller.close()
    report.seconds = time.perf_counter() - start
    return report


# --------------------------------------------------------------------------- command line

def _csv(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(bad) or repr(text)}; choose from {', '.join(allowed)}")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backend", help="reference, torch, jax, tensorflow, onnxruntime, package.module[:attribute], "
                        "or a name registered under the entry-point group convspec.backends")
    parser.add_argument("--profile", choices=tuple(PROFILES), default="ci",
                        help="quick (a verdict in seconds), ci (about a minute), thorough (as long as it needs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every Hypothesis search (default 0)")
    parser.add_argument("--ops", type=_csv(tuple(OPERATIONS), "operation"), default=list(OPERATIONS),
                        help="comma-separated operations (default: all)")
    parser.add_argument("--dtypes", type=_csv(spec.DTYPES, "dtype"), default=list(spec.DTYPES),
                        help="comma-separated dtypes (default: float64,float32,float16)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    parser.add_argument("--report", metavar="FILE", help="also write the report: .json, .md or .xml (JUnit)")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks of loading errors")
    parser.add_argument("--isolation", choices=("process", "none"), default="process",
                        help="process (default): run the backend in a worker process, so a crash, hang or runaway "
                        "allocation becomes a finding; none: call it in this process (faster, unprotected)")
    parser.add_argument("--timeout", type=_number(float, "seconds"), default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit of one backend call with --isolation process (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--memory-limit", type=_number(int, "MiB", least=64), default=DEFAULT_MEMORY_LIMIT_MIB,
                        metavar="MIB", help="memory limit of the worker process with --isolation process "
                        f"(default {DEFAULT_MEMORY_LIMIT_MIB})")
    add_scale_out_arguments(parser)


def add_scale_out_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``convspec check`` for saved examples, shards and Dask (conformance.database, .shard, .distributed)."""
    from conformance.database import DEFAULT_DIRECTORY
    from conformance.shard import shard_argument

    parser.add_argument("--database", metavar="DIR", default=None,
                        help=f"keep failing examples in DIR and replay them first (default {DEFAULT_DIRECTORY}, "
                        "or $CONVSPEC_DATABASE)")
    parser.add_argument("--no-database", action="store_true", help="neither replay nor save failing examples")
    parser.add_argument("--shard", type=shard_argument, metavar="K/N", default=None,
                        help="run only shard K of N of the plan; combine the JSON reports with convspec merge")
    parser.add_argument("--dask", metavar="ADDRESS", default=None,
                        help="run the shards as tasks on the Dask scheduler at ADDRESS (pip install 'convspec[dask]')")
    parser.add_argument("--dask-tasks", type=_number(int, "tasks"), default=None, metavar="N",
                        help="with --dask: number of shards (default: the cluster's worker threads)")


def _number(kind: Callable[[str], float], unit: str, *, least: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number of ``unit``, above 0 or at least ``least``."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not math.isfinite(value) or (value < least if least is not None else value <= 0):
            bound = f"at least {least:g}" if least is not None else "above 0"
            raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number of {unit}, {bound}")
        return value

    return parse


def make_caller(backend: LoadedBackend, args: argparse.Namespace) -> tuple[Caller, str]:
    """The caller the command line asked for, and a few words saying which it is."""
    if getattr(args, "isolation", "process") == "none":
        return InProcessCaller(backend.functions), "in-process (no isolation)"
    if not importable_in_a_worker(backend.target):
        return InProcessCaller(backend.functions), "in-process (the backend's module was made in memory)"
    timeout = float(getattr(args, "timeout", DEFAULT_TIMEOUT))
    memory = int(getattr(args, "memory_limit", DEFAULT_MEMORY_LIMIT_MIB))
    return (SubprocessCaller(backend.target, timeout=timeout, memory_limit_mib=memory),
            f"worker process (timeout {timeout:g} s, memory limit {memory} MiB)")


def run_from_args(args: argparse.Namespace) -> int:
    import conformance.report as reporting

    if args.report and not reporting.writer_for(args.report):
        print(f"convspec: error: --report {args.report!r}: use a .json, .md or .xml file name", file=sys.stderr)
        return 2
    from conformance.database import default_directory, open_database
    from conformance.progress import RunProgress

    if args.dask and args.shard:
        print("convspec: error: --dask runs every shard itself; leave out --shard", file=sys.stderr)
        return 2
    try:
        database = None if args.no_database else open_database(args.database or default_directory())
    except ValueError as exc:
        print(f"convspec: error: {exc}", file=sys.stderr)
        return 2
    backend = load_backend(args.backend)
    if args.dask:
        from conformance.distributed import DaskError, run_on_dask

        try:
            report = run_on_dask(backend, args)
        except DaskError as exc:
            print(f"convspec: error: {exc}", file=sys.stderr)
            return 2
    else:
        caller, isolation = make_caller(backend, args)
        print(f"convspec check {backend.name} ({backend.target}): profile {args.profile}, seed {args.seed}, "
              f"ops {','.join(args.ops)}, dtypes {','.join(args.dtypes)}"
              + (f", shard {args.shard}" if args.shard else "") + f"; {isolation}", flush=True)
        with RunProgress() as progress:
            report = run(backend, ops=args.ops, dtypes=args.dtypes, profile=args.profile, seed=args.seed,
                         fail_fast=args.fail_fast, caller=caller, progress=progress, shard=args.shard,
                         database=database)
    print(reporting.render_text(report))
    if args.report:
        reporting.write_report(report, args.report)
        print(f"report written to {args.report}")
    if report.shard is not None:  # a shard has no verdict of its own: it fails only on a failure
        return 1 if report.failures else 0
    return 0 if report.conformant else 1


__all__ = ["PROFILES", "BackendLoadError", "RuleResult", "RunReport", "make_plan", "run", "run_item"]

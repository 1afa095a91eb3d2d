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

import spec
from conformance.compare import Violation
from conformance.context import Context, Unsupported
from conformance.invoke import Caller, InProcessCaller
from conformance.isolation import DEFAULT_MEMORY_LIMIT_MIB, DEFAULT_TIMEOUT, SubprocessCaller, importable_in_a_worker
from conformance.loader import BackendLoadError, LoadedBackend, load_backend
from conformance.rules import RULES, Rule
from spec import OPERATIONS, OpName

#: Base number of Hypothesis examples per (rule, operation, dtype), scaled by each rule's weight.
PROFILES: dict[str, int] = {"quick": 4, "ci": 20, "thorough": 300}


@dataclass(frozen=True)
class PlanItem:
    rule: Rule
    op: OpName
    dtype: str
    examples: int


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
    violation: Violation | None = None
    note: str = ""


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

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if r.status in ("failed", "error")]

    @property
    def conformant(self) -> bool:
        return not self.failures and any(r.status == "passed" for r in self.results)


def make_plan(backend: LoadedBackend, ops: Sequence[OpName], dtypes: Sequence[str], profile: str,
              rules: Sequence[Rule] = RULES) -> tuple[list[PlanItem], list[str]]:
    """What to run, and what is not covered (with the reason)."""
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
            continue
        if backward not in backend.functions:
            uncovered.append(f"{op}: backend has no {backward}; gradient rules not run")
        for rule in rules:
            if op not in rule.ops:
                continue
            missing = [n for n in rule.needs if {"forward": forward, "backward": backward}[n] not in backend.functions]
            if missing:
                continue
            reason = rule.applies(op, caps)
            if reason:
                uncovered.append(f"{op} / {rule.id}: {reason}")
                continue
            for dtype in (usable if rule.per_dtype else usable[:1]):
                items.append(PlanItem(rule, op, dtype, max(1, round(base * rule.weight))))
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


def run_item(ctx: Context, item: PlanItem, seed: int) -> RuleResult:
    """Run one rule on one operation and dtype as a Hypothesis search."""
    result = RuleResult(item.rule.id, item.rule.title, item.op, item.dtype, "passed")
    ctx.new_search()
    calls = [0]

    def example(drawn: Any) -> None:
        calls[0] += 1
        try:
            item.rule.check(ctx, drawn)
        except Unsupported as exc:
            ctx.unsupported.append(str(exc))

    test = settings(
        max_examples=item.examples, deadline=None, database=None, derandomize=False,
        suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink), report_multiple_bugs=False,
    )(given(item.rule.strategy(item.op, ctx.backend.capabilities, item.dtype))(example))
    test = hypothesis.seed(_seed_for(seed, item))(test)
    start = time.perf_counter()
    try:
        # NaN and infinite inputs are generated on purpose: NumPy's warnings about them are noise here.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            test()
    except Exception as exc:  # a Violation is the expected failure; anything else is reported as an error
        violation = _find_violation(exc)
        if violation is not None:
            result.status, result.violation = "failed", violation
        else:
            result.status = "error"
            result.note = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            result.note += "\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
    result.seconds = time.perf_counter() - start
    result.examples = calls[0]
    if result.status == "passed" and ctx.unsupported:
        if len(ctx.unsupported) >= calls[0]:
            result.status = "not covered"
        result.note = f"{len(ctx.unsupported)} of {calls[0]} examples declined by the backend: {ctx.unsupported[0]}"
    return result


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
        rules: Sequence[Rule] = RULES, progress: Callable[[int, int, RuleResult], None] | None = None) -> RunReport:
    """Check ``backend`` and return the full report (the CLI, the pytest plugin and tests all call this)."""
    items, uncovered = make_plan(backend, ops, dtypes, profile, rules)
    report = RunReport(backend.name, backend.target, profile, seed, list(ops), list(dtypes), uncovered=uncovered,
                       versions=_versions(backend))
    ctx = Context(backend, caller or InProcessCaller(backend.functions))
    start = time.perf_counter()
    try:
        for index, item in enumerate(items):
            result = run_item(ctx, item, seed)
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
    backend = load_backend(args.backend)
    caller, isolation = make_caller(backend, args)
    print(f"convspec check {backend.name} ({backend.target}): profile {args.profile}, seed {args.seed}, "
          f"ops {','.join(args.ops)}, dtypes {','.join(args.dtypes)}; {isolation}", flush=True)

    def progress(done: int, total: int, result: RuleResult) -> None:
        print(reporting.progress_line(done, total, result), flush=True)

    report = run(backend, ops=args.ops, dtypes=args.dtypes, profile=args.profile, seed=args.seed,
                 fail_fast=args.fail_fast, caller=caller, progress=progress)
    print(reporting.render_text(report))
    if args.report:
        reporting.write_report(report, args.report)
        print(f"report written to {args.report}")
    return 0 if report.conformant else 1


__all__ = ["PROFILES", "BackendLoadError", "RuleResult", "RunReport", "make_plan", "run", "run_item"]

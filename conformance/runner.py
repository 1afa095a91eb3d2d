"""Running the rules against a backend: planning, Hypothesis execution, results.

The plan is operation x dtype x rule, bounded by what the backend has and
declares; each entry runs as one Hypothesis search with a seed derived from
``--seed``, so a run is reproducible. A failure is shrunk by Hypothesis to a
minimal case before it is reported.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import hypothesis
import hypothesis.errors
import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.database import ExampleDatabase

import spec
from conformance.cache import disable_cache
from conformance.compare import Unchecked, Violation
from conformance.context import Context, Disabled, Unsupported
from conformance.database import example_key, use_key
from conformance.findings import EXTRA_SEARCH_FRACTION, MAX_FINDINGS, Finding, Signature, signature
from conformance.invoke import Caller, InProcessCaller
from conformance.isolation import (
    DEFAULT_IMPORT_TIMEOUT,
    DEFAULT_MEMORY_LIMIT_MIB,
    DEFAULT_TIMEOUT,
    SubprocessCaller,
    importable_in_a_worker,
)
from conformance.loader import BackendLoadError, LoadedBackend, Target, load_backend, resolve_target
from conformance.results import RuleResult, RunReport
from conformance.rules import RULES, Rule
from conformance.shape_pool import POOL_SIZES, restore_pool_settings, use_pool_settings
from conformance.shard import Shard
from conformance.snippets import RecordedCall, RecordingCaller, reproduction
from conformance.strategies import Case, Problem
from conformance.textio import parse_choices
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
        forward, backward = OPERATIONS[op].forward, OPERATIONS[op].backward
        has_backward = backward is not None and backward in backend.functions
        if forward not in backend.functions:
            uncovered.append(f"{op}: backend has no {forward}" + (" (and no backward)" if backward is not None
                                                                   and not has_backward else ""))
            skipped.append(NotPlanned(None, op, None, f"backend has no {forward}"))
            continue
        if backward is not None and not has_backward:
            uncovered.append(f"{op}: backend has no {backward}; gradient rules not run")
        for rule in rules:
            if op not in rule.ops:
                continue
            if "backward" in rule.needs and not has_backward:
                skipped.append(NotPlanned(rule.id, op, None, f"backend has no {backward}" if backward is not None
                                          else f"{op} has no backward"))
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
    ``max_findings``. Each further search draws
    :data:`~conformance.findings.EXTRA_SEARCH_FRACTION` of the rule's example
    budget: a count, never a time, so the same seed gives the same findings
    whatever the machine's load.
    """
    result = RuleResult(item.rule.id, item.rule.title, item.op, item.dtype, "passed")
    ctx.new_search()
    calls = [0]
    first_failure: list[int] = []
    recorder = ctx.caller if isinstance(ctx.caller, RecordingCaller) else None
    seen: list[Signature] = []
    last: dict[str, Any] = {}
    rejected = [0]
    disabled: list[str] = []
    unchecked: list[str] = []

    def example(drawn: Any) -> None:
        calls[0] += 1
        ctx.withheld.clear()
        reason = _declined(ctx, item, drawn)
        if reason is not None:  # generate within what the backend implements: Hypothesis draws another case
            result.declined += 1
            ctx.declined[reason] += 1
            hypothesis.reject()
        if recorder is not None:
            recorder.begin_example()
        before = ctx.reached
        try:
            item.rule.check(ctx, drawn)
        except Unsupported as exc:
            ctx.unsupported.append(str(exc))
            result.declined += 1
            return
        except Disabled as exc:
            disabled.append(str(exc))
            return
        except Unchecked as exc:  # a bound too loose to tell a zero result apart: not covered, never passed
            unchecked.append(str(exc))
            return
        except Violation as violation:
            if any(s.covers(violation) for s in seen):
                return  # a finding already reported: look for a different one
            last["violation"], last["calls"] = violation, list(recorder.calls) if recorder is not None else []
            first_failure[:] = first_failure or [calls[0]]
            raise
        except Exception:
            first_failure[:] = first_failure or [calls[0]]
            raise
        if ctx.reached == before:  # it never reached the backend (a rule's early return): draw another instead
            rejected[0] += 1
            hypothesis.reject()
        result.checked += 1

    key = example_key(ctx.backend.target, item.rule.id, item.op, item.dtype)
    saved = len(list(database.fetch(key))) if database is not None else 0
    strategy = item.rule.strategy(item.op, ctx.backend.capabilities, item.dtype)
    start = time.perf_counter()
    for attempt in range(max(1, max_findings)):
        # @seed turns the database off, so the settings that name it are applied after the seed. Only the first
        # search uses it: in the others the saved example is an excluded finding, and would be dropped as fixed.
        db = database if attempt == 0 else None
        budget = item.examples if attempt == 0 else max(2, round(item.examples * EXTRA_SEARCH_FRACTION))
        test = settings(
            max_examples=budget, deadline=None, database=db, derandomize=False,
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
        except hypothesis.errors.Unsatisfiable:  # no example reached the backend: nothing checked, reported below
            break
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
            continue
        break
    result.seconds = time.perf_counter() - start
    result.examples = calls[0] - rejected[0]
    result.replayed = result.status == "failed" and bool(first_failure) and first_failure[0] <= saved
    result.first_call_seconds, result.first_calls = ctx.first_call_seconds, ctx.first_calls
    result.declined_reasons = dict(ctx.declined.most_common())
    if result.status == "passed":
        if disabled and result.checked == 0:
            result.status, result.note = "not run", disabled[0]
        elif result.checked == 0:
            result.status = "not covered"
            result.note = (f"all {result.examples} examples declined by the backend" if result.declined
                           else f"no example reached the backend ({rejected[0]} drawn)")
        elif result.declined:
            result.note = f"{result.declined} of {result.examples} examples declined by the backend"
    if result.status == "passed" and unchecked:
        note = f"{len(unchecked)} of {result.examples} examples not checked: {unchecked[0]}"
        result.note = f"{result.note}; {note}" if result.note else note
    return result


def _case_in(drawn: Any) -> Case | None:
    """The case a rule's strategy drew (alone, or first in a tuple)."""
    if isinstance(drawn, Case):
        return drawn
    if isinstance(drawn, tuple):
        return next((d for d in drawn if isinstance(d, Case)), None)
    return None


def problem_data(problem: Problem, direction: str) -> dict[str, Any]:
    """A problem as the plain data ``supports(op, problem)`` receives (picklable, no arrays)."""
    return {"op": problem.op, "direction": direction, "dtype": problem.dtype, "x_shape": problem.x_shape,
            "w_shape": problem.w_shape, "bias": problem.bias, "params": dict(problem.params)}


def _declined(ctx: Context, item: PlanItem, drawn: Any) -> str | None:
    """Why the backend declines the drawn case for this rule (its ``supports``), or None.

    The forward call is asked about always; the backward call when the backend has one. A rule that needs
    the backward is declined with it; any other rule runs without the backward calls it would have added.
    """
    case = _case_in(drawn)
    if case is None:
        return None
    op = case.problem.op
    reason = ctx.supports(op, problem_data(case.problem, "forward"))
    if reason is not None:
        return _short_reason(reason)
    backward = f"{op}_backward"
    if backward in ctx.backend.functions:
        reason = ctx.supports(op, problem_data(case.problem, "backward"))
        if reason is not None:
            if "backward" in item.rule.needs:
                return _short_reason(f"backward: {reason}")
            ctx.withheld.add(backward)
    return None


def _short_reason(reason: str) -> str:
    """A reason without the per-case details in parentheses, so that equal reasons are counted together."""
    text = " ".join(reason.split())
    if text.endswith(")"):
        depth = 0
        for k in range(len(text) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(text[k], 0)
            if depth == 0:
                return text[:k].rstrip() or text
    return text


def _finding(ctx: Context, item: PlanItem, violation: Violation, last: dict[str, Any]) -> Finding:
    """The finding of a search's final violation, with a reproduction generated from its recorded calls."""
    if last.get("violation") is not violation or not isinstance(ctx.caller, RecordingCaller):
        return Finding(violation)
    if violation.kind == "crash" and any(d.startswith("the crash itself was in") for d in violation.details):
        return Finding(violation)  # blamed on an earlier call by a replay: its snippet runs that call
    recorder = ctx.caller
    recorded: list[RecordedCall] = last["calls"]
    skipped = [c for c in recorded if c.outcome.skipped is not None]
    if skipped and skipped[0].key() in recorder.last_failure:  # replay the call that really crashed or hung
        recorded = [recorder.last_failure[skipped[0].key()]]
    header = [f"convspec {violation.rule} [{item.op}, {item.dtype}]: {_one_line(violation.summary)}"]
    if violation.case is not None:
        header.append(f"minimal case: {violation.case.problem.describe()}")
    header.append("run from the directory the check ran in: exits 1 while the backend breaks the spec, 0 once fixed")
    try:
        lines, bad, problem = reproduction(recorded, ctx.backend.import_line,
                                           accuracy=ctx.backend.capabilities.accuracy,
                                           accumulation=dict(ctx.backend.capabilities.accumulation), header=header,
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
    if backend.version is not None:
        versions[backend.name] = backend.version
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
                       versions=_versions(backend), shard=str(shard) if shard is not None else None,
                       compiles_per_shape=backend.capabilities.compiles_per_shape)
    if caller is None and not backend.in_process:
        raise ValueError(f"backend {backend.name!r} lives in a worker process: pass its caller")
    ctx = Context(backend, RecordingCaller(caller or InProcessCaller(backend.functions)))
    start = time.perf_counter()
    pools = use_pool_settings(seed, POOL_SIZES[profile])  # the shape pools of compile-per-shape backends
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
        ctx.caller.close()  # the worker and every process it started are gone before anything is written
        restore_pool_settings(pools)
    report.seconds = time.perf_counter() - start
    report.slow = list(ctx.slow)
    return report


# --------------------------------------------------------------------------- command line

def _csv(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        try:
            return parse_choices(text, allowed)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number from 0 to {2**32 - 1}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backend", help="reference, torch, jax, tensorflow, onnxruntime, package.module[:attribute], "
                        "path/to/file.py[:attribute], or a name registered under the entry-point group convspec.backends")
    parser.add_argument("--profile", choices=tuple(PROFILES), default="ci",
                        help="quick (a verdict in seconds), ci (about a minute), thorough (as long as it needs)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of every Hypothesis search (default 0)")
    parser.add_argument("--ops", type=_csv(tuple(OPERATIONS)), default=list(OPERATIONS),
                        help="comma-separated operations (default: all)")
    parser.add_argument("--dtypes", type=_csv(spec.DTYPES), default=list(spec.DTYPES),
                        help=f"comma-separated dtypes (default: {','.join(spec.DTYPES)})")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    parser.add_argument("--report", metavar="FILE", help="also write the report: .json, .md or .xml (JUnit)")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks of loading errors")
    parser.add_argument("--isolation", choices=("process", "none"), default="process",
                        help="process (default): import and run the backend only in a worker process, so a crash, "
                        "hang, runaway allocation or import-time side effect cannot touch the suite; none: import and "
                        "call it in this process (faster, unprotected)")
    parser.add_argument("--timeout", type=_number(float, "seconds"), default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit of one backend call with --isolation process (default {DEFAULT_TIMEOUT:g}); "
                        "a call over it is retried alone with 6 times the limit before it counts as a hang")
    parser.add_argument("--import-timeout", type=_number(float, "seconds"), default=DEFAULT_IMPORT_TIMEOUT,
                        metavar="SECONDS", help="time limit of importing the backend in the worker process "
                        f"(default {DEFAULT_IMPORT_TIMEOUT:g})")
    parser.add_argument("--no-cache", action="store_true",
                        help="do not keep compiled kernels between runs (JAX's persistent compilation cache under "
                        "~/.cache/convspec; sets CONVSPEC_NO_CACHE=1 for the backend)")
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


def _subprocess_caller(target: str | Target, args: argparse.Namespace) -> SubprocessCaller:
    return SubprocessCaller(target, timeout=float(getattr(args, "timeout", DEFAULT_TIMEOUT)),
                            memory_limit_mib=int(getattr(args, "memory_limit", DEFAULT_MEMORY_LIMIT_MIB)),
                            import_timeout=float(getattr(args, "import_timeout", DEFAULT_IMPORT_TIMEOUT)))


def _describe(caller: Caller) -> str:
    if isinstance(caller, SubprocessCaller):
        return f"worker process (timeout {caller.timeout:g} s, memory limit {caller.memory_limit_mib} MiB)"
    return "in-process (no isolation)"


def make_caller(backend: LoadedBackend, args: argparse.Namespace) -> tuple[Caller, str]:
    """A caller for a backend loaded in this process, and a few words saying which it is."""
    if getattr(args, "isolation", "process") == "none":
        return InProcessCaller(backend.functions), "in-process (no isolation)"
    if backend.in_process and not importable_in_a_worker(backend.target):
        return InProcessCaller(backend.functions), "in-process (the backend's module was made in memory)"
    caller = _subprocess_caller(backend.target, args)
    return caller, _describe(caller)


def open_backend(name: str, args: argparse.Namespace) -> tuple[LoadedBackend, Caller, str]:
    """The backend a command line names and the caller to run it with.

    With ``--isolation process`` (the default) nothing of the backend is
    imported here: a worker process imports it and describes it as plain data.
    Raises :class:`BackendLoadError` with one line when it cannot be loaded.
    """
    if getattr(args, "isolation", "process") == "none":
        backend = load_backend(name)
        return backend, InProcessCaller(backend.functions), "in-process (no isolation)"
    target = resolve_target(name)
    caller = _subprocess_caller(target, args)
    try:
        info = caller.connect()
    except BaseException:
        caller.close()
        raise
    return LoadedBackend.remote(target, info), caller, _describe(caller)


def what_runs(backend: LoadedBackend, ops: Sequence[str], dtypes: Sequence[str]) -> str:
    """The header's account of what will actually run for this backend, and what will not."""
    runs_ops = [op for op in ops if OPERATIONS[op].forward in backend.functions]  # type: ignore[index]
    runs_dtypes = [d for d in dtypes if d in backend.capabilities.dtypes]
    skipped = [f"{op} (no {OPERATIONS[op].forward})" for op in ops if op not in runs_ops]  # type: ignore[index]
    skipped += [f"{d} (not declared)" for d in dtypes if d not in runs_dtypes]
    text = f"runs {','.join(runs_ops) or 'no operation'} in {','.join(runs_dtypes) or 'no dtype'}"
    return text + (f"; not run: {', '.join(skipped)}" if skipped else "")


class Output:
    """Prints progress and results; a closed pipe (``| head``) silences it without stopping the run."""

    def __init__(self) -> None:
        self.closed = False

    def __call__(self, text: str) -> None:
        if self.closed:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self.close()

    def close(self) -> None:
        """The reader went away: send the rest of the output nowhere."""
        self.closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's final flush must not fail either
        os.close(devnull)


def run_from_args(args: argparse.Namespace) -> int:
    import conformance.report as reporting

    if args.report:
        problem = reporting.report_path_problem(args.report)
        if problem:
            print(f"convspec: error: --report {args.report!r}: {problem}", file=sys.stderr)
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
    if getattr(args, "no_cache", False):
        disable_cache()  # before the backend is imported here or in its worker
    say = Output()
    if args.dask:
        from conformance.distributed import DaskError, run_on_dask

        try:
            report = run_on_dask(resolve_target(args.backend), args)
        except DaskError as exc:
            print(f"convspec: error: {exc}", file=sys.stderr)
            return 2
    else:
        backend, caller, isolation = open_backend(args.backend, args)
        say(f"convspec check {backend.name} ({backend.target}): profile {args.profile}, seed {args.seed}"
            + (f", shard {args.shard}" if args.shard else "") + f"; {what_runs(backend, args.ops, args.dtypes)}; "
            f"{isolation}")
        with RunProgress() as bar:
            def progress(done: int, total: int, result: RuleResult) -> None:
                if not say.closed:
                    try:
                        bar(done, total, result)
                    except BrokenPipeError:
                        say.close()

            report = run(backend, ops=args.ops, dtypes=args.dtypes, profile=args.profile, seed=args.seed,
                         fail_fast=args.fail_fast, caller=caller, progress=progress, shard=args.shard,
                         database=database)
    say(reporting.render_text(report))
    if args.report:
        reporting.write_report(report, args.report)
        say(f"report written to {args.report}")
    if report.shard is not None:  # a shard has no verdict of its own: it fails only on a failure
        return 1 if report.failures else 0
    if not report.failures and report.checked == 0:
        print(f"convspec: error: {reporting.nothing_checked(report)}", file=sys.stderr)
        return 2
    return 0 if report.conformant else 1


__all__ = ["PROFILES", "BackendLoadError", "RuleResult", "RunReport", "make_plan", "open_backend", "run", "run_item"]

"""The suite survives its backends: crashes, hangs, memory hogs and contract breakers become findings.

Each backend of :mod:`tests.misbehaving` is checked on ``conv`` in a worker
process with short limits; the run must finish within its budget, report the
right kind of finding and end NOT CONFORMANT (exit 1). Also: usage errors exit
2 with one line, a killed run leaves a whole report, and a report is
reproducible across processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import conformance.report as reporting
from conformance.cli import main
from conformance.isolation import SubprocessCaller, describe_exit
from conformance.loader import load_backend
from conformance.results import RunReport
from conformance.rules import RULES, RULES_BY_ID
from conformance.runner import run

ROOT = Path(__file__).resolve().parent.parent
#: A few rules are enough to see how a call misbehaves, and keep each test to a second or two.
FEW_RULES = tuple(r for r in RULES if r.id in ("output-shape", "forward-values", "backward-values"))
TIMEOUT = 1.0
#: The limit of the runs whose backend hangs: each such run waits out the limit and a retry with 6 x the limit.
HANG_TIMEOUT = 0.5


def check(name: str, *, rules: Any = FEW_RULES, timeout: float = TIMEOUT, memory_limit_mib: int = 1024,
          budget: float = 20.0) -> RunReport:
    """Check ``tests.misbehaving.NAME`` on conv/float64 in a worker; it must finish within ``budget`` seconds."""
    backend = load_backend(f"tests.misbehaving.{name}")
    caller = SubprocessCaller(backend.target, timeout=timeout, memory_limit_mib=memory_limit_mib)
    start = time.perf_counter()
    report = run(backend, ops=["conv"], dtypes=["float64"], profile="quick", caller=caller, rules=rules)
    elapsed = time.perf_counter() - start
    assert elapsed < budget, f"the run took {elapsed:.1f} s, but should take under {budget} s [{name}]"
    return report


def findings(report: RunReport) -> list[tuple[str, str]]:
    """(rule, summary) of each failure; a suite error (status "error") fails the test instead."""
    errors = [r.note for r in report.results if r.status == "error"]
    assert not errors, f"the suite itself failed: {errors[0]}"
    return [(r.violation.rule, r.violation.summary) for r in report.failures if r.violation is not None]


@pytest.mark.parametrize(("name", "rule", "says"), [
    ("segfault", "crash", "SIGSEGV"),
    ("abort", "crash", "SIGABRT"),
    ("exits", "crash", "exited with status 3"),
    ("killed", "crash", "SIGKILL"),
    ("hangs", "hang", f"did not return within {HANG_TIMEOUT:g} s"),
    ("spins", "hang", f"did not return within {HANG_TIMEOUT:g} s"),
    ("allocates", "crash", "exceeded the memory limit of 1024 MiB"),
])
def test_process_level_misbehaviour_is_a_finding(name: str, rule: str, says: str) -> None:
    report = check(name, timeout=HANG_TIMEOUT if rule == "hang" else TIMEOUT)
    found = findings(report)
    assert not report.conformant and found, f"no finding for {name}"
    assert all(r == rule for r, _ in found), f"rules {sorted({r for r, _ in found})}, but should be {rule} [{name}]"
    assert any(says in summary for _, summary in found), f"no finding says {says!r}: {found[0][1]}"
    # conv_backward is the reference's: its rule still passes next to the broken forward.
    assert any(r.rule == "backward-values" and r.status == "passed" for r in report.results)


def test_a_crash_names_the_backend_line() -> None:
    summary = findings(check("segfault"))[0][1]
    assert "tests/misbehaving/segfault.py:" in summary and "in conv_forward" in summary, summary


def test_a_hang_is_confirmed_names_the_backend_line_and_is_reported_in_its_own_dtype() -> None:
    """Hangs in float64 and float16, right in float32: each hang on its own dtype's rows; float32 passes."""
    backend = load_backend("tests.misbehaving.hangs_in_two_dtypes")
    caller = SubprocessCaller(backend.target, timeout=HANG_TIMEOUT)
    start = time.perf_counter()
    report = run(backend, ops=["conv"], dtypes=["float64", "float32", "float16"], profile="quick", caller=caller,
                 rules=FEW_RULES)
    elapsed = time.perf_counter() - start
    # In float64 the hang is confirmed by a retry with 6 x the limit; in float16 it is taken as the same hang without
    # a retry. Then conv_forward is not called again in that dtype. (Each worker start imports the reference,
    # seconds on a loaded machine: the bound is loose; calling it on for every example would take minutes.)
    assert elapsed < 8 * HANG_TIMEOUT + 45, f"the run took {elapsed:.1f} s"
    assert caller.starts <= 5, f"{caller.starts} worker starts"
    float32 = [(r.rule, r.status, r.note) for r in report.results if r.dtype == "float32"]
    assert len(float32) == len(FEW_RULES) and all(status == "passed" for _, status, _ in float32), float32
    hangs = {r.dtype: r.violation for r in report.failures if r.violation is not None}
    assert sorted(hangs) == ["float16", "float64"], [(r.rule, r.dtype) for r in report.failures]
    for dtype, hang in hangs.items():
        assert hang.rule == "hang" and "tests/misbehaving/hangs_in_two_dtypes.py:" in hang.summary, hang.summary
        assert hang.case is not None and hang.case.problem.dtype == dtype, (dtype, hang.case)
        code = "\n".join(line for line in hang.snippet if not line.startswith("#"))
        assert set(re.findall(r"b?float\d+", code)) == {dtype}, code
    retried = f"nor within {6 * HANG_TIMEOUT:g} s when retried alone in a fresh worker"
    assert retried in hangs["float64"].summary, hangs["float64"].summary
    assert "not retried: conv_forward was confirmed to hang in float64" in hangs["float16"].summary
    not_run = [r for r in report.results if r.status == "not run"]
    assert {r.dtype for r in not_run} == {"float64", "float16"}, [(r.rule, r.dtype, r.status) for r in report.results]
    assert all("disabled after" in r.note for r in not_run), [r.note for r in not_run]
    assert not report.conformant


def test_crashes_on_some_parameters_keep_the_good_results() -> None:
    report = check("crashes_on_stride", rules=RULES, budget=40.0)
    crashes = [r.violation for r in report.failures if r.violation is not None and r.violation.rule == "crash"]
    assert crashes, "the crash for stride > 1 was not found"
    for violation in crashes:
        if violation.case is not None and violation.case.problem.op == "conv" and "invalid" not in violation.summary:
            stride = dict(violation.case.problem.params)["stride"]
            assert max(stride) > 1, f"reported case has stride={stride}, which does not crash: {violation.summary}"
    assert any(r.status == "passed" for r in report.results), "no rule passed: the good cases were lost"


@pytest.mark.parametrize(("name", "rule", "says"), [
    ("returns_none", "output-contract", "result is a NoneType"),
    ("returns_list", "output-contract", "result is a list"),
    ("returns_scalar", "output-contract", "result is a float"),
    ("returns_generator", "output-contract", "result is a generator"),
    ("read_only", "output-contract", "read-only"),
    ("wrong_shape", "output-shape", "y.shape="),
    ("wrong_dtype", "output-shape", "y.dtype=float32"),
    ("integers", "output-shape", "y.dtype=int64"),
    ("complex", "output-shape", "y.dtype=complex128"),
    ("raises", "", "raised ValueError on a valid call: not today"),
    ("raises_unpicklable", "", "raised _Stubborn on a valid call: conv failed with code 3"),
    ("nan", "forward-values", "differs"),
    ("writes_x", "input-mutation", "wrote into its input(s) x"),
    ("writes_w", "input-mutation", "wrote into its input(s) w"),
    ("writes_dy", "input-mutation", "wrote into its input(s) dy"),
])
def test_contract_breakers_arrive_intact(name: str, rule: str, says: str) -> None:
    found = findings(check(name))
    assert found, f"no finding for {name}"
    assert any((not rule or r == rule) and says in summary for r, summary in found), (
        f"no {rule or 'error'} finding says {says!r}: {found}")


def test_non_contiguous_fresh_results_are_allowed() -> None:
    """The spec asks for fresh arrays of the right dtype and shape; memory order is the backend's choice."""
    report = check("non_contiguous")
    assert report.conformant, reporting.render_text(report)


def test_unsendable_result_and_exception_keep_their_names() -> None:
    caller = SubprocessCaller("tests.misbehaving.returns_generator", timeout=5)
    try:
        x, w = np.ones((1, 1, 4)), np.ones((1, 1, 2))
        params = {"stride": (1,), "padding": ((0, 0),), "dilation": (1,), "groups": 1}
        outcome = caller.call("conv_forward", [x, w, None], params)
    finally:
        caller.close()
    assert outcome.problems[0] == "result is a generator, must be a numpy.ndarray", outcome.problems
    assert repr(outcome.result) == "<unsendable generator>", outcome.result  # only its type name travels


def test_describe_exit() -> None:
    assert describe_exit(-6) == "killed by signal SIGABRT (Aborted)"
    assert describe_exit(3) == "the process exited with status 3"


# --------------------------------------------------------------------------- the command line


def cli(*argv: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_cli_exits_1_after_a_crash_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = cli("check", "tests.misbehaving.abort", "--profile", "quick", "--ops", "conv", "--dtypes", "float64",
               "--timeout", "1", "--report", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SIGABRT" in done.stdout and "NOT CONFORMANT" in done.stdout
    data = json.loads(out.read_text())
    assert {r["violation"]["rule"] for r in data["results"] if r.get("violation")} == {"crash"}


@pytest.mark.parametrize(("argv", "says"), [
    (["check", "tests.misbehaving.no_such_module"], "cannot import backend module 'tests.misbehaving.no_such_module'"),
    (["check", "tests.misbehaving.fails_on_import"], "RuntimeError: this backend needs a GPU driver"),
    (["check", "tests.misbehaving.not_a_backend"], "is not a backend"),
    (["check", "tests.misbehaving.segfault:nothing"], "has no attribute 'nothing'"),
    (["check", "reference", "--timeout", "0"], "--timeout: '0': must be a finite number of seconds, above 0"),
    (["check", "reference", "--timeout", "soon"], "--timeout: 'soon' is not a number of seconds"),
    (["check", "reference", "--timeout", "nan"], "--timeout: 'nan': must be a finite number"),
    (["check", "reference", "--memory-limit", "10"], "--memory-limit: '10': must be a finite number of MiB, at least 64"),
    (["check", "reference", "--memory-limit", "1.5"], "--memory-limit: '1.5' is not a number of MiB"),
    (["check", "reference", "--isolation", "thread"], "--isolation: invalid choice: 'thread'"),
])
def test_bad_usage_exits_2_with_one_line(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exited:  # argparse's way out
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], err


def test_a_killed_run_leaves_the_previous_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text('{"previous": true}\n')
    process = subprocess.Popen([sys.executable, "-m", "conformance.cli", "check", "tests.misbehaving.hangs", "--profile",
                                "quick", "--timeout", "5", "--report", str(out)], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    process.stdout.readline()  # the run has started, and is waiting on a hanging call
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    process.stdout.close()
    assert json.loads(out.read_text()) == {"previous": True}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def _without_timings(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_timings(v) for k, v in data.items() if not k.endswith("seconds")}  # every timing
    if isinstance(data, list):
        return [_without_timings(v) for v in data]
    return data


def test_the_same_seed_gives_the_same_report_in_another_process(tmp_path: Path) -> None:
    """Across processes with different str hashes, only the timings may differ."""
    reports = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"report-{hash_seed}.json"
        # Two dtypes: the order of rules, examples and findings is what a str hash could change, in any dtype.
        done = cli("check", "tests.misbehaving.nan", "--profile", "quick", "--ops", "conv,avg_pool", "--seed", "7",
                   "--dtypes", "float64,float32", "--report", str(out), "--no-database",
                   env={"PYTHONHASHSEED": hash_seed})  # no replay of run 1's find
        assert done.returncode == 1, done.stdout + done.stderr
        reports.append(_without_timings(json.loads(out.read_text())))
    assert reports[0] == reports[1]


def test_the_same_seed_gives_the_same_report_in_process() -> None:
    backend = load_backend("reference")
    first, second = (reporting.to_dict(run(backend, ops=["max_pool"], dtypes=["float32"], profile="quick", seed=3),
                                       timings=False) for _ in range(2))
    assert first == second


# --------------------------------------------------------------------------- a verdict that cannot be wrong

def run_cli(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
            timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``python -m conformance.cli``; the result and the seconds until its output closed."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "conformance.cli", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    return done, time.perf_counter() - start


QUICK_CONV = ("--profile", "quick", "--ops", "conv", "--dtypes", "float64")


def test_a_backend_that_declines_everything_is_not_conformant_exit_2() -> None:
    done, _ = run_cli("check", "tests.misbehaving.declines_everything", "--profile", "quick", "--dtypes", "float64")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "CONFORMANT: " not in done.stdout.replace("NOT CONFORMANT", ""), done.stdout
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "nothing was checked" in err[0] and "declined" in err[0], done.stderr
    assert "invalid-params      not covered (0 of" in done.stdout, done.stdout  # UnsupportedError is no rejection
    assert " pass " not in done.stdout, done.stdout


def test_every_row_shows_what_was_checked_and_declined() -> None:
    backend = load_backend("tests.misbehaving.declines_strides")
    report = run(backend, ops=["conv"], dtypes=["float64"], profile="quick", caller=SubprocessCaller(backend.target),
                 rules=FEW_RULES)
    assert report.conformant, reporting.render_text(report)
    rows = {row[0]: row[1] for row in reporting.summary_table(report)[1:]}
    forward = next(r for r in report.results if r.rule == "forward-values")
    assert forward.declined > 0 and forward.checked + forward.declined == forward.examples, forward
    assert rows["forward-values"] == f"pass ({forward.checked} of {forward.examples}; {forward.declined} declined: " \
                                     "stride > 1)", rows
    data = reporting.to_dict(report)
    assert all({"checked", "declined", "declined_reasons", "coverage"} <= set(r) for r in data["results"])
    junit = reporting.to_junit(report)
    assert f'name="checked" value="{forward.checked}"' in junit and "declined: stride &gt; 1" in junit
    assert f"{forward.declined} declined" in reporting.to_markdown(report)


@pytest.mark.parametrize("name", ["patches_the_suite", "exits_0_at_exit"])
def test_import_time_code_cannot_change_the_verdict(name: str, tmp_path: Path) -> None:
    """Patching NumPy or the suite, or os._exit(0) at exit, happens in the worker only: still exit 1."""
    out = tmp_path / "r.json"
    done, _ = run_cli("check", f"tests.misbehaving.{name}", *QUICK_CONV, "--fail-fast", "--report", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "NOT CONFORMANT" in done.stdout
    data = json.loads(out.read_text())
    assert data["conformant"] is False and any(r["status"] == "failed" for r in data["results"])


@pytest.mark.parametrize(("name", "extra", "says"), [
    ("exits_on_import", (), "importing backend module 'tests.misbehaving.exits_on_import' called sys.exit(0)"),
    ("fails_on_import", (), "RuntimeError: this backend needs a GPU driver"),
    ("hangs_on_import", ("--import-timeout", "2"), "did not finish within 2 s"),
])
def test_a_module_that_exits_raises_or_hangs_at_import_is_a_usage_error(name: str, extra: tuple[str, ...],
                                                                          says: str) -> None:
    done, seconds = run_cli("check", f"tests.misbehaving.{name}", *QUICK_CONV, *extra)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert seconds < 30, f"took {seconds:.1f} s"


@pytest.mark.parametrize(("name", "says"), [
    ("reduce_subclass", "result is a tests.misbehaving.reduce_subclass.Sneaky, must be exactly a numpy.ndarray"),
    ("lies_about_dtype", "result is a tests.misbehaving.lies_about_dtype.Liar, must be exactly a numpy.ndarray"),
    ("returns_memmap", "result is a numpy.memmap, must be exactly a numpy.ndarray"),
    ("reuses_buffer", "(a reused output buffer?)"),
])
def test_cheating_results_are_contract_failures(name: str, says: str, tmp_path: Path) -> None:
    marker = tmp_path / "backend-code-ran-here"
    backend = load_backend(f"tests.misbehaving.{name}")
    os.environ["CONVSPEC_TEST_MARKER"] = str(marker)
    try:
        report = run(backend, ops=["conv"], dtypes=["float64"], profile="quick",
                     caller=SubprocessCaller(backend.target, timeout=5), rules=FEW_RULES)
    finally:
        del os.environ["CONVSPEC_TEST_MARKER"]
    found = findings(report)
    assert not report.conformant and any(r == "output-contract" and says in s for r, s in found), found
    assert not marker.exists(), "the backend's __reduce__ ran in the suite's process"


def test_reused_buffer_is_caught_in_process_too() -> None:
    report = run(load_backend("tests.misbehaving.reuses_buffer"), ops=["conv"], dtypes=["float64"], profile="quick",
                 rules=FEW_RULES)
    assert any(r == "output-contract" and "reused output buffer" in s for r, s in findings(report))


def test_a_slow_first_call_is_reported_slow_not_hung() -> None:
    backend = load_backend("tests.misbehaving.slow_first_call")
    caller = SubprocessCaller(backend.target, timeout=0.5)
    report = run(backend, ops=["conv"], dtypes=["float64"], profile="quick", caller=caller, rules=FEW_RULES)
    assert report.conformant, reporting.render_text(report)
    assert len(report.slow) == 1 and "conv_forward took 1." in report.slow[0] and "slow, not hung" in report.slow[0]
    assert "slow calls" in reporting.render_text(report)


def test_a_crash_caused_by_an_earlier_call_is_blamed_on_it() -> None:
    backend = load_backend("tests.misbehaving.poisons_later_call")
    rules = [RULES_BY_ID["backward-values"], RULES_BY_ID["forward-values"]]  # backward first: it corrupts the worker
    report = run(backend, ops=["conv"], dtypes=["float64"], profile="quick",
                 caller=SubprocessCaller(backend.target, timeout=5), rules=rules)
    found = [r.violation for r in report.failures if r.violation is not None]
    assert len(found) == 1 and found[0].rule == "crash", found
    assert found[0].summary.startswith("conv_backward corrupted the process, which later crashed in conv_forward")
    assert any("bisecting" in d for d in found[0].details), found[0].details
    assert found[0].snippet and any("backend.conv_backward(" in line for line in found[0].snippet)
    assert found[0].case is not None and found[0].case.inputs.dy is not None


def test_a_crash_that_reproduces_alone_says_so() -> None:
    found = [r.violation for r in check("abort").failures if r.violation is not None]
    assert found and "confirmed: reproduced alone in a fresh worker" in found[0].details, found[0].details


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_a_forked_child_neither_holds_the_output_nor_rewrites_the_report(tmp_path: Path) -> None:
    out, pids = tmp_path / "r.json", tmp_path / "child.pids"
    done, seconds = run_cli("check", "tests.misbehaving.forks_a_child", *QUICK_CONV, "--fail-fast", "--report", str(out),
                            env={"CONVSPEC_TEST_REPORT": str(out), "CONVSPEC_TEST_CHILD_PID": str(pids)})
    assert done.returncode == 1, done.stdout + done.stderr
    children = [int(p) for p in pids.read_text().split()]
    assert children, "the backend did not fork"
    time.sleep(0.5)  # the child would rewrite the report 0.2 s after it appears
    data = json.loads(out.read_text())
    assert data["conformant"] is False and "forged" not in data
    assert not [pid for pid in children if _alive(pid)], "the backend's child outlived the run"
    assert seconds < 60, f"the output stayed open {seconds:.1f} s"


def test_a_conv_wrong_only_past_block_edges_is_caught_by_large_shapes() -> None:
    """Ordinary cases stay under 32 channels and 48 pixels: only the large-shape pool reaches the bugs."""
    rules = [RULES_BY_ID["forward-values"], RULES_BY_ID["backward-values"], RULES_BY_ID["large-shapes"]]
    report = run(load_backend("tests.misbehaving.blocked_conv"), ops=["conv"], dtypes=["float64"], profile="ci",
                 rules=rules)
    status = {r.rule: r.status for r in report.results}
    assert status["forward-values"] == "passed" and status["large-shapes"] == "failed", status  # 33+ channels
    summaries = " ".join(f.violation.summary for r in report.failures for f in r.findings)
    assert "y differs" in summaries or "dx differs" in summaries, summaries


def test_crash_confirmations_are_bounded_per_function() -> None:
    """A function that crashes on every call is replayed a few times, then reported as it crashed: the run stays short."""
    from conformance.isolation import MAX_CONFIRMATIONS

    backend = load_backend("tests.misbehaving.segfault")
    caller = SubprocessCaller(backend.target, timeout=TIMEOUT, max_strikes=100)
    x, w = np.ones((1, 1, 3)), np.ones((1, 1, 2))
    kwargs = {"stride": (1,), "padding": ((0, 0),), "dilation": (1,), "groups": 1}
    try:
        outcomes = [caller.call("conv_forward", [x, w, None], kwargs) for _ in range(MAX_CONFIRMATIONS + 2)]
    finally:
        caller.close()
    assert all(o.crashed is not None for o in outcomes), [o.crashed for o in outcomes]
    replayed = [o for o in outcomes if o.confirmed and o.confirmed.startswith("reproduced alone")]
    assert len(replayed) == MAX_CONFIRMATIONS, [o.confirmed for o in outcomes]
    assert all("not replayed" in (o.confirmed or "") for o in outcomes[MAX_CONFIRMATIONS:]), [o.confirmed for o in outcomes]
    # One start per call, plus one replay each for the confirmed ones.
    assert caller.starts == len(outcomes) + MAX_CONFIRMATIONS, caller.starts

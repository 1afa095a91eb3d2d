"""The pytest plugin follows pytest's conventions: collection counts, -k ids, skips, isolation, xdist."""

from __future__ import annotations

import os
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from conformance.loader import load_backend
from conformance.runner import NotPlanned, make_plan

ROOT = Path(__file__).resolve().parents[1]
LINEAR = ["--convspec-profile=quick", "--convspec-ops=linear", "--convspec-dtypes=float64"]

# Only linear_forward, only float64: the backward rules and float32 are not covered.
HALF_LINEAR = """
import os
import numpy as np
import spec
import reference

CAPABILITIES = spec.Capabilities(dtypes=frozenset({"float64"}))

def linear_forward(x, w, b):
    with open(os.environ["CONVSPEC_TEST_PIDS"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    return reference.linear_forward(x, w, b)
"""


@pytest.fixture
def half_linear(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The backend module above, importable from pytester's directory; returns the file its calls' pids go to."""
    pytester.makepyfile(half_linear=HALF_LINEAR)
    pytester.syspathinsert()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), str(ROOT)]))
    pids = pytester.path / "pids.txt"
    monkeypatch.setenv("CONVSPEC_TEST_PIDS", str(pids))
    return pids


def _ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("convspec[")]


def test_items_are_collected_and_counted_by_a_collector(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = pytester.runpytest("--convspec-backend=reference", *LINEAR, "--collect-only", "-q")
    ids = _ids(result)
    plan, _ = make_plan(load_backend("reference"), ["linear"], ["float64"], "quick")
    assert len(ids) == len(plan) > 5
    assert f"{len(ids) + 1} tests collected" in result.stdout.str()  # the project's own test as well
    result = pytester.runpytest("--convspec-backend=reference", *LINEAR)
    assert "collected 0 items" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"collected {len(ids) + 1} items"])
    result.assert_outcomes(passed=len(ids) + 1)


def test_ids_as_printed_select_with_k(pytester: pytest.Pytester) -> None:
    ids = _ids(pytester.runpytest("--convspec-backend=reference", *LINEAR, "--collect-only", "-q"))
    chosen = next(i for i in ids if "forward-values" in i)
    assert chosen == "convspec[reference]::linear::forward-values[float64]"
    result = pytester.runpytest("--convspec-backend=reference", *LINEAR, "-k", chosen, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"{chosen.replace('[', '[[]')} PASSED*"])
    # Parts of an id select too: one rule across operations, or everything but one dtype.
    result = pytester.runpytest("--convspec-backend=reference", "--convspec-profile=quick", "--convspec-ops=linear",
                                "--convspec-dtypes=float64,float32", "-k", "forward-values and not float32")
    result.assert_outcomes(passed=1)


def test_what_is_not_covered_is_skipped_with_the_reason(pytester: pytest.Pytester, half_linear: Path) -> None:
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("--convspec-backend=half_linear", "--convspec-profile=quick", "--convspec-ops=linear,conv",
                                "--convspec-dtypes=float64,float32", "-rs", "-v", f"--junitxml={junit}")
    not_planned: list[NotPlanned] = []
    backend = load_backend("half_linear")
    plan, _ = make_plan(backend, ["conv", "linear"], ["float64", "float32"], "quick", not_planned=not_planned)
    result.stdout.fnmatch_lines(["convspec[[]half_linear[]]::conv SKIPPED (not covered: backend has no con*"])
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == len(plan) and outcomes["skipped"] == len(not_planned) > 0
    for line in ("*SKIPPED*not covered: backend has no linear_backward*", "*SKIPPED*not covered: dtype float32 not declared*"):
        result.stdout.fnmatch_lines([line])
    result.stdout.fnmatch_lines(["*convspec: not covered by half_linear*", "*capability not declared*"])
    skipped = ET.parse(junit).getroot().findall(".//testcase/skipped")
    assert len(skipped) == len(not_planned)
    assert any("linear_backward" in (s.get("message") or "") for s in skipped)


def test_the_backend_runs_in_a_worker_process_by_default(pytester: pytest.Pytester, half_linear: Path) -> None:
    pytester.runpytest("--convspec-backend=half_linear", *LINEAR, "-k", "forward-values").assert_outcomes(passed=1)
    pids = set(half_linear.read_text().split())
    assert pids and str(os.getpid()) not in pids  # pytester ran pytest in this process; the backend ran elsewhere
    half_linear.unlink()
    pytester.runpytest("--convspec-backend=half_linear", *LINEAR, "-k", "forward-values",
                       "--convspec-isolation=none").assert_outcomes(passed=1)
    assert set(half_linear.read_text().split()) == {str(os.getpid())}


def test_a_crashing_backend_fails_its_items_and_pytest_carries_on(pytester: pytest.Pytester,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest("--convspec-backend=tests.misbehaving.abort", "--convspec-profile=quick",
                                "--convspec-ops=conv", "--convspec-dtypes=float64", "-k", "output-shape")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*conv_forward crashed the process*SIGABRT*"])


def test_runs_under_xdist(pytester: pytest.Pytester, half_linear: Path) -> None:
    result = pytester.runpytest("--convspec-backend=half_linear", "--convspec-profile=quick", "--convspec-ops=linear",
                                "--convspec-dtypes=float64,float32", "--convspec-isolation=none", "-n", "2", "-p", "xdist")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] > 1 and outcomes["skipped"] > 1
    assert re.search(r"2 workers \[\d+ items\]", result.stdout.str())
    result.stdout.fnmatch_lines(["*convspec: not covered by half_linear*", "*backend has no linear_backward*"])


def test_a_failure_reads_as_in_convspec_check_and_is_replayed(pytester: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(broken_kernels="""
        import numpy as np
        import reference

        def linear_forward(x, w, b):
            return reference.linear_forward(x, np.ascontiguousarray(w[::-1]), b)  # rows in the wrong order
    """)
    pytester.syspathinsert()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pytester.path), str(ROOT)]))
    database = pytester.path / "examples"
    args = ["--convspec-backend=broken_kernels", *LINEAR, "-k", "forward-values", f"--convspec-database={database}"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAILED forward-values [[]linear, float64[]]*", "*reproduce with:*",
                                 "*exits 1 while the backend breaks the spec, 0 once fixed*"])  # replays the calls
    assert any(database.iterdir())
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*found by replaying the failing example saved by an earlier run*"])


def test_unknown_backend_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--convspec-backend=no_such_module_anywhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--convspec-backend: cannot import backend module 'no_such_module_anywhere'*"])

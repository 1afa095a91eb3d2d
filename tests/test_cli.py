"""The command line and the report files: exit codes, formats, and the pytest plugin."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import types
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest

import reference
from conformance.cli import main


@pytest.fixture
def flipped_module(monkeypatch: pytest.MonkeyPatch) -> str:
    """A backend module whose convolution flips the kernel (true convolution, not correlation)."""
    module = types.ModuleType("convspec_flipped_kernel")

    def conv_forward(x: Any, w: Any, b: Any, **kw: Any) -> Any:
        flipped = np.ascontiguousarray(w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)])
        return reference.conv_forward(x, flipped, b, **kw)

    module.conv_forward = conv_forward
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module.__name__


def test_reference_is_conformant_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "reference", "--profile", "quick", "--ops", "linear,max_pool"]) == 0
    out = capsys.readouterr().out
    assert "CONFORMANT: reference" in out
    assert "NOT CONFORMANT" not in out


def test_broken_backend_exits_1_with_an_actionable_report(flipped_module: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.json"
    code = main(["check", flipped_module, "--profile", "quick", "--ops", "conv", "--dtypes", "float64",
                 "--fail-fast", "--report", str(report), "--isolation", "none"])
    out = capsys.readouterr().out
    assert code == 1
    assert "NOT CONFORMANT" in out
    assert "reproduce with:" in out and "backend.conv_forward(" in out
    assert "expected" in out and "actual" in out and "bound" in out
    data = json.loads(report.read_text())
    assert data["conformant"] is False and data["stopped_early"] is True
    failed = [r for r in data["results"] if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["violation"]["problem"].startswith("conv")
    assert "conv_backward" in " ".join(data["uncovered"])


def test_reproduction_snippet_runs_and_shows_the_bug(flipped_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.loader import load_backend
    from conformance.runner import run

    report = run(load_backend(flipped_module), ops=["conv"], dtypes=["float64"], profile="quick", fail_fast=True)
    violation = report.failures[0].violation
    assert violation is not None
    source = "\n".join(violation.snippet)  # a complete script: it fails while the backend is broken
    with pytest.raises(AssertionError, match="expected") as failure:
        exec(source, {})
    assert "actual" in str(failure.value)
    fixed = "\n".join("import reference as backend" if line.startswith("import ") and "as backend" in line else line
                      for line in violation.snippet)
    assert fixed != source
    exec(fixed, {})  # and passes against the reference


@pytest.mark.parametrize("suffix", [".md", ".xml"])
def test_markdown_and_junit_reports(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"report{suffix}"
    assert main(["check", "reference", "--profile", "quick", "--ops", "linear", "--dtypes", "float32",
                 "--report", str(path)]) == 0
    text = path.read_text()
    if suffix == ".md":
        assert text.startswith("# convspec check reference") and "| forward-values | pass (8 of 8) |" in text
    else:
        suite = ET.fromstring(text)
        assert suite.tag == "testsuite" and int(suite.get("failures", "-1")) == 0
        assert len(suite.findall("testcase")) == int(suite.get("tests", "0")) > 5


@pytest.mark.parametrize("argv, message", [
    (["check", "no_such_backend_module"], "cannot import backend module"),
    (["check", "torch_nonexistent:thing"], "cannot import"),
    (["check", "json:dumps"], "is not a backend"),
    (["check", "reference", "--report", "out.txt"], "use a .json, .md or .xml"),
])
def test_bad_usage_exits_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["check", "reference", "--ops", "conv,pool"], ["check", "reference", "--dtypes", "int8"],
                                  ["check", "reference", "--profile", "slow"]])
def test_bad_option_values_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "convspec: error:" in capsys.readouterr().err


def test_pytest_plugin_runs_the_suite_in_a_foreign_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(broken_kernels="""
        import numpy as np
        import reference

        def linear_forward(x, w, b):
            return reference.linear_forward(x, np.ascontiguousarray(w[::-1]), b)  # rows in the wrong order
    """)
    pytester.syspathinsert()
    result = pytester.runpytest("--convspec-backend=broken_kernels",
                                "--convspec-profile=quick", "--convspec-dtypes=float64")
    assert result.parseoutcomes().get("failed", 0) >= 1
    result.stdout.fnmatch_lines(["*convspec[[]broken_kernels[]]::linear::forward-values[[]float64[]]*",
                                 "*reproduce with:*"])
    assert result.ret == 1


def test_matrix_is_composed_from_the_json_reports(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- matrix:start -->\nold\n<!-- matrix:end -->\nafter\n")
    out = tmp_path / "conformance"
    args = ["matrix", "reference", "--profile", "quick", "--dtypes", "float64", "--out", str(out)]
    assert main([*args, "--readme", str(readme)]) == 0
    assert "| forward-values | pass (8 of 8) |" in (out / "reference.md").read_text()
    matrix = (out / "matrix.md").read_text()
    assert "**conv**" in matrix and "| forward-values | pass |" in matrix and "| tie-routing | - |" not in matrix
    text = readme.read_text()
    assert text.startswith("intro\n<!-- matrix:start -->\nGenerated by `convspec matrix") and text.endswith("after\n")
    assert "old" not in text
    # The matrix is what the JSON report holds: edit the report, and the matrix recomposed without a run follows.
    data = json.loads((out / "reference.json").read_text())
    row = next(r for r in data["results"] if r["op"] == "conv" and r["rule"] == "forward-values")
    row.update(checked=2, declined=6, declined_reasons={"stride > 1": 6})
    (out / "reference.json").write_text(json.dumps(data))
    assert main([*args, "--from-reports"]) == 0
    matrix = (out / "matrix.md").read_text()
    assert "| forward-values | pass (25%; 75% declined) |" in matrix, matrix
    assert "- reference: stride > 1 (6)" in matrix, matrix
    assert "| forward-values | pass (2 of 8; 6 declined: stride > 1) |" in (out / "reference.md").read_text()
    assert main([*args[:4], "--seed", "3", *args[4:], "--from-reports"]) == 2  # reports of another run: refused


def _result(rule: str, status: str = "passed", examples: int = 20, checked: int = 20, declined: int = 0,
            reasons: dict[str, int] | None = None, op: str = "conv", dtype: str = "float64") -> Any:
    from conformance.results import RuleResult

    return RuleResult(rule, rule, op, dtype, status, examples=examples, checked=checked, declined=declined,
                      declined_reasons=reasons or {})


def _report(name: str, results: list[Any]) -> Any:
    from conformance.results import RunReport

    return RunReport(name, name, "ci", 0, ["conv"], ["float64", "float32"], results, versions={"x": "1"})


def test_matrix_marks_missing_backward_as_not_supported_and_shows_declined_fractions() -> None:
    from conformance.matrix import compose

    full = _report("full", [_result("forward-values"), _result("backward-values")])
    half = _report("half", [_result("forward-values", declined=10, checked=10,
                                    reasons={"conv_forward: stride > 1 with dilation > 1": 10}),
                            _result("forward-values", dtype="float32", examples=0, checked=0, status="not covered")])
    declines_all = _report("none", [_result("forward-values", status="not covered", checked=0, declined=20)])
    matrix = compose({"full": full, "half": half, "none": declines_all}, "convspec matrix full half none")
    assert "| forward-values | pass | pass (50%; 50% declined); nothing checked in float32 | not covered (all declined) |" in (
        matrix), matrix
    assert "| backward-values | pass | not supported | not supported |" in matrix, matrix
    assert "- half: conv_forward: stride > 1 with dilation > 1 (10)" in matrix, matrix
    assert "- none: (no reason given) (20)" in matrix, matrix
    assert "**half**: x 1; declined 50% of its 20 examples" in matrix, matrix
    assert "**max_pool**" not in matrix  # no backend ran it: no table


def test_the_readme_example_backend_is_conformant_from_its_own_directory() -> None:
    import subprocess

    examples = Path(__file__).resolve().parents[1] / "examples"
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "check", "mykernels", "--profile", "quick"],
                          cwd=examples, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CONFORMANT: mykernels" in done.stdout


# --------------------------------------------------------------------------- Unix manners

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("argv", "says"), [
    (["check", "reference", "--seed", "-1"], "--seed: '-1': must be a whole number from 0 to"),
    (["check", "reference", "--seed", "1.5"], "--seed: '1.5' is not a whole number"),
    (["check", "reference", "--import-timeout", "0"], "--import-timeout: '0': must be a finite number of seconds"),
])
def test_invalid_numbers_are_rejected_in_one_line(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and says in err[0], err


def test_the_report_path_is_checked_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    for path, says in ((tmp_path / "file" / "r.json", "is not a directory"), (tmp_path, "use a .json, .md or .xml"),
                       (tmp_path / "dir.json", "is a directory")):
        if path.suffix == ".json" and says == "is a directory":
            path.mkdir()
        assert main(["check", "no_such_backend_anywhere", "--report", str(path)]) == 2  # before loading the backend
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0] and "--report" in err[0], err


def test_reports_are_created_with_the_users_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        assert main(["check", "reference", "--profile", "quick", "--ops", "linear", "--dtypes", "float64",
                     "--report", str(tmp_path / "r.json"), "--isolation", "none"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o640


def test_a_closed_pipe_ends_the_output_quietly_and_the_report_is_still_written(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    process = subprocess.Popen([sys.executable, "-m", "conformance.cli", "check", "reference", "--profile", "quick",
                                "--ops", "linear", "--dtypes", "float64", "--report", str(out)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None and process.stderr is not None
    header = process.stdout.readline()  # like `| head -1`
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(120) == 0, err
    assert "runs linear in float64" in header, header
    assert err == "", err
    assert json.loads(out.read_text())["conformant"] is True


def test_the_header_says_what_will_actually_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.misbehaving.declines_strides", "--profile", "quick", "--ops", "conv,linear",
                 "--dtypes", "float64", "--isolation", "none"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "runs conv in float64; not run: linear (no linear_forward)" in header, header

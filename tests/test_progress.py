"""Progress of a run: a live bar with elapsed time and ETA on a terminal, one line per item elsewhere."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from conformance.compare import Violation
from conformance.findings import Finding
from conformance.progress import RunProgress
from conformance.report import progress_line
from conformance.results import RuleResult

ROOT = Path(__file__).resolve().parents[1]


def _results() -> list[RuleResult]:
    bad = RuleResult("forward-values", "values", "conv", "float32", "failed", 3, 0.1,
                     [Finding(Violation("forward-values", "y differs from the expected value"))])
    return [RuleResult("output-shape", "shapes", "conv", "float32", "passed", 4, 0.1), bad,
            RuleResult("adjoint", "adjoint", "conv", "float32", "passed", 4, 0.1)]


def test_not_a_terminal_prints_one_line_per_item() -> None:
    stream = io.StringIO()
    results = _results()
    with RunProgress(stream) as progress:
        assert not progress.live
        for i, result in enumerate(results, start=1):
            progress(i, len(results), result)
    assert stream.getvalue().splitlines() == [progress_line(i, 3, r) for i, r in enumerate(results, start=1)]


def test_a_terminal_gets_a_bar_with_elapsed_time_and_eta_and_the_failures() -> None:
    stream = io.StringIO()
    results = _results()
    with RunProgress(stream, live=True) as progress:
        for i, result in enumerate(results, start=1):
            progress(i, len(results), result)
            time.sleep(0.1)
    out = stream.getvalue()
    assert "elapsed" in out and "left" in out and "3/3" in out
    assert progress_line(2, 3, results[1]) in out  # failures are printed above the bar
    assert progress_line(1, 3, results[0]) not in out  # passing items only move the bar


def test_convspec_check_in_a_pseudo_terminal_shows_the_bar() -> None:
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLUMNS": "120"}
    process = subprocess.Popen([sys.executable, "-m", "conformance.cli", "check", "reference", "--profile", "quick",
                                "--ops", "linear", "--dtypes", "float64", "--isolation", "none", "--no-database"],
                               stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == 0
    out = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in out and "elapsed" in out  # a live bar, redrawn in place
    assert "[  1/9]" not in out  # not the line-per-item log
    assert "CONFORMANT: reference" in out

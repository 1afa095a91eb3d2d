"""Calibration of the conformance suite: it catches real bugs and raises no false alarms.

1. Every backend of :mod:`tests.broken.bank` (one realistic bug each) fails the
   ``ci`` profile, the failure is reported by a rule expected to catch that bug,
   and the failure text names expected vs actual (or the contract broken).
2. The reference passes ``ci`` once per operation of the registry: seed k runs
   the k-th operation in every dtype (the three added later included).
3. Correct backends that round differently (:mod:`tests.broken.correct`: FFT
   convolution, float16 and bfloat16 summed in float32 or, declared, in their
   own dtype, other summation orders) pass ``ci`` in every (operation, dtype)
   pair they declare: seed k runs the k-th pair, once (a backend of fewer pairs
   than another no longer runs its pairs again under further seeds), and only
   the rules that compare values under the accuracy bound.
4. A failure's reproduction snippet fails against the broken backend and passes
   against the reference: the first snippet of each failing rule, at most two per
   report (each a Python start-up; they were a sixth of this file's time).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import reference
import spec
from conformance.loader import LoadedBackend
from conformance.report import failure_text, render_text, to_markdown
from conformance.results import RunReport
from conformance.rules import RULES
from conformance.runner import run
from tests.broken.bank import BANK, assert_caught, target
from tests.broken.correct import CORRECT

ROOT = Path(__file__).resolve().parents[1]


def loaded(name: str, target: str, obj: object) -> LoadedBackend:
    return LoadedBackend(name, target, obj, spec.supported_functions(obj), spec.capabilities_of(obj))


def with_reference(snippet: str) -> str:
    """The snippet with ``backend`` bound to the reference instead of the backend under test."""
    lines = snippet.splitlines()
    hits = [k for k, line in enumerate(lines) if line.startswith(("from tests.broken.bank import", "import tests."))]
    assert len(hits) == 1, f"no single backend import line in:\n{snippet}"
    lines[hits[0]] = "import reference as backend"
    return "\n".join(lines) + "\n"


def run_snippet(source: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run a snippet as printed, as a script in a temporary directory, with the project importable."""
    path = tmp / f"snippet_{abs(hash(source))}.py"
    path.write_text(source)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def assert_snippets_reproduce(report: RunReport, tmp: Path) -> int:
    """Every snippet of the report (each finding's) fails against the backend and passes against the reference."""
    snippets = [("\n".join(f.violation.snippet), f"{r.rule} [{r.op}, {r.dtype}]")
                for r in report.failures for f in r.findings]
    assert snippets and all(s for s, _ in snippets), f"a finding without a snippet:\n{render_text(report)}"
    jobs = [source for s, _ in snippets for source in (s, with_reference(s))]
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda source: run_snippet(source, tmp), jobs))
    for k, (source, where) in enumerate(snippets):
        broken, fixed = outcomes[2 * k], outcomes[2 * k + 1]
        assert broken.returncode != 0, f"{where}: the snippet exits 0 against the broken backend:\n{source}"
        assert "Error" in broken.stderr, f"{where}: the snippet fails without an error message:\n{broken.stderr}"
        assert fixed.returncode == 0, f"{where}: the snippet fails against the reference:\n{source}\n{fixed.stderr}"
    return len(snippets)


def test_bank_has_at_least_25_bugs() -> None:
    assert len(BANK) >= 25, f"len(BANK)={len(BANK)}, but should be >= 25"


@pytest.mark.parametrize("name", sorted(BANK))
def test_broken_backend_is_caught(name: str, tmp_path: Path) -> None:
    entry = BANK[name]
    report = run(loaded(name, target(name), entry.obj), ops=entry.ops, dtypes=entry.dtypes,
                 profile="ci", seed=0, fail_fast=True)
    text = assert_caught(entry, report, "by the ci profile")
    assert entry.says in text, f"failure text lacks {entry.says!r}:\n{text}"
    if entry.says == "expected":
        assert "actual" in text, f"failure text names no actual value:\n{text}"
    if "empty-batch" not in name:  # general bugs shrink to N >= 1, never to an empty batch
        violation = report.failures[0].violation
        case = violation.case if violation is not None else None
        assert case is None or case.problem.x_shape[0] >= 1, f"minimal case with N = 0:\n{text}"
    assert_snippets_reproduce(report, tmp_path)
    assert_messages_readable(report)
    expected = MINIMAL_CASES.get(name)
    if expected is not None:
        assert_minimal_case(report, *expected)


#: Bank entries whose minimal case is known: (N, spatial rank, whether the values shrink to small positive integers).
#: Shrinking moves towards N = 1, 1-D and small positive values, and stops where the bug needs more.
MINIMAL_CASES: dict[str, tuple[int, int, bool]] = {
    "conv-bias-twice": (1, 1, True),
    "conv-padding-after": (1, 1, True),
    "conv-db-first-sample-only": (2, 1, True),  # the bug lives in the second sample: N = 2 is the least
    "conv-transposed-kernel": (1, 2, True),  # reading the kernel's axes in reverse needs two of them
    "conv-3d-only-layout": (1, 3, True),  # the bug is in the 3-D path alone
    "maxpool-ties-last": (1, 1, True),
    "linear-db-mean": (2, 0, True),
}


def assert_minimal_case(report: RunReport, n: int, rank: int, positive: bool) -> None:
    violation = report.failures[0].violation
    assert violation is not None and violation.case is not None, render_text(report)
    problem, inputs = violation.case.problem, violation.case.inputs
    assert problem.x_shape[0] == n, f"minimal case with N = {problem.x_shape[0]}, but should be {n}: {problem.describe()}"
    assert len(problem.x_shape) - 2 == rank, f"minimal case of rank {len(problem.x_shape) - 2}: {problem.describe()}"
    if positive:
        for name, values in inputs.named().items():
            assert set(np.unique(values)) <= {1.0, 2.0, 3.0}, f"{name} = {values.ravel()}: not small positive integers"


def assert_messages_readable(report: RunReport) -> None:
    """#11 item 5: plain numbers, the digits that show a difference (and its ULPs), anchored links, Markdown rows."""
    for result in report.failures:
        text = failure_text(result).split("reproduce with:")[0]
        assert not re.search(r"np\.(float|int|bool|True_|False_)\w*\(?", text), f"a NumPy repr in:\n{text}"
        for expected, actual in re.findall(r"expected (\S+), actual (\S+),", text):
            assert expected != actual, f"expected and actual print alike ({expected}):\n{text}"
        assert all("ulp of" in line for line in text.splitlines() if "|error|" in line), text
        assert all("#" in link for link in re.findall(r"spec/docs/\S*", text)), f"a link without an anchor:\n{text}"
    markdown = to_markdown(report)
    table = [line for line in markdown.split("```")[0].splitlines() if line.startswith("|")]
    widths = {len(re.split(r"(?<!\\)\|", line)) for line in table}
    assert len(widths) == 1, f"Markdown table rows of different widths:\n{chr(10).join(table)}"


@pytest.mark.parametrize("seed", range(len(spec.OPERATIONS)))
def test_reference_has_no_false_alarms(seed: int) -> None:
    op = list(spec.OPERATIONS)[seed]  # every operation once, each under its own seed
    report = run(loaded("reference", "reference", reference), ops=(op,), dtypes=spec.DTYPES, profile="ci", seed=seed)
    assert report.conformant, render_text(report)
    assert {r.dtype for r in report.results} == set(spec.DTYPES)


#: Rules whose checks do not involve rounding (shapes, errors, the empty batch) are left to the reference's run.
ROUNDING_RULES = [r for r in RULES if r.id not in ("output-shape", "invalid-params", "empty-batch")]


def pairs_of(name: str) -> list[tuple[spec.OpName, str]]:
    """The (operation, dtype) pairs a correct backend declares."""
    _, dtypes, ops = CORRECT[name]
    return [(op, dtype) for dtype in dtypes for op in ops]


@pytest.mark.parametrize(("name", "seed"), [(name, seed) for name in sorted(CORRECT) for seed in range(len(pairs_of(name)))])
def test_correct_backend_that_rounds_differently_passes(name: str, seed: int) -> None:
    obj = CORRECT[name][0]
    op, dtype = pairs_of(name)[seed]
    report = run(loaded(name, "tests.broken.correct", obj), ops=(op,), dtypes=(dtype,), profile="ci", seed=seed,
                 rules=ROUNDING_RULES)
    assert report.conformant, render_text(report)
    unchecked = [r for r in report.results if "not checked" in r.note]
    assert not unchecked or spec.capabilities_of(obj).accumulation, [r.note for r in unchecked]


def test_three_independent_bugs_in_one_op_are_all_reported(tmp_path: Path) -> None:
    """Bias added twice (forward), dw ignoring dilation and db averaged over space: all three in one run."""
    from conformance.rules import RULES_BY_ID
    from tests.broken.bank import THREE_BUGS

    rules = [RULES_BY_ID[r] for r in ("forward-values", "backward-values")]
    report = run(loaded("three-bugs", "tests.broken.bank:THREE_BUGS", THREE_BUGS), ops=("conv",), dtypes=("float64",),
                 profile="ci", seed=0, rules=rules)
    found = {(r.rule, f.violation.summary.split(" ")[0]) for r in report.failures for f in r.findings}
    assert {("forward-values", "y"), ("backward-values", "dw"), ("backward-values", "db")} <= found, render_text(report)
    dw = next(f for r in report.failures for f in r.findings if f.violation.summary.startswith("dw"))
    assert dw.violation.case is not None and any(d > 1 for d in dw.violation.case.problem.params["dilation"])
    text = render_text(report)
    assert text.lstrip().startswith("start here"), f"the summary does not start with the root causes:\n{text}"
    assert len([line for line in text.splitlines() if line.startswith("  ") and line.strip()[:2] in ("1.", "2.", "3.")]) == 3
    assert_snippets_reproduce(report, tmp_path)


#: Bank backends whose bug the relation rules (and invalid-params) catch, and the function the bug is in:
#: their snippets must reproduce too, calling that function.
RELATION_RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "conv-dilation-ignored-in-dw": (("correlate2d", "adjoint"), "conv_backward"),
    "maxpool-grad-assigned": (("finite-differences",), "max_pool_backward"),
    "avgpool-grad-assigned": (("adjoint",), "avg_pool_backward"),
    "linear-weight-transposed": (("metamorphic", "finite-differences"), "linear_forward"),
    "conv-invalid-accepted": (("invalid-params",), "conv_forward"),
}


@pytest.mark.parametrize("name", sorted(RELATION_RULES))
def test_relation_and_invalid_call_snippets_reproduce(name: str, tmp_path: Path) -> None:
    from conformance.rules import RULES_BY_ID

    entry = BANK[name]
    rule_ids, function = RELATION_RULES[name]
    report = run(loaded(name, target(name), entry.obj), ops=entry.ops, dtypes=entry.dtypes[:1], profile="quick",
                 seed=0, rules=[RULES_BY_ID[r] for r in rule_ids])
    assert {r.rule for r in report.failures} == set(rule_ids), render_text(report)
    for r in report.failures:
        for f in r.findings:
            case = f.violation.case
            assert case is None or case.problem.x_shape[0] >= 1, f"{r.rule}: minimal case with N = 0: {case}"
            snippet = "\n".join(f.violation.snippet)
            assert f.function == function and f"backend.{function}" in snippet, (
                f"{r.rule}: the reproduction's failing call is {f.function}, not {function}:\n{snippet}")
            if r.rule == "invalid-params":
                assert f"expect_raises(backend.{function}, " in snippet, snippet
    assert_snippets_reproduce(report, tmp_path)

"""Calibration of the conformance suite: it catches real bugs and raises no false alarms.

1. Every backend of :mod:`tests.broken.bank` (one realistic bug each) fails the
   ``ci`` profile, the failure is reported by a rule expected to catch that bug,
   and the failure text names expected vs actual (or the contract broken).
2. The reference passes ``ci`` for ten seeds. To keep this file fast, seed k
   runs one operation, ``ALL_OPS[k % 4]``, in all three dtypes: across the ten
   seeds every operation runs under two or three seeds, every dtype under all ten.
3. Correct backends that round differently (:mod:`tests.broken.correct`: FFT
   convolution, float16 summed in float16, other summation orders) pass ``ci``.
"""

from __future__ import annotations

import pytest

import reference
import spec
from conformance.loader import LoadedBackend
from conformance.report import failure_text, render_text
from conformance.rules import ALL_OPS
from conformance.runner import run
from tests.broken.bank import BANK
from tests.broken.correct import CORRECT


def loaded(name: str, target: str, obj: object) -> LoadedBackend:
    return LoadedBackend(name, target, obj, spec.supported_functions(obj), spec.capabilities_of(obj))


def test_bank_has_at_least_25_bugs() -> None:
    assert len(BANK) >= 25, f"len(BANK)={len(BANK)}, but should be >= 25"


@pytest.mark.parametrize("name", sorted(BANK))
def test_broken_backend_is_caught(name: str) -> None:
    entry = BANK[name]
    report = run(loaded(name, f"tests.broken.bank ({name})", entry.obj), ops=entry.ops, dtypes=entry.dtypes,
                 profile="ci", seed=0, fail_fast=True)
    assert report.failures, f"bug not caught by the ci profile: {entry.bug}\n{render_text(report)}"
    first = report.failures[0]
    text = failure_text(first)
    assert first.status == "failed" and first.violation is not None, f"the suite itself failed:\n{text}"
    caught_by = {first.rule, first.violation.rule}
    assert caught_by & entry.rules, (
        f"caught by {sorted(caught_by)}, but should be one of {sorted(entry.rules)} [{entry.bug}]\n{text}")
    assert entry.says in text, f"failure text lacks {entry.says!r}:\n{text}"
    if entry.says == "expected":
        assert "actual" in text, f"failure text names no actual value:\n{text}"


@pytest.mark.parametrize("seed", range(10))
def test_reference_has_no_false_alarms(seed: int) -> None:
    op = ALL_OPS[seed % len(ALL_OPS)]
    report = run(loaded("reference", "reference", reference), ops=(op,), dtypes=spec.DTYPES, profile="ci", seed=seed)
    assert report.conformant, render_text(report)
    assert {r.dtype for r in report.results} == set(spec.DTYPES)


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_backend_that_rounds_differently_passes(name: str) -> None:
    obj, dtypes, ops = CORRECT[name]
    report = run(loaded(name, "tests.broken.correct", obj), ops=ops, dtypes=dtypes, profile="ci", seed=0)
    assert report.conformant, render_text(report)

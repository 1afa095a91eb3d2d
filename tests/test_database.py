"""Failing examples are saved in Hypothesis's example database and replayed first on the next run."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import reference
import spec
from conformance.cli import main
from conformance.database import example_key, open_database
from conformance.loader import load_backend
from conformance.rules import RULES_BY_ID
from conformance.runner import run

ONE_RULE = [RULES_BY_ID["forward-values"]]


def _linear_backend(name: str, *, broken: bool) -> types.ModuleType:
    """A linear layer that is wrong only for batches of 3 or more with 3 or more features: not found at once."""
    module = types.ModuleType(name)
    module.CAPABILITIES = spec.Capabilities(dtypes=frozenset({"float64"}))  # type: ignore[attr-defined]

    def linear_forward(x: Any, w: Any, b: Any) -> Any:
        y = reference.linear_forward(x, w, b)
        if broken and x.shape[0] >= 3 and x.shape[1] >= 3:
            y[-1, 0] += 1.0
        return y

    module.linear_forward = linear_forward  # type: ignore[attr-defined]
    return module


@pytest.fixture
def linear_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = _linear_backend("convspec_db_linear", broken=True)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def _forward_values(report: Any) -> Any:
    return next(r for r in report.results if r.rule == "forward-values")


def _linear(backend: Any, profile: str = "ci", seed: int = 0, database: Any = None) -> Any:
    """The forward-values result of one run of ``backend`` on linear, float64."""
    return _forward_values(run(backend, ops=["linear"], dtypes=["float64"], profile=profile, seed=seed, rules=ONE_RULE,
                               database=database))


def test_a_failure_is_saved_and_replayed_first_on_the_next_run(linear_module: types.ModuleType, tmp_path: Path) -> None:
    backend = load_backend(linear_module.__name__)
    database = open_database(tmp_path / "examples")
    assert database is not None
    key = example_key(backend.target, "forward-values", "linear", "float64")

    first = _linear(backend, database=database)
    assert first.status == "failed" and not first.replayed
    assert list(database.fetch(key)), "the failing example was not saved under its rule x op x dtype key"

    second = _linear(backend, seed=1, database=database)
    assert second.status == "failed" and second.replayed
    assert second.examples < first.examples  # found on the first call instead of by searching again
    assert second.violation is not None and first.violation is not None
    assert second.violation.case_text == first.violation.case_text  # the same minimal case

    # Without the database the same seed searches from scratch.
    fresh = _linear(backend, seed=1)
    assert not fresh.replayed and fresh.examples > second.examples


def test_a_fixed_backend_replays_the_saved_case_and_it_is_dropped(linear_module: types.ModuleType, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    database = open_database(tmp_path / "examples")
    assert database is not None
    backend = load_backend(linear_module.__name__)
    key = example_key(backend.target, "forward-values", "linear", "float64")
    assert _linear(backend, "quick", database=database).status == "failed"
    assert list(database.fetch(key))
    fixed = _linear_backend(linear_module.__name__, broken=False)
    monkeypatch.setitem(sys.modules, fixed.__name__, fixed)
    assert _linear(load_backend(fixed.__name__), "quick", database=database).status == "passed"
    assert not list(database.fetch(key))  # Hypothesis drops an example that no longer fails


def test_cli_default_database_and_no_database(linear_module: types.ModuleType, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVSPEC_DATABASE")
    argv = ["check", linear_module.__name__, "--profile", "quick", "--isolation", "none", "--ops", "linear"]
    assert main([*argv, "--no-database"]) == 1
    assert not (tmp_path / ".convspec").exists()
    assert main(argv) == 1
    assert any((tmp_path / ".convspec" / "examples").iterdir())  # the default, under the working directory
    capsys.readouterr()
    assert main(argv) == 1
    assert "replayed a saved failing example" in capsys.readouterr().out


def test_database_that_is_a_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("")
    assert main(["check", "reference", "--profile", "quick", "--database", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err


def test_keys_differ_per_backend_rule_op_and_dtype() -> None:
    keys = {example_key(t, r, o, d) for t in ("a", "b") for r in ("forward-values", "adjoint") for o in ("conv", "linear")
            for d in ("float32", "float64")}
    assert len(keys) == 16
    assert np.unique([len(k) > 0 for k in keys]).tolist() == [True]

"""convspec check --dask ADDRESS: the shards run as tasks on a (local) Dask cluster and are merged."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import LocalCluster

import conformance.distributed
from conformance.cli import main
from conformance.loader import load_backend
from conformance.merge import load_report
from conformance.report import to_dict
from conformance.runner import run


def test_dask_run_equals_the_single_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--profile", "quick", "--ops", "max_pool,linear", "--dtypes", "float64,float32", "--no-database"]
    report = tmp_path / "dask.json"
    # One thread in the scheduler's process: the tasks run one after another, each with its own backend worker.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code = main(["check", "reference", *options, "--dask", cluster.scheduler_address, "--dask-tasks", "3",
                     "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 shards on the Dask cluster" in out and "each in a worker process" in out
    assert out.count("] shard ") == 3
    single = run(load_backend("reference"), ops=["max_pool", "linear"], dtypes=["float64", "float32"], profile="quick")
    assert to_dict(load_report(str(report)), timings=False) == to_dict(single, timings=False)

def test_unreachable_scheduler_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conformance.distributed, "CONNECT_TIMEOUT", 1.0)
    code = main(["check", "reference", "--profile", "quick", "--dask", "tcp://127.0.0.1:9", "--no-database"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the scheduler" in err


def test_dask_and_shard_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "reference", "--dask", "tcp://127.0.0.1:9", "--shard", "1/2"]) == 2
    assert "leave out --shard" in capsys.readouterr().err


def test_each_dask_task_runs_the_backend_in_a_worker_process(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend that aborts would take this very process down (the cluster runs in it) without the isolation."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    report = tmp_path / "abort.json"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code = main(["check", "tests.misbehaving.abort", "--profile", "quick", "--ops", "conv", "--dtypes", "float64",
                     "--fail-fast", "--dask", cluster.scheduler_address, "--dask-tasks", "2", "--no-database", "--report",
                     str(report)])
    assert code == 1, capsys.readouterr().out
    merged = load_report(str(report))
    crashes = [r for r in merged.failures if r.violation is not None and r.violation.kind == "crash"]
    assert crashes and "SIGABRT" in crashes[0].violation.summary

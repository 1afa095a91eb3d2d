"""Sharded runs: --shard K/N splits the plan, convspec merge puts the reports back together, and the
GitHub Actions workflow in docs/ci/ does both."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import types
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import yaml

import reference
from conformance.cli import main
from conformance.loader import load_backend
from conformance.merge import load_report
from conformance.report import failure_text, to_dict
from conformance.runner import make_plan, run
from conformance.shard import Shard, assign

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "ci" / "convspec-shards.yml"


@pytest.fixture
def flipped_module(monkeypatch: pytest.MonkeyPatch) -> str:
    """A backend whose convolution flips the kernel, and whose max pooling is right."""
    module = types.ModuleType("convspec_shard_flipped")

    def conv_forward(x: Any, w: Any, b: Any, **kw: Any) -> Any:
        flipped = np.ascontiguousarray(w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)])
        return reference.conv_forward(x, flipped, b, **kw)

    module.conv_forward = conv_forward  # type: ignore[attr-defined]
    module.max_pool_forward = reference.max_pool_forward  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module.__name__


@pytest.mark.parametrize("count", [1, 2, 3, 7, 60])
def test_every_plan_item_is_in_exactly_one_shard_and_shards_are_balanced(count: int) -> None:
    plan, _ = make_plan(load_backend("reference"), ["conv", "max_pool", "avg_pool", "linear"],
                        ["float64", "float32", "float16"], "thorough")
    shards = [Shard(k, count).select(plan) for k in range(1, count + 1)]
    assert sorted(id(item) for shard in shards for item in shard) == sorted(id(item) for item in plan)
    loads = [sum(item.examples for item in shard) for shard in shards]
    assert max(loads) - min(loads) <= max(item.examples for item in plan)  # greedy by example budget
    assert assign(plan, count) == assign(list(plan), count)  # a function of the plan alone
    assert all(shard == [item for item in plan if item in shard] for shard in shards)  # plan order kept


def test_merged_shards_equal_the_unsharded_run_of_the_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--profile", "quick", "--dtypes", "float32", "--isolation", "none", "--no-database"]
    for k in (1, 2, 3):
        assert main(["check", "reference", *options, "--shard", f"{k}/3", "--report", str(tmp_path / f"s{k}.json")]) == 0
    merged = tmp_path / "merged.json"
    assert main(["merge", *(str(tmp_path / f"s{k}.json") for k in (3, 1, 2)), "--report", str(merged)]) == 0
    assert "CONFORMANT: reference" in capsys.readouterr().out
    single = run(load_backend("reference"), dtypes=["float32"], profile="quick")
    single_data = to_dict(single, timings=False)
    merged_data = to_dict(load_report(str(merged)), timings=False)
    assert merged_data == single_data
    assert len(merged_data["results"]) == len(single.results) > 20


def test_merged_failures_read_as_in_the_unsharded_run(flipped_module: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--profile", "quick", "--ops", "conv", "--dtypes", "float64", "--isolation", "none", "--no-database"]
    codes = [main(["check", flipped_module, *options, "--shard", f"{k}/2", "--report", str(tmp_path / f"s{k}.json")])
             for k in (1, 2)]
    assert 1 in codes  # the shard holding a failing rule fails; the other may pass
    outputs = [str(tmp_path / f"m{suffix}") for suffix in (".json", ".md", ".xml")]
    args = ["merge", str(tmp_path / "s1.json"), str(tmp_path / "s2.json")]
    assert main([*args, *(a for path in outputs for a in ("--report", path))]) == 1
    assert "NOT CONFORMANT" in capsys.readouterr().out
    single = run(load_backend(flipped_module), ops=["conv"], dtypes=["float64"], profile="quick")
    merged = load_report(outputs[0])
    assert to_dict(merged, timings=False) == to_dict(single, timings=False)
    assert [failure_text(r) for r in merged.failures] == [failure_text(r) for r in single.failures]
    assert "minimal case: conv" in failure_text(merged.failures[0])
    assert "reproduce with:" in Path(outputs[1]).read_text()
    suite = ET.parse(outputs[2]).getroot()
    assert int(suite.get("failures", "0")) == len(single.failures) > 0


@pytest.mark.parametrize(("shards", "message"), [
    ((1,), "shard(s) 2/2 missing"),
    ((1, 1), "given twice"),
    ((1, "seed"), "from another run: seed"),
    ((1, "plain"), "is not a shard"),
    ((1, "text"), "is not JSON"),
    ((1, "absent"), "cannot read"),
])
def test_merge_refuses_what_is_not_one_whole_run(shards: tuple[Any, ...], message: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--profile", "quick", "--ops", "linear", "--dtypes", "float64", "--isolation", "none", "--no-database"]
    paths = []
    for i, shard in enumerate(shards):
        path = tmp_path / f"r{i}.json"
        if shard == "text":
            path.write_text("not json")
        elif shard != "absent":
            extra = {"seed": ["--seed", "5", "--shard", "2/2"], "plain": []}.get(str(shard), ["--shard", f"{shard}/2"])
            main(["check", "reference", *options, *extra, "--report", str(path)])
        paths.append(str(path))
    capsys.readouterr()
    assert main(["merge", *paths]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("value", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_invalid_shard_is_a_one_line_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "reference", "--shard", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--shard" in err


def test_an_empty_shard_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """More shards than plan items leaves some empty: no failures there, and the verdict is merge's."""
    argv = ["check", "reference", "--profile", "quick", "--ops", "linear", "--dtypes", "float64", "--isolation", "none"]
    assert main([*argv, "--shard", "40/40"]) == 0
    assert "NO FAILURES IN SHARD 40/40" in capsys.readouterr().out


# --------------------------------------------------------------------------- the GitHub Actions workflow

def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def test_workflow_is_a_matrix_of_shards_then_a_merge() -> None:
    data = _workflow()
    assert data.get("on", data.get(True))  # YAML 1.1 reads the key `on` as True
    shard_job, merge_job = data["jobs"]["shard"], data["jobs"]["merge"]
    shards = shard_job["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(data["env"]["SHARDS"]) + 1))
    assert shard_job["strategy"]["fail-fast"] is False  # every shard reports, even when one fails
    assert merge_job["needs"] == "shard" and merge_job["if"] == "always()"
    assert data["env"]["PROFILE"] == "thorough"
    uploads = [s for s in shard_job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"
    caches = [s for s in shard_job["steps"] if str(s.get("uses", "")).startswith("actions/cache")]
    assert caches and caches[0]["with"]["path"] == ".convspec/examples"


def _commands(job: dict[str, Any], shard: int) -> list[str]:
    """The convspec commands of a job, as this checkout runs them (python -m conformance.cli)."""
    commands = []
    for step in job["steps"]:
        text = step.get("run", "")
        if text.startswith("convspec "):
            text = text.replace("${{ matrix.shard }}", str(shard))
            commands.append(f"{shlex.quote(sys.executable)} -m conformance.cli {text.removeprefix('convspec ')}")
    return commands


def test_workflow_commands_run_locally_on_two_shards_then_merge(tmp_path: Path) -> None:
    data = _workflow()
    env = {**os.environ, **{k: str(v) for k, v in data["env"].items()}, "PYTHONPATH": str(ROOT), "SHARDS": "2",
           "PROFILE": "quick", "OPTIONS": "--ops linear,max_pool --dtypes float64 --isolation none"}
    for shard in (1, 2):
        for command in _commands(data["jobs"]["shard"], shard):
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"shard {shard}/2" in done.stdout
    (tmp_path / "shards").mkdir()
    for shard in (1, 2):  # what download-artifact does
        (tmp_path / f"shard-{shard}.json").rename(tmp_path / "shards" / f"shard-{shard}.json")
    [command] = _commands(data["jobs"]["merge"], 0)
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    merged = json.loads((tmp_path / "convspec.json").read_text())
    assert merged["conformant"] and merged["shard"] is None
    assert {r["op"] for r in merged["results"]} == {"linear", "max_pool"}
    assert (tmp_path / "convspec.md").read_text().startswith("# convspec check reference")
    assert ET.parse(tmp_path / "convspec.xml").getroot().get("tests") == str(len(merged["results"]))

"""``convspec bench``: the problem grammar, the FLOP counts, and a quick run of the command."""

from __future__ import annotations

import argparse
import doctest
import importlib.util
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conformance.bench_shapes as bench_shapes
from conformance import bench
from conformance.bench_shapes import (
    SHAPE_SETS,
    Flops,
    Problem,
    ProblemSyntaxError,
    check_problem,
    conv_flops,
    flops,
    format_problem,
    linear_flops,
    max_pool_flops,
    parse_problem,
)
from conformance.cli import main
from conformance.loader import load_backend
from spec import OPERATIONS, Capabilities, OpName

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache directory: no test reads or writes the user's ceiling cache."""
    directory = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("CONVSPEC_CACHE_DIR", str(directory))
    return directory


# ---- the problem grammar --------------------------------------------------------------------------------


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    """Any valid problem: every op, 1 to 3 spatial dims, groups, dilation, asymmetric padding, flags."""
    op: OpName = draw(st.sampled_from(list(OPERATIONS)))
    record = OPERATIONS[op]
    n, c = draw(st.integers(0, 64)), draw(st.integers(1, 64))
    if record.windowing == "none":
        return Problem(op, n, c, draw(st.integers(1, 64)))
    ndim = draw(st.integers(1, 3))
    if record.windowing == "adaptive":
        spatial = tuple(draw(st.integers(1, 40)) for _ in range(ndim))
        adaptive = Problem(op, n, c, c, spatial, output_size=tuple(draw(st.integers(1, 50)) for _ in range(ndim)))
        check_problem(adaptive)
        return adaptive

    def per_dim(low: int, high: int) -> tuple[int, ...]:
        if draw(st.booleans()):
            return (draw(st.integers(low, high)),) * ndim
        return tuple(draw(st.integers(low, high)) for _ in range(ndim))

    kernel, stride, dilation = per_dim(1, 5), per_dim(1, 4), per_dim(1, 3)
    padding = tuple((draw(st.integers(0, 4)), draw(st.integers(0, 4))) for _ in range(ndim))
    if draw(st.booleans()):
        padding = (padding[0],) * ndim
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 40)) for k, d in zip(kernel, dilation))
    groups, o, extra = 1, c, ()
    if "groups" in record.param_names:
        groups = draw(st.sampled_from([g for g in (1, 2, 4, c) if c % g == 0]))
        o = groups * draw(st.integers(1, 8))
    if "output_padding" in record.param_names:
        extra = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        padding = tuple((min(lo, d * (k - 1)), min(hi, d * (k - 1))) for (lo, hi), k, d in zip(padding, kernel, dilation))
    problem = Problem(
        op, n, c, o, spatial, kernel, stride, padding, dilation, groups,
        ceil_mode="ceil_mode" in record.param_names and draw(st.booleans()),
        count_include_pad="count_include_pad" not in record.param_names or draw(st.booleans()),
        output_padding=extra,
    )
    check_problem(problem)
    return problem


@settings(max_examples=300, deadline=None)
@given(problems())
def test_descriptor_round_trip(problem: Problem) -> None:
    text = format_problem(problem)
    assert parse_problem(text) == problem, f"parse_problem({text!r}) != {problem}"
    assert format_problem(parse_problem(text)) == text


@settings(max_examples=100, deadline=None)
@given(problems(), st.randoms())
def test_descriptor_tokens_in_any_order(problem: Problem, rng: random.Random) -> None:
    head, *tokens = format_problem(problem).split()
    rng.shuffle(tokens)
    assert parse_problem(" ".join([head, *tokens])) == problem


def test_descriptor_defaults_and_forms() -> None:
    p = parse_problem("conv2d n8 c64 h56 w56 o64 k3 p1")
    assert (p.stride, p.padding, p.dilation, p.groups) == ((1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    pool = parse_problem("mp2d n1 c2 h9 w9 k3x2 p1x0:1")
    assert pool.stride == (3, 2) and pool.padding == ((1, 1), (0, 1))
    avg = parse_problem("ap1d n1 c1 w8 k2 ceil exclpad")
    assert avg.ceil_mode and not avg.count_include_pad
    assert format_problem(parse_problem("conv1d n2 c64 w8000 o128 k2 p256:0 d256")) == (
        "conv1d n2 c64 w8000 o128 k2 s1 p256:0 d256"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("conv4d n1 c1 w4 o1 k1", "unknown head"),
        ("conv2d n1 c3 h8 w8 o4", "missing k"),
        ("conv2d n1 c3 h8 w8 o4 k3 k3", "given twice"),
        ("conv2d n1 c3 h8 w8 o4 k3x3x3", "one value or 2"),
        ("mp2d n1 c3 h8 w8 k2 g2", "unexpected token"),
        ("conv2d n1 c3 h8 w8 o4 k3 ceil", "does not apply"),
        ("conv2d n1 c3 h8 w8 o4 k3 g2", "must divide"),
        ("conv2d n1 c3 h2 w2 o4 k3", "output would be empty"),
        ("fc n1 c-3 o2", "not a non-negative integer"),
        ("conv1d n1 c1 w8 o1 k2 p1:2:3", "BEFORE:AFTER"),
        ("convt1d n1 c2 w4 o2 k3 s2 e2", "output_padding"),
        ("aap2d n1 c2 h4 w4", "missing a"),
        ("aap2d n1 c2 h4 w4 a2 k2", "unexpected token"),
        ("mpi2d n1 c2 h4 w4 k2 exclpad", "does not apply"),
    ],
)
def test_descriptor_errors(text: str, message: str) -> None:
    with pytest.raises(ProblemSyntaxError, match=message):
        parse_problem(text)


def test_shape_sets_parse_and_cover_what_they_claim() -> None:
    assert set(SHAPE_SETS) == {"resnet50", "vgg16", "mobilenet", "unet3d", "segmentation", "audio1d", "classifier"}
    for rows in SHAPE_SETS.values():
        for row in rows:
            assert parse_problem(row.descriptor) == row.problem, row.descriptor
    resnet = {row.descriptor for row in SHAPE_SETS["resnet50"]}
    assert "conv2d n8 c3 h224 w224 o64 k7 s2 p3" in resnet  # the 7x7 stride-2 stem
    assert "mp2d n8 c64 h112 w112 k3 s2 p1" in resnet
    assert any(r.problem.groups == r.problem.c > 1 for r in SHAPE_SETS["mobilenet"])  # depthwise
    assert all(r.problem.ndim == 3 for r in SHAPE_SETS["unet3d"])
    assert all(r.problem.ndim == 1 for r in SHAPE_SETS["audio1d"])
    assert {r.problem.op for r in SHAPE_SETS["classifier"]} == {"linear"}
    assert "aap2d n8 c2048 h7 w7 a1" in resnet  # the classifier head as adaptive (global) pooling
    decoder = [r.problem for r in SHAPE_SETS["segmentation"] if r.problem.op == "conv_transpose"]
    assert decoder and all(p.y_shape()[2:] == tuple(2 * n for n in p.spatial) for p in decoder)  # each doubles


def test_every_operation_has_a_head_a_flop_count_and_a_bench_problem() -> None:
    from conformance.bench_shapes import FLOP_COUNTS, HEADS

    assert set(HEADS) == set(OPERATIONS) == set(FLOP_COUNTS)
    assert len(set(HEADS.values())) == len(HEADS)
    benched = {row.problem.op for rows in SHAPE_SETS.values() for row in rows}
    assert benched == set(OPERATIONS)


@pytest.mark.parametrize(
    ("text", "y_shape", "forward_flops"),
    [
        ("convt1d n1 c3 w2 o2 k3", (1, 2, 4), 80),   # M = 1*3*2 inputs * 2 outputs/group * 3 taps = 36; 2M + 8
        ("convt2d n1 c4 h3 w3 o2 k3 s2 p1 e1 g2", (1, 2, 6, 6), 2 * 1 * 4 * 9 * 1 * 9 + 72),
        ("mpi1d n1 c1 w6 k2", (1, 1, 3), 3),
        ("aap1d n2 c1 w2 a3", (2, 1, 3), 2 * 4),     # windows [0,1), [0,2), [1,2): 4 taps per plane
        ("amp2d n1 c1 h4 w4 a1", (1, 1, 1, 1), 15),
    ],
)
def test_new_operations_in_the_grammar(text: str, y_shape: tuple[int, ...], forward_flops: int) -> None:
    problem = parse_problem(text)
    assert problem.y_shape() == y_shape
    assert flops(problem).forward == forward_flops
    assert parse_problem(format_problem(problem)) == problem


def test_module_doctests() -> None:
    result = doctest.testmod(bench_shapes, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# ---- FLOP counts, hand-counted ----------------------------------------------------------------------------


def test_conv_flops_hand_counted() -> None:
    # x (1, 2, 4), w (3, 2, 3): 2 output positions x 3 channels = 6 outputs, 2 * 3 = 6 products each:
    # 36 multiply-adds = 72 FLOPs + 6 bias adds; backward: 72 (dx) + 72 (dW) + 6 (db).
    assert conv_flops(parse_problem("conv1d n1 c2 w4 o3 k3")) == Flops(78, 150)
    # 2-D, stride 2, padding 1: a 5x5 input gives 3x3 outputs; groups 2 halves the products per output.
    # outputs = 2 samples * 4 channels * 9 = 72; products each = (4 / 2) * 3 * 3 = 18 -> 1296 multiply-adds.
    assert conv_flops(parse_problem("conv2d n2 c4 h5 w5 o4 k3 s2 p1 g2")) == Flops(2 * 1296 + 72, 4 * 1296 + 72)
    # 1x1: one product per input channel and output element.
    assert conv_flops(parse_problem("conv2d n1 c8 h2 w2 o2 k1")).forward == 2 * (2 * 4 * 8) + 2 * 4


def test_pool_and_linear_flops_hand_counted() -> None:
    # 4x4 input, 2x2 windows, stride 2: 4 outputs, 3 comparisons each; backward one add per output.
    assert max_pool_flops(parse_problem("mp2d n1 c1 h4 w4 k2")) == Flops(12, 4)
    # 3x3, stride 2, padding 1 on 5x5: 3x3 = 9 outputs, 8 comparisons each (padding taps count).
    assert flops(parse_problem("mp2d n1 c2 h5 w5 k3 s2 p1")) == Flops(2 * 9 * 8, 2 * 9)
    # average: 2 outputs of 3 taps: 2 adds + 1 divide each; backward 1 divide + 3 adds each.
    assert flops(parse_problem("ap1d n1 c1 w6 k3")) == Flops(6, 8)
    # linear 3 -> 4, batch 2: 24 multiply-adds; forward 48 + 8 bias, backward 48 (dx) + 48 (dW) + 8 (db).
    assert linear_flops(parse_problem("fc n2 c3 o4")) == Flops(56, 104)
    assert flops(parse_problem("fc n2 c3 o4")).of("fwd+bwd") == 160


def test_conv_flops_match_a_brute_force_count() -> None:
    """Count the multiply-adds of a tiny convolution by walking every (output, tap) pair."""
    problem = parse_problem("conv2d n2 c4 h6 w5 o6 k3x2 s2x1 p1:0x0:1 d1x2 g2")
    out = problem.out_spatial()
    macs = 0
    for _n, _o, _i, _j in np.ndindex(problem.n, problem.o, *out):
        macs += (problem.c // problem.groups) * math.prod(problem.kernel)
    outputs = problem.n * problem.o * math.prod(out)
    assert conv_flops(problem) == Flops(2 * macs + outputs, 4 * macs + outputs)


# ---- capabilities ------------------------------------------------------------------------------------------


def test_unsupported_reason_follows_capabilities() -> None:
    reference = load_backend("reference")
    narrow = type(reference)(
        "narrow", "reference", reference.obj, reference.functions,
        Capabilities(dtypes=frozenset({"float64"}), groups=False, pool_padding="half_kernel", spatial_ranks=frozenset({2})),
    )
    assert bench.unsupported_reason(narrow, parse_problem("conv2d n1 c4 h8 w8 o4 k3 g2"), "float64") == "groups"
    assert bench.unsupported_reason(narrow, parse_problem("conv2d n1 c4 h8 w8 o4 k3"), "float32") == "dtype float32"
    assert bench.unsupported_reason(narrow, parse_problem("conv1d n1 c4 w8 o4 k3"), "float64") == "1-D"
    assert bench.unsupported_reason(narrow, parse_problem("mp2d n1 c1 h8 w8 k2 p2"), "float64") == (
        "pool padding beyond half the kernel"
    )
    assert bench.unsupported_reason(narrow, parse_problem("mp2d n1 c1 h8 w8 k3 p1"), "float64") is None
    # Dilation does not count (spec.pool_padding_allowed): PyTorch rejects padding 2 for k=3 however dilated.
    assert bench.unsupported_reason(narrow, parse_problem("mp2d n1 c1 h9 w9 k3 p2 d2"), "float64") == (
        "pool padding beyond half the kernel"
    )


# ---- the command -------------------------------------------------------------------------------------------

QUICK = [
    "bench", "reference", "--quick", "--repeats", "2", "--dtypes", "float64,float32",
    "--problem", "conv2d n1 c2 h8 w8 o3 k3 s1 p1",
    "--problem", "mp2d n1 c2 h8 w8 k2",
    "--problem", "ap1d n1 c2 w9 k3 s2 p1 ceil exclpad",
    "--problem", "fc n2 c8 o4",
]


def test_quick_run_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "bench.json"
    assert main([*QUICK, "--report", str(report)]) == 0
    out, err = capsys.readouterr()
    assert "matmul ceiling" in out and "float64" in out and "float32" in out
    header = next(line for line in out.splitlines() if line.startswith("shape set"))
    assert header.split() == ["shape", "set", "layer", "problem", "dtype", "mode", "reference", "ms", "GFLOP/s", "%ceil"]
    rows = [line for line in out.splitlines() if line.startswith("problem ")]
    assert len(rows) == 4 * 2 * 3  # problems x dtypes x modes
    assert any("conv2d n1 c2 h8 w8 o3 k3 s1 p1" in r and "fwd+bwd" in r for r in rows)
    assert "[8/8" in err  # progress: one step per (problem, dtype)

    data = json.loads(report.read_text())
    assert data["backend"]["name"] == "reference" and data["baseline"] is None
    assert set(data["matmul_ceiling"]) == {"float64", "float32"}
    assert data["matmul_ceiling"]["float64"]["gflops"] > 0
    assert len(data["results"]) == 24
    first = data["results"][0]
    assert first["problem"] == "conv2d n1 c2 h8 w8 o3 k3 s1 p1" and first["mode"] == "forward"
    assert first["flops"] == conv_flops(parse_problem(first["problem"])).forward
    timing = first["backend"]
    assert timing["repeats"] == 2 and timing["min_s"] <= timing["median_s"] <= timing["max_s"]
    assert timing["gflops"] == pytest.approx(first["flops"] / timing["median_s"] / 1e9)
    assert timing["fraction_of_ceiling"] == pytest.approx(timing["gflops"] / data["matmul_ceiling"]["float64"]["gflops"])
    # The command line in the report re-runs the same problems.
    assert '--problem "fc n2 c8 o4"' in data["command"]
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file of the atomic write was left behind"


def test_quick_run_against_a_baseline_writes_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["bench", "reference", "--quick", "--repeats", "1", "--dtypes", "float64", "--problem", "fc n2 c8 o4"]
    # A module that is not a backend (no protocol functions): a load error, exit 2.
    assert main([*argv, "--against", "reference:conv_forward"]) == 2
    assert "not a backend" in capsys.readouterr().err
    # A second backend: the reference's linear layer under another module name.
    (tmp_path / "twin_backend.py").write_text("from reference import linear_backward, linear_forward\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    report = tmp_path / "bench.md"
    assert main([*argv, "--against", "twin_backend", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "twin_backend ms" in out and "ratio" in out
    text = report.read_text()
    assert text.startswith("# convspec bench reference")
    assert "## float64" in text and "| fc n2 c8 o4 |" in text and "| ratio [q1-q3] |" in text


def test_cpu_clock_is_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "cpu.json"
    argv = ["bench", "reference", "--quick", "--repeats", "1", "--dtypes", "float64", "--clock", "cpu",
            "--problem", "fc n2 c8 o4", "--report", str(report)]
    assert main(argv) == 0
    assert "time (cpu clock)" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["clock"] == "cpu" and "--clock cpu" in data["command"]


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib (convspec[plot]) is not installed")
def test_plot_is_a_png(tmp_path: Path) -> None:
    plot = tmp_path / "bench.png"
    assert main(["bench", "reference", "--quick", "--repeats", "1", "--dtypes", "float64",
                 "--problem", "conv1d n1 c2 w16 o2 k3", "--problem", "mp1d n1 c2 w16 k2", "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a)
    )
    assert main(["bench", "reference", "--quick", "--plot", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'convspec[plot]'" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ops", "conv,pool"], "--ops: unknown 'pool'"),
        (["--dtypes", "float128"], "--dtypes: unknown 'float128'"),
        (["--shapes", "alexnet"], "--shapes: unknown 'alexnet'"),
        (["--problem", "conv2d n1 c3 h8 w8 o4"], "missing k"),
        (["--report", "out.txt"], "must end in .json or .md"),
        (["--report", "/nonexistent-dir/out.json"], "does not exist"),
        (["--repeats", "0"], "--repeats 0: must be >= 1"),
        (["--ops", "linear", "--shapes", "unet3d"], "no problem left"),
        (["--pause", "-1"], "--pause -1.0: must be between 0 and 60"),
    ],
)
def test_usage_errors_exit_2_with_one_line(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "reference", "--quick", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convspec: error: ") and message in err, err


# ---- the matmul ceiling cache ------------------------------------------------------------------------------


def test_ceiling_is_cached_per_machine_and_remeasured_on_request(tmp_path: Path) -> None:
    calls: list[str] = []

    def fake_measure(dtype: str, size: int, **_: object) -> bench.Ceiling:
        calls.append(dtype)
        return bench.Ceiling(dtype, size, 10.0 * len(calls), 9.0, f"t{len(calls)}")

    def ceilings(machine: str = "cpu A", remeasure: bool = False) -> dict[str, bench.Ceiling]:
        return bench.matmul_ceilings(("float64", "float32"), 64, clock="wall", machine=machine, remeasure=remeasure,
                                     cache_dir=tmp_path, measure=fake_measure)

    first = ceilings()
    assert calls == ["float64", "float32"] and not first["float64"].cached
    again = ceilings()
    assert calls == ["float64", "float32"], "a cached ceiling was measured again"
    assert again["float64"].cached and again["float64"].gflops == first["float64"].gflops
    assert again["float32"].measured_at == "t2"
    other = ceilings(machine="cpu B")  # another CPU / NumPy / BLAS: its own entry
    assert len(calls) == 4 and not other["float64"].cached
    assert ceilings()["float64"].gflops == 10.0, "cpu B's entry replaced cpu A's"
    fresh = ceilings(remeasure=True)
    assert len(calls) == 6 and not fresh["float64"].cached and fresh["float64"].gflops == 50.0
    assert ceilings()["float64"].gflops == 50.0, "the remeasured value was not cached"
    (tmp_path / bench.measuring.CEILING_CACHE_FILE).write_text("{not json")
    assert not ceilings()["float64"].cached and len(calls) == 8   # an unreadable cache is measured over
    busy = bench.matmul_ceilings(("float64",), 64, clock="wall", machine="cpu C", cache_dir=tmp_path,
                                 measure=fake_measure, store=False)   # measured under load: this run only
    assert not busy["float64"].cached and "cpu C" not in (tmp_path / bench.measuring.CEILING_CACHE_FILE).read_text()


def test_unwritable_cache_still_measures(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = bench.matmul_ceilings(("float64",), 32, clock="cpu", machine="m", cache_dir=blocker / "sub")
    assert result["float64"].gflops > 0 and not result["float64"].cached


def test_cli_reuses_the_cached_ceiling(
    _private_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(bench, "environment_info", _quiet_environment)
    argv = ["bench", "reference", "--quick", "--repeats", "1", "--dtypes", "float64", "--no-check",
            "--problem", "fc n2 c8 o4"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "measured 20" in first and "cached" not in first.split("matmul ceiling")[1].splitlines()[0]
    assert (_private_cache / "matmul_ceiling.json").exists()
    assert main(argv) == 0
    assert "cached for this machine" in capsys.readouterr().out
    assert main([*argv, "--remeasure-ceiling"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "matmul ceiling" in x)
    assert "cached" not in line and "measured 20" in line


def _quiet_environment() -> dict[str, object]:
    """This machine's environment, with a load average of an idle machine."""
    from conformance.bench.environment import environment_info

    info = environment_info()
    info["load_average_1min"] = 0.1
    return info


def test_a_ceiling_measured_under_load_is_not_cached(
    _private_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from conformance.bench.environment import environment_info

    def busy() -> dict[str, object]:
        info = environment_info()
        info["load_average_1min"] = 7.5
        return info

    monkeypatch.setattr(bench, "environment_info", busy)
    argv = ["bench", "reference", "--quick", "--repeats", "1", "--dtypes", "float64", "--no-check",
            "--problem", "fc n2 c8 o4"]
    assert main(argv) == 0
    assert "measured while the machine was busy" in capsys.readouterr().err
    assert not (_private_cache / "matmul_ceiling.json").exists()


# ---- the conformance check ----------------------------------------------------------------------------------

WRONG_BACKEND = """
import reference
from reference import linear_backward, max_pool_backward, max_pool_forward


def linear_forward(x, w, b):
    return reference.linear_forward(x, w, b) * 1.001   # 0.1% off: far beyond any rounding bound
"""


def test_a_backend_that_is_not_conformant_is_timed_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "slightly_wrong.py").write_text(WRONG_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    report = tmp_path / "r.json"
    argv = ["bench", "slightly_wrong", "--quick", "--repeats", "1", "--dtypes", "float64", "--against", "none",
            "--problem", "fc n4 c16 o8", "--problem", "mp2d n2 c3 h8 w8 k2", "--report", str(report)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "not conformant" in line]
    assert len(warnings) == 2, captured.err  # the fc problem, then the summary; not the max pool
    assert "fc n4 c16 o8 float64" in warnings[0] and "y differs" in warnings[0]
    assert "1 of the 2" in warnings[1]
    assert any("fc n4 c16 o8" in line and "fwd+bwd" in line for line in captured.out.splitlines()), "not timed"
    data = json.loads(report.read_text())
    assert [entry["problem"] for entry in data["nonconformant"]] == ["fc n4 c16 o8"]
    markdown = tmp_path / "r.md"
    assert main([*argv[:-1], str(markdown)]) == 0
    assert "- NOT CONFORMANT (checked at batch 1): fc n4 c16 o8 float64: y differs" in markdown.read_text()
    capsys.readouterr()
    assert main([*argv, "--no-check"]) == 0
    assert "not conformant" not in capsys.readouterr().err


def test_check_values_passes_the_reference_in_every_dtype_and_names_a_wrong_gradient() -> None:
    reference = load_backend("reference")
    for text in ("conv2d n8 c4 h9 w9 o6 k3 s2 p1 g2", "mp1d n2 c3 w11 k3 s2 p1 ceil", "ap2d n1 c2 h7 w7 k7 s7 p0",
                 "fc n3 c5 o4"):
        for dtype in ("float64", "float32", "float16"):
            assert bench.check_values(reference, parse_problem(text), dtype) is None, (text, dtype)
    functions = dict(reference.functions)
    functions["conv_backward"] = lambda x, w, dy, **kw: tuple(
        g * 2 if i == 1 else g for i, g in enumerate(reference.functions["conv_backward"](x, w, dy, **kw)))
    doubled = type(reference)("doubled", "reference", reference.obj, functions, reference.capabilities)
    difference = bench.check_values(doubled, parse_problem("conv2d n2 c4 h9 w9 o6 k3 s1 p1"), "float64")
    assert difference is not None and difference.startswith("dw differs")


# ---- interleaved timing --------------------------------------------------------------------------------------


def test_backend_and_baseline_calls_alternate_with_a_pause_at_each_switch() -> None:
    reference = load_backend("reference")
    log: list[str] = []

    def tracing(name: str) -> object:
        functions = {
            key: (lambda *a, _k=key, _f=fn, **kw: (log.append(f"{name}.{_k}"), _f(*a, **kw))[1])
            for key, fn in reference.functions.items()
        }
        return type(reference)(name, "reference", reference.obj, functions, reference.capabilities)

    options = bench.options_from_args(argparse_namespace(["--repeats", "3", "--warmup", "0", "--problem", "fc n2 c8 o4"]))
    slept: list[float] = []
    pair = bench.measure_pair(tracing("A"), tracing("B"), parse_problem("fc n2 c8 o4"), "float64", options,
                              sleep=slept.append)
    # Warm-up: one fwd+bwd call each; then per mode 3 pairs of calls, backend first (ABAB).
    assert log[:4] == ["A.linear_forward", "A.linear_backward", "B.linear_forward", "B.linear_backward"]
    assert log[4:10] == ["A.linear_forward", "B.linear_forward"] * 3
    assert log[10:16] == ["A.linear_backward", "B.linear_backward"] * 3
    assert log[16:] == ["A.linear_forward", "A.linear_backward", "B.linear_forward", "B.linear_backward"] * 3
    # 2 warm-up + 18 timed calls, alternating from the warm-up's second on: a pause before each of 19 switches.
    assert slept == [options.pause] * 19
    assert set(pair.ratios) == {"forward", "backward", "fwd+bwd"}
    assert all(len(r) == 3 and all(v > 0 for v in r) for r in pair.ratios.values())
    assert len(pair.backend.timings["forward"].samples) == 3 and pair.baseline is not None


def test_the_ratio_is_the_median_of_the_pair_ratios_with_their_spread() -> None:
    named = SHAPE_SETS["classifier"][0]
    slow = bench.Timing((1.0, 1.0, 1.0, 9.0, 9.0))
    row = bench.Row(named, "float64", "forward", 1, slow, slow, None, None, (0.5, 0.9, 1.0, 1.1, 3.0))
    assert row.ratio == 1.0
    assert row.ratio_spread == (0.9, 1.1)
    unpaired = bench.Row(named, "float64", "forward", 1, bench.Timing((2.0,)), bench.Timing((4.0,)), None, None)
    assert unpaired.ratio == 0.5 and unpaired.ratio_spread is None


def argparse_namespace(extra: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(["reference", "--quick", *extra])


# ---- a framework's native path as the baseline ----------------------------------------------------------------

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.skipif(not HAS_TORCH, reason="torch (convspec[torch]) is not installed")
@pytest.mark.parametrize("text", ["conv2d n2 c4 h9 w8 o6 k3 s2 p1:0x1 g2", "mp1d n2 c3 w11 k3 s2 p1 ceil",
                                  "ap2d n1 c2 h7 w7 k3 s2 p1 exclpad", "fc n3 c5 o4",
                                  "convt2d n2 c4 h5 w4 o6 k3 s2 p1:0x1 e1x0 g2", "aap2d n2 c3 h7 w5 a3x8",
                                  "amp1d n2 c2 w9 a4"])
def test_the_native_torch_path_computes_the_protocol_operation(text: str) -> None:
    from conformance.bench.native import torch_native_calls

    problem = parse_problem(text)
    inputs = bench.make_inputs(problem, "float64")
    calls = torch_native_calls(problem, inputs)
    kwargs = bench.call_kwargs(problem)
    import reference

    forward = getattr(reference, problem.operation.forward)
    backward = getattr(reference, problem.operation.backward or "")
    weighted = problem.operation.has_weights
    expected_y = forward(inputs.x, inputs.w, inputs.b, **kwargs) if weighted else forward(inputs.x, **kwargs)
    expected_grads = backward(inputs.x, inputs.w, inputs.dy, **kwargs) if weighted else (
        backward(inputs.x, inputs.dy, **kwargs),)
    y = calls["forward"]()
    np.testing.assert_allclose(y.numpy(), expected_y, rtol=1e-12, atol=1e-12)
    for mode in ("backward", "fwd+bwd"):
        grads = calls[mode]()
        assert len(grads) == len(expected_grads), mode
        for got, want in zip(grads, expected_grads):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12, err_msg=f"{text} {mode}")


@pytest.mark.skipif(not HAS_TORCH, reason="torch (convspec[torch]) is not installed")
def test_against_torch_native_times_every_mode_with_pair_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "native.json"
    assert main(["bench", "reference", "--quick", "--repeats", "2", "--dtypes", "float64", "--pause", "0",
                 "--against", "torch-native", "--problem", "conv1d n1 c2 w16 o3 k3 p1", "--problem", "mp1d n1 c2 w16 k2",
                 "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "torch-native ms" in out and "native path" in out
    data = json.loads(report.read_text())
    assert data["baseline"]["name"] == "torch-native"
    assert len(data["results"]) == 6
    for row in data["results"]:
        assert row["baseline"]["repeats"] == 2 and len(row["pair_ratios"]) == 2, row
        assert row["ratio_q1"] <= row["ratio"] <= row["ratio_q3"]

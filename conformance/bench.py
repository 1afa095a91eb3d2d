"""``convspec bench BACKEND``: time forward and backward of each operation on shapes from real networks.

For every problem (one line, see :mod:`conformance.bench_shapes`) and dtype the
backend and then the baseline are timed in three modes — ``forward``,
``backward`` and ``fwd+bwd`` (one forward then one backward call) — each after
warm-up calls, ``--repeats`` times. The table shows the median time with its
interquartile range, GFLOP/s from the exact operation count, that rate as a
fraction of the machine's matrix-multiply rate in the same dtype (NumPy
``matmul`` of a large square matrix, measured once per run: the practical
ceiling of any im2col + GEMM implementation), and the time ratio backend /
baseline (above 1: the backend is slower).

Two BLAS runtimes in one process disturb each other: after a call, OpenMP and
OpenBLAS worker threads keep spinning for a while and steal the two cores from
the next library's call. The backends are therefore never interleaved call by
call: each problem runs all of the backend's timings, then a pause, then all of
the baseline's.

Exit codes: 0 done, 1 a backend raised an error on some problem (the row says
which), 2 usage error (one line on stderr).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from conformance.bench_shapes import (
    MODES,
    SHAPE_SETS,
    Mode,
    NamedProblem,
    Problem,
    ProblemSyntaxError,
    flops,
    parse_problem,
    with_batch,
)
from conformance.loader import LoadedBackend, load_backend
from spec import OPERATIONS, OpName, UnsupportedError

#: Dtypes ``--dtypes`` accepts.
BENCH_DTYPES: tuple[str, ...] = ("float64", "float32", "float16")
DEFAULT_DTYPES = "float64,float32"
DEFAULT_SHAPES = "resnet50"
DEFAULT_REPEATS = 5
DEFAULT_WARMUP = 1
#: Seconds of repeated calls before the first timing of each (backend, problem, dtype).
MIN_WARMUP_SECONDS = 0.3
#: Pause between two backends' timings, so one library's spinning threads go to sleep first.
SWITCH_PAUSE_SECONDS = 0.3
#: Side of the square matrices of the matmul ceiling (``--quick``: the smaller one).
CEILING_SIZE = 2048
QUICK_CEILING_SIZE = 768
NO_BASELINE = "none"
CEILING_DTYPES = ("float64", "float32")
ENVIRONMENT_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: A 1-minute load average above this (on this 2-CPU machine: one busy core) prints a warning.
LOAD_WARNING = 0.8


class BenchUsageError(Exception):
    """A usage error of ``convspec bench``; the message is one line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``convspec bench``."""
    parser.add_argument("backend", help="backend to time: reference, torch, or module[:attribute]")
    parser.add_argument("--ops", default=",".join(OPERATIONS), help="operations, comma-separated (default: all)")
    parser.add_argument("--dtypes", default=DEFAULT_DTYPES, help=f"dtypes, comma-separated (default: {DEFAULT_DTYPES})")
    parser.add_argument(
        "--shapes", default=None,
        help=f"shape sets, comma-separated: {', '.join(SHAPE_SETS)} or all (default: {DEFAULT_SHAPES} unless --problem)",
    )
    parser.add_argument(
        "--problem", action="append", default=[], metavar="DESCRIPTOR",
        help="one problem, e.g. \"conv2d n8 c64 h56 w56 o64 k3 s1 p1\" (repeatable; see conformance.bench_shapes)",
    )
    parser.add_argument("--against", default="reference", help="baseline backend (default: reference; 'none': no baseline)")
    parser.add_argument("--repeats", type=int, default=None, help=f"timed calls per mode (default {DEFAULT_REPEATS}; --quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help=f"untimed calls before each mode (default {DEFAULT_WARMUP})")
    parser.add_argument("--report", type=Path, default=None, help="also write the results to FILE.json or FILE.md")
    parser.add_argument("--plot", type=Path, default=None, help="draw GFLOP/s per shape to FILE.png (needs convspec[plot])")
    parser.add_argument(
        "--clock", choices=tuple(CLOCKS), default="wall",
        help="wall (default): elapsed time; cpu: CPU time of the process, all threads -- with one BLAS/OpenMP "
        "thread an estimate of an idle core's time that other processes on a shared machine do not inflate",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="a quick look: shape sets at batch 1, 3 repeats, a smaller matmul ceiling, no timed warm-up",
    )


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class BenchOptions:
    """``convspec bench``'s arguments, checked."""

    backend: str
    baseline: str | None
    ops: tuple[OpName, ...]
    dtypes: tuple[str, ...]
    problems: tuple[NamedProblem, ...]
    repeats: int
    warmup: int
    min_warmup_seconds: float
    ceiling_size: int
    report: Path | None
    plot: Path | None
    quick: bool
    command: str
    clock: str = "wall"


def _split(value: str, option: str, allowed: Sequence[str]) -> tuple[str, ...]:
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    if not items:
        raise BenchUsageError(f"{option} is empty (choose from {', '.join(allowed)})")
    for item in items:
        if item not in allowed:
            raise BenchUsageError(f"{option}: unknown {item!r} (choose from {', '.join(allowed)})")
    return tuple(dict.fromkeys(items))


def _output_path(path: Path | None, option: str, suffixes: Sequence[str]) -> Path | None:
    if path is None:
        return None
    if path.suffix.lower() not in suffixes:
        raise BenchUsageError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BenchUsageError(f"{option} {path}: directory {parent} does not exist")
    return path


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """Check the parsed arguments; raise :class:`BenchUsageError` with one line."""
    ops: tuple[OpName, ...] = tuple(
        op for op in OPERATIONS if op in _split(args.ops, "--ops", tuple(OPERATIONS))
    )
    dtypes = _split(args.dtypes, "--dtypes", BENCH_DTYPES)
    quick = bool(args.quick)
    repeats = args.repeats if args.repeats is not None else (3 if quick else DEFAULT_REPEATS)
    warmup = args.warmup if args.warmup is not None else DEFAULT_WARMUP
    if repeats < 1:
        raise BenchUsageError(f"--repeats {repeats}: must be >= 1")
    if warmup < 0:
        raise BenchUsageError(f"--warmup {warmup}: must be >= 0")
    problems: list[NamedProblem] = []
    shapes = args.shapes if args.shapes is not None else (None if args.problem else DEFAULT_SHAPES)
    if shapes is not None:
        names = _split(shapes, "--shapes", (*SHAPE_SETS, "all"))
        for name in SHAPE_SETS if "all" in names else names:
            for named in SHAPE_SETS[name]:
                problem = with_batch(named.problem, 1) if quick else named.problem
                problems.append(NamedProblem(named.shape_set, named.label, problem))
    for text in args.problem:
        try:
            problem = parse_problem(text)
        except ProblemSyntaxError as exc:
            raise BenchUsageError(f"--problem {exc}") from None
        problems.append(NamedProblem("problem", "-", problem))
    selected = tuple(named for named in problems if named.problem.op in ops)
    if not selected:
        raise BenchUsageError(f"no problem left to run for --ops {','.join(ops)}")
    plot = _output_path(args.plot, "--plot", (".png",))
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise BenchUsageError("--plot needs matplotlib: pip install 'convspec[plot]'")
    baseline = None if args.against in (NO_BASELINE, args.backend) else str(args.against)
    return BenchOptions(
        backend=str(args.backend), baseline=baseline, ops=ops, dtypes=dtypes, problems=selected,
        repeats=repeats, warmup=warmup, min_warmup_seconds=0.0 if quick else MIN_WARMUP_SECONDS,
        ceiling_size=QUICK_CEILING_SIZE if quick else CEILING_SIZE,
        report=_output_path(args.report, "--report", (".json", ".md")), plot=plot, quick=quick, command=_command(args),
        clock=args.clock,
    )


def _command(args: argparse.Namespace) -> str:
    """The command line that repeats this run (the options given, in a fixed order)."""
    # Thread and BLAS-kernel variables change the numbers: the command names those that are set.
    words = [f"{name}={os.environ[name]}" for name in ENVIRONMENT_VARIABLES if os.environ.get(name)]
    words += ["convspec", "bench", str(args.backend)]
    if args.ops != ",".join(OPERATIONS):
        words += ["--ops", args.ops]
    if args.dtypes != DEFAULT_DTYPES:
        words += ["--dtypes", args.dtypes]
    if args.shapes is not None:
        words += ["--shapes", args.shapes]
    for text in args.problem:
        words += ["--problem", f'"{text}"']
    if args.against != "reference":
        words += ["--against", args.against]
    for option in ("repeats", "warmup"):
        if getattr(args, option) is not None:
            words += [f"--{option}", str(getattr(args, option))]
    if args.clock != "wall":
        words += ["--clock", args.clock]
    if args.quick:
        words.append("--quick")
    for option in ("report", "plot"):
        if getattr(args, option) is not None:
            words += [f"--{option}", str(getattr(args, option))]
    return " ".join(words)


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of the timed calls of one mode."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def q1(self) -> float:
        return float(np.percentile(self.samples, 25))

    @property
    def q3(self) -> float:
        return float(np.percentile(self.samples, 75))

    def rate(self, flop_count: int) -> float:
        """GFLOP/s at the median time."""
        return flop_count / self.median / 1e9 if self.median > 0 else math.inf

    def as_dict(self, flop_count: int, ceiling: float) -> dict[str, Any]:
        rate = self.rate(flop_count)
        return {
            "median_s": self.median, "q1_s": self.q1, "q3_s": self.q3,
            "min_s": min(self.samples), "max_s": max(self.samples), "repeats": len(self.samples),
            "gflops": rate, "fraction_of_ceiling": rate / ceiling if ceiling > 0 else None,
        }


@dataclass(frozen=True)
class Ceiling:
    """The NumPy float matmul rate of this machine in one dtype."""

    dtype: str
    size: int
    gflops: float
    median_gflops: float


def measure_matmul_ceiling(
    dtype: str, size: int, repeats: int = 7, clock: Callable[[], float] = time.perf_counter,
) -> Ceiling:
    """Best and median GFLOP/s of ``a @ b`` for two ``size`` x ``size`` matrices (2 size**3 FLOPs)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty((size, size), dtype=dtype)
    np.matmul(a, b, out=out)
    seconds = []
    for _ in range(repeats):
        start = clock()
        np.matmul(a, b, out=out)
        seconds.append(clock() - start)
    work = 2.0 * size**3 / 1e9
    return Ceiling(dtype, size, work / min(seconds), work / statistics.median(seconds))


def _ceiling_dtype(dtype: str) -> str:
    """float16 rows are compared with the float32 ceiling (NumPy has no float16 GEMM)."""
    return "float32" if dtype == "float16" else dtype


Call = Callable[[], object]


#: ``--clock``: wall-clock seconds, or CPU seconds of the whole process (all its threads).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def _time_calls(call: Call, *, warmup: int, repeats: int, clock: Callable[[], float] = time.perf_counter) -> Timing:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        start = clock()
        call()
        samples.append(clock() - start)
    return Timing(tuple(samples))


@dataclass(frozen=True)
class Inputs:
    """Random operands of one problem in one dtype (the same for every backend)."""

    x: NDArray[Any]
    w: NDArray[Any] | None
    b: NDArray[Any] | None
    dy: NDArray[Any]


def make_inputs(problem: Problem, dtype: str, seed: int = 0) -> Inputs:
    """Standard-normal x, b and dy; w scaled by 1/sqrt(fan-in) so outputs stay O(1)."""
    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, ...], scale: float = 1.0) -> NDArray[Any]:
        return (rng.standard_normal(shape) * scale).astype(dtype)

    x = normal(problem.x_shape())
    w = b = None
    if problem.op in ("conv", "linear"):
        w_shape = problem.w_shape()
        w = normal(w_shape, 1.0 / math.sqrt(max(1, math.prod(w_shape[1:]))))
        b = normal((problem.o,))
    return Inputs(x, w, b, normal(problem.y_shape()))


def call_kwargs(problem: Problem) -> dict[str, Any]:
    """The keyword arguments of the protocol functions for ``problem``."""
    if problem.op == "linear":
        return {}
    if problem.op == "conv":
        return {"stride": problem.stride, "padding": problem.padding, "dilation": problem.dilation, "groups": problem.groups}
    kwargs: dict[str, Any] = {
        "kernel_size": problem.kernel, "stride": problem.stride, "padding": problem.padding,
        "dilation": problem.dilation, "ceil_mode": problem.ceil_mode,
    }
    if problem.op == "avg_pool":
        kwargs["count_include_pad"] = problem.count_include_pad
    return kwargs


def mode_calls(backend: LoadedBackend, problem: Problem, inputs: Inputs) -> dict[Mode, Call]:
    """Zero-argument callables for the modes the backend has functions for."""
    forward_name, backward_name = OPERATIONS[problem.op]
    forward_fn = backend.functions.get(forward_name)
    backward_fn = backend.functions.get(backward_name)
    kwargs = call_kwargs(problem)
    x, w, b, dy = inputs.x, inputs.w, inputs.b, inputs.dy
    forward: Call | None = None
    backward: Call | None = None
    if forward_fn is not None:
        fwd = forward_fn
        forward = (lambda: fwd(x, w, b, **kwargs)) if w is not None else (lambda: fwd(x, **kwargs))
    if backward_fn is not None:
        bwd = backward_fn
        backward = (lambda: bwd(x, w, dy, **kwargs)) if w is not None else (lambda: bwd(x, dy, **kwargs))
    calls: dict[Mode, Call] = {}
    if forward is not None:
        calls["forward"] = forward
    if backward is not None:
        calls["backward"] = backward
    if forward is not None and backward is not None:
        first, second = forward, backward
        calls["fwd+bwd"] = lambda: (first(), second())
    return calls


def unsupported_reason(backend: LoadedBackend, problem: Problem, dtype: str) -> str | None:
    """Why the backend's declared capabilities exclude ``problem`` in ``dtype`` (None: they include it)."""
    caps = backend.capabilities
    forward_name, backward_name = OPERATIONS[problem.op]
    if forward_name not in backend.functions and backward_name not in backend.functions:
        return f"no {forward_name} / {backward_name}"
    if dtype not in caps.dtypes:
        return f"dtype {dtype}"
    if problem.op == "linear":
        return None if problem.n > 0 or caps.empty_batch else "empty batch"
    if problem.ndim not in caps.spatial_ranks:
        return f"{problem.ndim}-D"
    if problem.n == 0 and not caps.empty_batch:
        return "empty batch"
    if any(lo != hi for lo, hi in problem.padding) and not caps.asymmetric_padding:
        return "asymmetric padding"
    dilated = any(d > 1 for d in problem.dilation)
    if problem.op == "conv":
        if dilated and not caps.dilation:
            return "dilation"
        if problem.groups > 1 and not caps.groups:
            return "groups"
        return None
    if dilated and not (caps.max_pool_dilation if problem.op == "max_pool" else caps.avg_pool_dilation):
        return "pool dilation"
    if problem.ceil_mode and not caps.ceil_mode:
        return "ceil_mode"
    if problem.op == "avg_pool" and problem.count_include_pad not in caps.count_include_pad:
        return f"count_include_pad={problem.count_include_pad}"
    if caps.pool_padding == "half_kernel":
        for (lo, hi), k, d in zip(problem.padding, problem.kernel, problem.dilation):
            if max(lo, hi) > (d * (k - 1) + 1) // 2:
                return "pool padding beyond half the kernel"
    return None


@dataclass
class Side:
    """One backend's outcome on one (problem, dtype): timings per mode, or why there are none."""

    timings: dict[str, Timing] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None


def measure(backend: LoadedBackend, problem: Problem, dtype: str, options: BenchOptions) -> Side:
    """Warm up, then time every mode of ``problem`` on ``backend``."""
    reason = unsupported_reason(backend, problem, dtype)
    if reason is not None:
        return Side(skipped=f"not supported: {reason}")
    inputs = make_inputs(problem, dtype)
    calls = mode_calls(backend, problem, inputs)
    side = Side()
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        warm = calls.get("fwd+bwd") or next(iter(calls.values()))
        deadline = time.perf_counter() + options.min_warmup_seconds
        warm()
        while time.perf_counter() < deadline:
            warm()
        for mode in MODES:
            if mode in calls:
                side.timings[mode] = _time_calls(
                    calls[mode], warmup=options.warmup, repeats=options.repeats, clock=CLOCKS[options.clock],
                )
    except UnsupportedError as exc:
        side.timings.clear()
        side.skipped = f"not supported: {_one_line(str(exc))}"
    except Exception as exc:  # a backend failing on one problem must not end the run
        side.timings.clear()
        side.error = f"{type(exc).__name__}: {_one_line(str(exc))}"
    finally:
        if gc_was_enabled:
            gc.enable()
    return side


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Row:
    """One (problem, dtype, mode) line of the results."""

    named: NamedProblem
    dtype: str
    mode: Mode
    flop_count: int
    backend: Timing | None
    baseline: Timing | None
    backend_note: str | None
    baseline_note: str | None

    @property
    def ratio(self) -> float | None:
        """backend time / baseline time (median over median)."""
        if self.backend is None or self.baseline is None or self.baseline.median <= 0:
            return None
        return self.backend.median / self.baseline.median


@dataclass
class BenchResult:
    """Everything one run measured."""

    options: BenchOptions
    backend_target: str
    baseline_target: str | None
    ceilings: dict[str, Ceiling]
    environment: dict[str, Any]
    rows: list[Row] = field(default_factory=list)

    def ceiling(self, dtype: str) -> float:
        return self.ceilings[_ceiling_dtype(dtype)].gflops


def environment_info() -> dict[str, Any]:
    """Where the numbers come from: versions, BLAS, thread and OpenBLAS variables, load."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "env": {name: os.environ.get(name) for name in ENVIRONMENT_VARIABLES},
        "blas": _blas_info(),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the loaded BLAS (kernel architecture, threads), if it is installed."""
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        return []
    found: list[dict[str, Any]] = []
    for pool in threadpoolctl.threadpool_info():
        keys = ("internal_api", "version", "architecture", "num_threads", "prefix", "filepath")
        found.append({key: pool.get(key) for key in keys})
    return found


def _blas_summary(environment: dict[str, Any]) -> str:
    pools = [p for p in environment["blas"] if p.get("internal_api") in ("openblas", "mkl", "blis")]
    # NumPy's own BLAS first (SciPy and PyTorch may load others).
    pools.sort(key=lambda p: "numpy" not in str(p.get("filepath") or ""))
    if not pools:
        return "BLAS: unknown (install threadpoolctl to see it)"
    pool = pools[0]
    return f"{pool['internal_api']} {pool['version']} {pool.get('architecture') or ''} kernel, {pool['num_threads']} threads"


def _load(environment: dict[str, Any]) -> str:
    load = environment["load_average_1min"]
    return "unknown" if load is None else f"{load:.2f}"


def _openblas_vars(environment: dict[str, Any]) -> str:
    env = environment["env"]
    set_vars = [f"{name}={env[name]}" for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if env.get(name)]
    return ", ".join(set_vars) if set_vars else "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"


# --------------------------------------------------------------------------- output


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 10 else f"{ms:.0f}" if ms >= 1000 else f"{ms:.1f}"


def _time_cell(timing: Timing | None, note: str | None) -> str:
    if timing is None:
        return note or "-"
    return f"{_ms(timing.median)} [{_ms(timing.q1)}-{_ms(timing.q3)}]"


def _rate_cells(timing: Timing | None, flop_count: int, ceiling: float) -> tuple[str, str]:
    if timing is None:
        return "", ""
    rate = timing.rate(flop_count)
    fraction = 100 * rate / ceiling
    return f"{rate:.3g}" if rate < 100 else f"{rate:.0f}", f"{fraction:.2g}%" if fraction < 1 else f"{fraction:.0f}%"


def _ratio_cell(row: Row) -> str:
    ratio = row.ratio
    return "" if ratio is None else f"{ratio:.2f}"


def table_columns(result: BenchResult) -> list[str]:
    backend = result.options.backend
    columns = ["shape set", "layer", "problem", "dtype", "mode", f"{backend} ms", "GFLOP/s", "%ceil"]
    if result.options.baseline is not None:
        columns += [f"{result.options.baseline} ms", "GFLOP/s", "%ceil", "ratio"]
    return columns


def table_cells(result: BenchResult, row: Row) -> list[str]:
    ceiling = result.ceiling(row.dtype)
    cells = [row.named.shape_set, row.named.label, row.named.descriptor, row.dtype, row.mode]
    cells += [_time_cell(row.backend, row.backend_note), *_rate_cells(row.backend, row.flop_count, ceiling)]
    if result.options.baseline is not None:
        cells += [_time_cell(row.baseline, row.baseline_note), *_rate_cells(row.baseline, row.flop_count, ceiling)]
        cells.append(_ratio_cell(row))
    return cells


def header_lines(result: BenchResult) -> list[str]:
    options = result.options
    ceilings = ", ".join(
        f"{c.dtype} {c.gflops:.1f} GFLOP/s (median {c.median_gflops:.1f})" for c in result.ceilings.values()
    )
    env = result.environment
    lines = [
        f"command: {options.command}",
        f"backend: {options.backend} ({result.backend_target}); baseline: "
        + (f"{options.baseline} ({result.baseline_target})" if options.baseline else "none"),
        f"matmul ceiling (NumPy {env['numpy']}, {options.ceiling_size}x{options.ceiling_size} matmul, best of 7): {ceilings}",
        f"machine: {env['processor']}, {env['cpu_count']} CPUs, load average {_load(env)}; "
        f"{_blas_summary(env)}; {_openblas_vars(env)}",
        f"time ({options.clock} clock): median [q1-q3] in ms over {options.repeats} repeats after {options.warmup} "
        "warm-up call(s); "
        "GFLOP/s at the median; %ceil = GFLOP/s / matmul ceiling of the dtype"
        + ("; ratio = backend time / baseline time" if options.baseline else ""),
    ]
    return lines


class TablePrinter:
    """Prints aligned rows as they arrive; widths fixed from the problem list up front."""

    def __init__(self, result: BenchResult, out: TextIO) -> None:
        self.result = result
        self.out = out
        columns = table_columns(result)
        widths = [len(c) for c in columns]
        widths[0] = max(widths[0], *(len(p.shape_set) for p in result.options.problems))
        widths[1] = max(widths[1], *(len(p.label) for p in result.options.problems))
        widths[2] = max(widths[2], *(len(p.descriptor) for p in result.options.problems))
        widths[3] = max(widths[3], *(len(d) for d in result.options.dtypes))
        widths[4] = max(widths[4], *(len(m) for m in MODES))
        for i in range(5, len(columns)):
            widths[i] = max(widths[i], 18 if columns[i].endswith(" ms") else 7)
        self.widths = widths
        self.columns = columns

    def _line(self, cells: list[str]) -> str:
        parts = []
        for i, (cell, width) in enumerate(zip(cells, self.widths)):
            parts.append(cell.ljust(width) if i < 5 or cell.endswith(("supported", "-")) else cell.rjust(width))
        return "  ".join(parts).rstrip()

    def start(self) -> None:
        for line in header_lines(self.result):
            print(line, file=self.out)
        print(file=self.out)
        print(self._line(self.columns), file=self.out)
        print(self._line(["-" * w for w in self.widths]), file=self.out)
        self.out.flush()

    def row(self, row: Row) -> None:
        print(self._line(table_cells(self.result, row)), file=self.out)
        self.out.flush()


class Progress:
    """A one-line progress indicator on stderr: rewritten in place on a terminal, one line per step otherwise."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()

    def step(self, what: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        text = f"[{self.done}/{self.total} {elapsed:.0f}s] {what}"
        if self.tty:
            self.stream.write("\r\x1b[K" + text[:150])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _side_dict(timing: Timing | None, note: str | None, flop_count: int, ceiling: float) -> dict[str, Any] | None:
    if timing is None:
        return {"skipped": note} if note else None
    return timing.as_dict(flop_count, ceiling)


def result_json(result: BenchResult) -> dict[str, Any]:
    """The report as JSON-ready data."""
    options = result.options
    return {
        "convspec_bench": 1,
        "command": options.command,
        "backend": {"name": options.backend, "target": result.backend_target},
        "baseline": None if options.baseline is None else {"name": options.baseline, "target": result.baseline_target},
        "repeats": options.repeats,
        "warmup": options.warmup,
        "clock": options.clock,
        "quick": options.quick,
        "environment": result.environment,
        "matmul_ceiling": {
            dtype: {"size": c.size, "gflops": c.gflops, "median_gflops": c.median_gflops}
            for dtype, c in result.ceilings.items()
        },
        "results": [
            {
                "shape_set": row.named.shape_set,
                "label": row.named.label,
                "problem": row.named.descriptor,
                "op": row.named.problem.op,
                "dtype": row.dtype,
                "mode": row.mode,
                "flops": row.flop_count,
                "backend": _side_dict(row.backend, row.backend_note, row.flop_count, result.ceiling(row.dtype)),
                "baseline": _side_dict(row.baseline, row.baseline_note, row.flop_count, result.ceiling(row.dtype)),
                "ratio": row.ratio,
            }
            for row in result.rows
        ],
    }


def result_markdown(result: BenchResult) -> str:
    """The report as a Markdown document: the header lines, then one table per dtype."""
    lines = [f"# convspec bench {result.options.backend}", ""]
    lines += [f"- {line}" for line in header_lines(result)]
    columns = table_columns(result)
    for dtype in result.options.dtypes:
        rows = [row for row in result.rows if row.dtype == dtype]
        if not rows:
            continue
        lines += ["", f"## {dtype}", ""]
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "|".join("---" if i < 5 else "---:" for i in range(len(columns))) + "|")
        for row in rows:
            cells = [cell.replace("|", "\\|") for cell in table_cells(result, row)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_report(result: BenchResult, path: Path) -> None:
    """JSON for ``.json``, Markdown for ``.md``."""
    if path.suffix.lower() == ".json":
        write_atomically(path, json.dumps(result_json(result), indent=2) + "\n")
    else:
        write_atomically(path, result_markdown(result))


def _rate_of(row: Row | None, *, baseline: bool) -> float:
    timing = None if row is None else (row.baseline if baseline else row.backend)
    return 0.0 if row is None or timing is None else timing.rate(row.flop_count)


def write_plot(result: BenchResult, path: Path) -> None:
    """Horizontal bars of GFLOP/s per problem, backend beside baseline; one panel per dtype and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    options = result.options
    dtypes = [d for d in options.dtypes if any(r.dtype == d for r in result.rows)]
    # One bar group per problem; a --problem has no layer name, so its descriptor labels it.
    keys = list(dict.fromkeys((row.named.shape_set, row.named.descriptor) for row in result.rows))
    names = {(row.named.shape_set, row.named.descriptor): row.named.label for row in result.rows}
    labels = [names[key] if names[key] != "-" else key[1] for key in keys]
    height = max(3.0, 0.32 * len(labels) * (2 if options.baseline else 1) + 1.5)
    fig, axes = plt.subplots(
        len(dtypes), len(MODES), figsize=(5.2 * len(MODES), height * len(dtypes)), squeeze=False, sharey=True,
    )
    bar = 0.4 if options.baseline else 0.8
    for r, dtype in enumerate(dtypes):
        ceiling = result.ceiling(dtype)
        for c, mode in enumerate(MODES):
            ax = axes[r][c]
            rows = {
                (row.named.shape_set, row.named.descriptor): row for row in result.rows if row.dtype == dtype and row.mode == mode
            }
            ys = np.arange(len(labels))
            mine = [_rate_of(rows.get(key), baseline=False) for key in keys]
            ax.barh(ys - (bar / 2 if options.baseline else 0), mine, height=bar, label=options.backend, color="tab:blue")
            if options.baseline:
                theirs = [_rate_of(rows.get(key), baseline=True) for key in keys]
                ax.barh(ys + bar / 2, theirs, height=bar, label=options.baseline, color="tab:orange")
            ax.axvline(ceiling, color="black", linestyle="--", linewidth=1, label=f"{dtype} matmul {ceiling:.0f}")
            ax.set_yticks(ys)
            ax.set_yticklabels(labels, fontsize=8)
            ax.set_title(f"{dtype} {mode}", fontsize=10)
            ax.set_xlabel("GFLOP/s")
            ax.grid(axis="x", alpha=0.3)
            if r == 0 and c == len(MODES) - 1:
                ax.legend(fontsize=8, loc="lower right")
    axes[0][0].invert_yaxis()  # the y axis is shared: first problem on top
    sets = ", ".join(dict.fromkeys(row.named.shape_set for row in result.rows))
    versus = f" vs {options.baseline}" if options.baseline else ""
    fig.suptitle(f"convspec bench {options.backend}{versus} ({sets}; {options.clock} clock, median of {options.repeats})")
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.98))
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=directory)
    os.close(fd)
    try:
        fig.savefig(temporary, dpi=110, format="png")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- the command


def run_bench(options: BenchOptions, *, out: TextIO, err: TextIO) -> BenchResult:
    """Load the backends, measure the ceilings, time every problem; print the table as it goes."""
    backend = load_backend(options.backend)
    baseline = load_backend(options.baseline) if options.baseline is not None else None
    environment = environment_info()
    load = environment["load_average_1min"]
    if load is not None and load > LOAD_WARNING:
        print(f"convspec: warning: load average {load:.1f} on {environment['cpu_count']} CPUs: "
              "other processes compete for the cores and the times will be noisy", file=err)
    ceilings = {
        dtype: measure_matmul_ceiling(dtype, options.ceiling_size, clock=CLOCKS[options.clock]) for dtype in CEILING_DTYPES
    }
    result = BenchResult(options, backend.target, baseline.target if baseline else None, ceilings, environment)
    printer = TablePrinter(result, out)
    printer.start()
    sides = [backend] if baseline is None else [backend, baseline]
    progress = Progress(len(options.problems) * len(options.dtypes) * len(sides), err)
    last: str | None = None
    try:
        for dtype in options.dtypes:
            for named in options.problems:
                measured: list[Side] = []
                for loaded in sides:
                    if last is not None and last != loaded.name:
                        time.sleep(SWITCH_PAUSE_SECONDS)
                    progress.step(f"{loaded.name} {dtype} {named.descriptor}")
                    measured.append(measure(loaded, named.problem, dtype, options))
                    last = loaded.name
                mine = measured[0]
                theirs = measured[1] if len(measured) > 1 else None
                count = flops(named.problem)
                for mode in MODES:
                    if mine.skipped is None and mine.error is None and mode not in mine.timings and (
                        theirs is None or mode not in theirs.timings
                    ):
                        continue
                    row = Row(
                        named, dtype, mode, count.of(mode), mine.timings.get(mode),
                        theirs.timings.get(mode) if theirs else None,
                        _note(mine, mode), _note(theirs, mode) if theirs else None,
                    )
                    result.rows.append(row)
                    printer.row(row)
    finally:
        progress.close()
    return result


def _note(side: Side | None, mode: Mode) -> str | None:
    if side is None:
        return None
    if side.error:
        return f"error: {side.error}"
    if side.skipped:
        return side.skipped
    return None if mode in side.timings else "no function"


def run(args: argparse.Namespace) -> int:
    """Entry point of ``convspec bench`` (see :mod:`conformance.cli`)."""
    try:
        options = options_from_args(args)
    except BenchUsageError as exc:
        print(f"convspec: error: {exc}", file=sys.stderr)
        return 2
    result = run_bench(options, out=sys.stdout, err=sys.stderr)
    if options.report is not None:
        write_report(result, options.report)
        print(f"report written to {options.report}", file=sys.stderr)
    if options.plot is not None:
        write_plot(result, options.plot)
        print(f"plot written to {options.plot}", file=sys.stderr)
    errors = [row for row in result.rows if (row.backend_note or "").startswith("error") or
              (row.baseline_note or "").startswith("error")]
    return 1 if errors else 0


__all__ = [
    "BenchOptions", "BenchResult", "BenchUsageError", "Ceiling", "Inputs", "Row", "Timing",
    "add_arguments", "call_kwargs", "make_inputs", "measure", "measure_matmul_ceiling", "mode_calls",
    "options_from_args", "result_json", "result_markdown", "run", "run_bench", "unsupported_reason",
    "write_atomically", "write_plot", "write_report",
]

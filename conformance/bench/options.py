"""``convspec bench`` options: the command line, checked into :class:`BenchOptions`."""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.bench_shapes import SHAPE_SETS, NamedProblem, ProblemSyntaxError, parse_problem, with_batch
from conformance.textio import parse_choices
from spec import OPERATIONS, OpName

BENCH_DTYPES: tuple[str, ...] = ("float64", "float32", "float16")
DEFAULT_DTYPES = "float64,float32"
DEFAULT_SHAPES = "resnet50"
DEFAULT_REPEATS = 5
DEFAULT_WARMUP = 1
#: Seconds of repeated calls before the first timing of each (backend, problem, dtype).
MIN_WARMUP_SECONDS = 0.3
#: Pause before a call when the other backend made the previous one, so that its spinning
#: worker threads (OpenBLAS spins ~0.1 s after a call) go to sleep first (``--pause``).
DEFAULT_PAUSE_SECONDS = 0.1
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
    parser.add_argument(
        "--against", default="reference",
        help="baseline backend (default: reference; 'none': no baseline; 'torch-native': PyTorch's own path, "
        "its tensors, one forward + autograd backward, not the protocol adapter)",
    )
    parser.add_argument("--repeats", type=int, default=None, help=f"timed calls per mode (default {DEFAULT_REPEATS}; --quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help=f"untimed calls before each mode (default {DEFAULT_WARMUP})")
    parser.add_argument("--report", type=Path, default=None, help="also write the results to FILE.json or FILE.md")
    parser.add_argument("--plot", type=Path, default=None, help="draw GFLOP/s per shape to FILE.png (needs convspec[plot])")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="wall (default): elapsed time; cpu: CPU time of the process, all threads -- with one BLAS/OpenMP "
        "thread an estimate of an idle core's time that other processes on a shared machine do not inflate",
    )
    parser.add_argument(
        "--pause", type=float, default=None, metavar="SECONDS",
        help=f"pause before a call when the other backend made the previous one (default {DEFAULT_PAUSE_SECONDS})",
    )
    parser.add_argument(
        "--remeasure-ceiling", action="store_true",
        help="measure the matmul ceiling again and update this machine's cached value",
    )
    parser.add_argument(
        "--no-check", action="store_true",
        help="skip the quick check of the backend's values against the reference on the benchmarked problems",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="a quick look: shape sets at batch 1, 3 repeats, a smaller matmul ceiling, no timed warm-up",
    )




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
    #: Seconds to pause before a call when the other backend made the previous one.
    pause: float = DEFAULT_PAUSE_SECONDS
    #: Measure the matmul ceiling even when this machine's is cached.
    remeasure_ceiling: bool = False
    #: Check the backend's values against the reference on the benchmarked problems first.
    check: bool = True


def _split(value: str, option: str, allowed: Sequence[str]) -> tuple[str, ...]:
    try:
        return tuple(parse_choices(value, allowed))
    except ValueError as exc:
        raise BenchUsageError(f"{option}: {exc}") from None


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
    pause = DEFAULT_PAUSE_SECONDS if getattr(args, "pause", None) is None else float(args.pause)
    if not pause >= 0 or pause > 60:
        raise BenchUsageError(f"--pause {pause}: must be between 0 and 60 seconds")
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
        clock=args.clock, pause=pause, remeasure_ceiling=bool(getattr(args, "remeasure_ceiling", False)),
        check=not getattr(args, "no_check", False),
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
    if getattr(args, "pause", None) is not None:
        words += ["--pause", str(args.pause)]
    if getattr(args, "no_check", False):
        words.append("--no-check")
    if args.quick:
        words.append("--quick")
    for option in ("report", "plot"):
        if getattr(args, option) is not None:
            words += [f"--{option}", str(getattr(args, option))]
    return " ".join(words)

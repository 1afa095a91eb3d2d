"""``convspec bench BACKEND``: time forward and backward of each operation on shapes from real networks.

For every problem (one line, see :mod:`conformance.bench_shapes`) and dtype the
backend and the baseline are timed in three modes — ``forward``, ``backward`` and
``fwd+bwd`` (one forward then one backward call) — each after warm-up calls,
``--repeats`` times, their calls interleaved (ABAB). The table shows the median
time with its interquartile range, GFLOP/s from the exact operation count, that
rate as a fraction of the machine's matrix-multiply rate in the same dtype (NumPy
``matmul`` of a large square matrix: the practical ceiling of any im2col + GEMM
implementation), and the ratio backend / baseline (above 1: the backend is slower).

A load swing on a shared machine distorts the ratio of two backends timed one
after the other; interleaved, both calls of a pair see the same load, and the
ratio reported is the median of the per-pair ratios, with their interquartile
range. Before a call whose predecessor was the other backend's, a short pause
(``--pause``) lets that library's spinning worker threads go to sleep. The matmul
ceiling is cached per machine (``--remeasure-ceiling`` refreshes it). The
backend's values are checked against the reference on the benchmarked problems
first (:mod:`conformance.bench.check`); one that is not conformant there is still
timed, with a warning.

The package, one module per job: :mod:`~conformance.bench.options` (the command
line), :mod:`~conformance.bench.measuring` (inputs, calls, interleaved timings, the
ceiling and its cache), :mod:`~conformance.bench.check`,
:mod:`~conformance.bench.environment` (versions, BLAS, load, the cache directory),
:mod:`~conformance.bench.rendering` (the table, JSON and Markdown),
:mod:`~conformance.bench.plot`.

Exit codes: 0 done, 1 a backend raised an error on some problem (the row says
which), 2 usage error (one line on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TextIO

from conformance.bench.check import check_values
from conformance.bench.environment import environment_info, machine_key
from conformance.bench.measuring import (
    BenchResult,
    Ceiling,
    Inputs,
    Pair,
    Row,
    Side,
    Timing,
    call_kwargs,
    make_inputs,
    matmul_ceilings,
    measure,
    measure_matmul_ceiling,
    measure_pair,
    mode_calls,
    unsupported_reason,
)
from conformance.bench.native import NATIVE_BASELINES, NATIVE_CALLS
from conformance.bench.options import (
    CEILING_DTYPES,
    LOAD_WARNING,
    BenchOptions,
    BenchUsageError,
    add_arguments,
    options_from_args,
)
from conformance.bench.plot import write_plot
from conformance.bench.rendering import (
    Progress,
    TablePrinter,
    result_json,
    result_markdown,
    write_report,
)
from conformance.bench_shapes import MODES, Mode, flops
from conformance.loader import load_backend


def run_bench(options: BenchOptions, *, out: TextIO, err: TextIO) -> BenchResult:
    """Load the backends, get the ceilings, check and time every problem; print the table as it goes."""
    backend = load_backend(options.backend)
    native = NATIVE_CALLS.get(options.baseline or "")
    baseline = None
    if options.baseline is not None:
        baseline = load_backend(NATIVE_BASELINES.get(options.baseline, options.baseline))
        if native is not None:
            baseline = dataclasses.replace(baseline, name=options.baseline, target=f"{baseline.target}, native path")
    environment = environment_info()
    load = environment["load_average_1min"]
    busy = load is not None and load > LOAD_WARNING
    if busy:
        print(f"convspec: warning: load average {load:.1f} on {environment['cpu_count']} CPUs: "
              "other processes compete for the cores and the times will be noisy", file=err)
    ceilings = matmul_ceilings(
        CEILING_DTYPES, options.ceiling_size, clock=options.clock, machine=machine_key(environment),
        remeasure=options.remeasure_ceiling, store=not busy,
    )
    if busy and not any(c.cached for c in ceilings.values()):
        print("convspec: warning: the matmul ceiling was measured while the machine was busy; "
              "it is used for this run and not cached", file=err)
    result = BenchResult(options, backend.target, baseline.target if baseline else None, ceilings, environment)
    printer = TablePrinter(result, out)
    printer.start()
    progress = Progress(len(options.problems) * len(options.dtypes), err)
    try:
        for dtype in options.dtypes:
            for named in options.problems:
                progress.step(f"{dtype} {named.descriptor}")
                if options.check and unsupported_reason(backend, named.problem, dtype) is None:
                    difference = check_values(backend, named.problem, dtype)
                    if difference is not None:
                        result.nonconformant.append((named.descriptor, dtype, difference))
                        progress.interrupt()
                        print(f"convspec: warning: {options.backend} is not conformant on {named.descriptor} "
                              f"{dtype} (checked at batch 1): {difference}; its times below are for wrong results",
                              file=err)
                pair = measure_pair(backend, baseline, named.problem, dtype, options, baseline_native=native)
                mine, theirs = pair.backend, pair.baseline
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
                        pair.ratios.get(mode, ()),
                    )
                    result.rows.append(row)
                    printer.row(row)
    finally:
        progress.close()
    if result.nonconformant:
        print(f"convspec: warning: {options.backend} is not conformant on {len(result.nonconformant)} of the "
              f"{len(options.problems) * len(options.dtypes)} benchmarked (problem, dtype) pairs; "
              "run convspec check for the full verdict", file=err)
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
    "BenchOptions", "BenchResult", "BenchUsageError", "Ceiling", "Inputs", "Pair", "Row", "Timing",
    "add_arguments", "call_kwargs", "check_values", "make_inputs", "matmul_ceilings", "measure",
    "measure_matmul_ceiling", "measure_pair", "mode_calls", "options_from_args", "result_json", "result_markdown",
    "run", "run_bench", "unsupported_reason", "write_plot", "write_report",
]

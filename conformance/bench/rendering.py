"""``convspec bench`` rendering: the table as it runs, progress, and the JSON and Markdown reports."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

from conformance.bench.environment import _blas_summary, _load, _openblas_vars
from conformance.bench.measuring import BenchResult, Row, Timing
from conformance.bench_shapes import MODES
from conformance.textio import write_atomically


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
    """The median per-pair ratio and, with pairs, their interquartile range."""
    ratio = row.ratio
    if ratio is None:
        return ""
    spread = row.ratio_spread
    return f"{ratio:.2f}" if spread is None else f"{ratio:.2f} [{spread[0]:.2f}-{spread[1]:.2f}]"


def table_columns(result: BenchResult) -> list[str]:
    backend = result.options.backend
    columns = ["shape set", "layer", "problem", "dtype", "mode", f"{backend} ms", "GFLOP/s", "%ceil"]
    if result.options.baseline is not None:
        columns += [f"{result.options.baseline} ms", "GFLOP/s", "%ceil", "ratio [q1-q3]"]
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
    when = min((c.measured_at for c in result.ceilings.values()), default="")
    source = (
        f"cached for this machine, measured {when}; --remeasure-ceiling to refresh"
        if any(c.cached for c in result.ceilings.values()) else f"measured {when}"
    )
    env = result.environment
    lines = [
        f"command: {options.command}",
        f"backend: {options.backend} ({result.backend_target}); baseline: "
        + (f"{options.baseline} ({result.baseline_target})" if options.baseline else "none"),
        f"matmul ceiling (NumPy {env['numpy']}, {options.ceiling_size}x{options.ceiling_size} matmul, best of 7, "
        f"{source}): {ceilings}",
        f"machine: {env['processor']}, {env['cpu_count']} CPUs, load average {_load(env)}; "
        f"{_blas_summary(env)}; {_openblas_vars(env)}",
        f"time ({options.clock} clock): median [q1-q3] in ms over {options.repeats} repeats after {options.warmup} "
        "warm-up call(s); "
        "GFLOP/s at the median; %ceil = GFLOP/s / matmul ceiling of the dtype"
        + ("; ratio = median of backend / baseline time over interleaved pairs of calls, [q1-q3] of those ratios"
           if options.baseline else ""),
    ]
    for problem, dtype, difference in result.nonconformant:
        lines.append(f"NOT CONFORMANT (checked at batch 1): {problem} {dtype}: {difference}")
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

    def interrupt(self) -> None:
        """Clear the line on a terminal, so that a message printed next starts on its own line."""
        self.close()

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
        "pause_s": options.pause,
        "nonconformant": [
            {"problem": problem, "dtype": dtype, "difference": difference}
            for problem, dtype, difference in result.nonconformant
        ],
        "environment": result.environment,
        "matmul_ceiling": {
            dtype: {"size": c.size, "gflops": c.gflops, "median_gflops": c.median_gflops,
                    "measured_at": c.measured_at, "cached": c.cached}
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
                "ratio_q1": None if row.ratio_spread is None else row.ratio_spread[0],
                "ratio_q3": None if row.ratio_spread is None else row.ratio_spread[1],
                "pair_ratios": list(row.pair_ratios),
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


def write_report(result: BenchResult, path: Path) -> None:
    """JSON for ``.json``, Markdown for ``.md``."""
    if path.suffix.lower() == ".json":
        write_atomically(path, json.dumps(result_json(result), indent=2) + "\n")
    else:
        write_atomically(path, result_markdown(result))

"""How long `convspec check` takes per profile: the suite's own budgets (quick <= 10 s, ci <= 60 s).

    python benchmarks/suite_times.py [BACKEND ...] [--profiles quick,ci] [--repeats 3]
                                     [--dtypes float64,float32] [--isolation process] [--cache cold,warm,off]
                                     [--per-rule]

Runs the real command (a fresh process each time, so imports and the worker start
are counted) and prints a Markdown table: wall-clock and CPU seconds (user + sys of
the command and the worker processes it waited for), median and range, and for a
backend that compiles per shape the calls of a new shape signature (compilations)
and their time as the report gives them. On a shared machine the CPU time is the
figure to compare: the wall clock grows with the other processes' load.

``--cache`` chooses how compiled kernels are kept between runs (JAX's persistent
compilation cache): ``off`` is ``--no-cache``; ``cold`` runs with an empty cache
directory; ``warm`` runs again on the directory the ``cold`` run filled. With
``--per-rule`` the last run's compilations are also listed per rule.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    wall: float
    cpu: float
    code: int
    #: Calls of a new shape signature and their seconds, from the report.
    first_calls: int = 0
    first_seconds: float = 0.0
    per_rule: Counter[str] = field(default_factory=Counter)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_check(backend: str, profile: str, isolation: str, dtypes: str | None, cache: str, cache_dir: Path) -> Run:
    """One run of ``convspec check`` with its report in a temporary file."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "conformance.cli", "check", backend, "--profile", profile,
                   "--isolation", isolation, "--no-database", "--report", str(report)]
        command += ["--dtypes", dtypes] if dtypes else []
        command += ["--no-cache"] if cache == "off" else []
        env = {**os.environ, "CONVSPEC_CACHE_DIR": str(cache_dir)}
        cpu, start = _children_cpu(), time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        run = Run(time.perf_counter() - start, _children_cpu() - cpu, done.returncode)
        if report.exists():
            for item in json.loads(report.read_text())["results"]:
                run.first_calls += int(item.get("first_calls", 0))
                run.first_seconds += float(item.get("first_call_seconds", 0.0))
                run.per_rule[item["rule"]] += int(item.get("first_calls", 0))
    return run


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("backends", nargs="*", default=["reference"])
    parser.add_argument("--profiles", default="quick,ci")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default=None, help="comma-separated dtypes (default: the command's)")
    parser.add_argument("--isolation", default="process,none", help="process, none or both (default)")
    parser.add_argument("--cache", default="off", help="off, cold, warm, or a comma-separated list (default off)")
    parser.add_argument("--per-rule", action="store_true", help="list the last run's compilations per rule")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    print("| backend | profile | isolation | cache | wall s | CPU s | compilations | their s | exit code |")
    print("|---|---|---|---|---|---|---|---|---|")
    last: Run | None = None
    for backend in args.backends:
        for profile in args.profiles.split(","):
            for isolation in args.isolation.split(","):
                runs: dict[str, list[Run]] = {mode: [] for mode in args.cache.split(",")}
                for _ in range(args.repeats):  # cold and warm alternate, each warm run on its cold run's cache
                    with tempfile.TemporaryDirectory() as cache_dir:
                        for mode in runs:
                            last = time_check(backend, profile, isolation, args.dtypes, mode, Path(cache_dir))
                            runs[mode].append(last)
                for mode, done in runs.items():
                    print(f"| {backend} | {profile} | {isolation} | {mode} | {_spread([r.wall for r in done])} | "
                          f"{_spread([r.cpu for r in done])} | {statistics.median(r.first_calls for r in done):.0f} | "
                          f"{_spread([r.first_seconds for r in done])} | {done[0].code} |", flush=True)
    if args.per_rule and last is not None:
        print("\ncompilations per rule (last run):")
        for rule, count in last.per_rule.most_common():
            print(f"  {rule}: {count}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""How long `convspec check` takes per profile: the suite's own budgets (quick <= 10 s, ci <= 60 s).

    python benchmarks/suite_times.py [BACKEND ...] [--profiles quick,ci] [--repeats 3]

Runs the real command (a fresh process each time, so imports and the worker start
are counted) and prints a Markdown table of wall-clock seconds: median and range.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def time_check(backend: str, profile: str, isolation: str) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "check", backend, "--profile", profile,
                           "--isolation", isolation], capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="*", default=["reference"])
    parser.add_argument("--profiles", default="quick,ci")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| backend | profile | isolation | wall seconds (median, min-max) | exit code |")
    print("|---|---|---|---|---|")
    for backend in args.backends:
        for profile in args.profiles.split(","):
            for isolation in ("process", "none"):
                runs = [time_check(backend, profile, isolation) for _ in range(args.repeats)]
                seconds = [s for s, _ in runs]
                print(f"| {backend} | {profile} | {isolation} | {statistics.median(seconds):.1f} "
                      f"({min(seconds):.1f}-{max(seconds):.1f}) | {runs[0][1]} |", flush=True)


if __name__ == "__main__":
    main()

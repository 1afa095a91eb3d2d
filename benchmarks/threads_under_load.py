"""The reference with 1 and 2 BLAS threads against PyTorch, interleaved, with and without a busy neighbour.

    python benchmarks/threads_under_load.py --shapes resnet50 --repeats 3
    python benchmarks/threads_under_load.py --busy 1      # plus one competing busy process

For each problem of the shape sets, forward + backward (one protocol call each) in
float64, the calls interleaved: reference on 1 BLAS thread, reference on 2, PyTorch
(its native path: its own tensors, one forward and one autograd backward, on its
default threads); each call preceded by a 0.1 s pause so spinning worker threads
of the previous library go to sleep. Prints the median wall time of each and the
median per-round ratios. ``--busy N`` starts N processes that spin on the CPU for
the whole run (and stops them after). The thread count is set per call with
``CONVSPEC_REFERENCE_BLAS_THREADS`` (:mod:`reference.blas`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import reference  # noqa: E402
from conformance.bench.measuring import call_kwargs, make_inputs  # noqa: E402
from conformance.bench.native import torch_native_calls  # noqa: E402
from conformance.bench_shapes import SHAPE_SETS, Problem  # noqa: E402
from reference.blas import THREADS_VARIABLE  # noqa: E402
from spec import OPERATIONS  # noqa: E402


def _spin() -> None:
    while True:
        pass


def _reference_call(problem: Problem, threads: int) -> Callable[[], object]:
    inputs = make_inputs(problem, "float64")
    kwargs = call_kwargs(problem)
    operation = OPERATIONS[problem.op]
    forward = getattr(reference, operation.forward)
    backward = getattr(reference, operation.backward) if operation.backward else None

    def call() -> object:
        os.environ[THREADS_VARIABLE] = str(threads)
        if operation.has_weights:
            y = forward(inputs.x, inputs.w, inputs.b, **kwargs)
            return y, None if backward is None else backward(inputs.x, inputs.w, inputs.dy, **kwargs)
        y = forward(inputs.x, **kwargs)
        return y, None if backward is None else backward(inputs.x, inputs.dy, **kwargs)

    return call


def _torch_call(problem: Problem) -> Callable[[], object]:
    """PyTorch's own path (the bench's ``torch-native`` baseline): one forward with autograd, one backward."""
    calls = torch_native_calls(problem, make_inputs(problem, "float64"))
    return calls.get("fwd+bwd", calls["forward"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="resnet50")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="competing busy processes to start")
    parser.add_argument("--pause", type=float, default=0.1)
    args = parser.parse_args(argv)
    workers = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for worker in workers:
        worker.start()
    try:
        print(f"load average {os.getloadavg()[0]:.2f}; busy processes started: {args.busy}; "
              f"torch threads {torch.get_num_threads()}; median wall ms over {args.repeats} interleaved rounds")
        print("| layer | problem | ref 1 thread ms | ref 2 threads ms | torch ms | 1t / torch | 2t / torch | 2t / 1t |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for name in args.shapes.split(","):
            for named in SHAPE_SETS[name]:
                contenders = [_reference_call(named.problem, 1), _reference_call(named.problem, 2),
                              _torch_call(named.problem)]
                for call in contenders:
                    call()
                times: list[list[float]] = [[] for _ in contenders]
                for _ in range(args.repeats):
                    for i, call in enumerate(contenders):
                        time.sleep(args.pause)
                        start = time.perf_counter()
                        call()
                        times[i].append(time.perf_counter() - start)
                one, two, theirs = (statistics.median(t) * 1e3 for t in times)
                rounds = list(zip(*times))
                r1 = statistics.median(a / c for a, _, c in rounds)
                r2 = statistics.median(b / c for _, b, c in rounds)
                r21 = statistics.median(b / a for a, b, _ in rounds)
                print(f"| {named.label} | `{named.descriptor}` | {one:.1f} | {two:.1f} | {theirs:.1f} | "
                      f"{r1:.2f} | {r2:.2f} | {r21:.2f} |", flush=True)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()
        os.environ.pop(THREADS_VARIABLE, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pooling of the reference against PyTorch's native path, and against an older reference, interleaved.

    python benchmarks/reference_at.py 425f2a6 /tmp/ref_before       # the reference before a change
    PYTHONPATH=/tmp/ref_before python benchmarks/pool_vs_torch.py --before reference_before
    python benchmarks/pool_vs_torch.py --clock cpu --torch-threads 1   # on a machine others load

Every max- and average-pooling problem of the built-in shape sets, float64, in three
modes: forward (PyTorch without autograd), backward (the protocol's backward call,
which recomputes the forward, against PyTorch's autograd backward alone, which reuses
the indices its forward saved) and fwd+bwd (one forward and one backward call; for
PyTorch one forward with autograd and one backward); and every max_pool_indices
problem, forward only (PyTorch's pooling with ``return_indices=True``). The
contenders' calls alternate round by round; each ratio is the median over rounds of
(reference / PyTorch).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import reference  # noqa: E402
from conformance.bench.measuring import call_kwargs, make_inputs  # noqa: E402
from conformance.bench_shapes import SHAPE_SETS, NamedProblem  # noqa: E402

Call = Callable[[], object]
MODES = ("forward", "backward", "fwd+bwd")


def _reference_calls(module: ModuleType, named: NamedProblem) -> dict[str, Call]:
    p = named.problem
    inputs = make_inputs(p, "float64")
    kwargs = call_kwargs(p)
    if p.op == "max_pool_indices":
        indices = module.max_pool_indices
        return {"forward": lambda: indices(inputs.x, **kwargs)}
    forward = getattr(module, f"{p.op}_forward")
    backward = getattr(module, f"{p.op}_backward")
    return {
        "forward": lambda: forward(inputs.x, **kwargs),
        "backward": lambda: backward(inputs.x, inputs.dy, **kwargs),
        "fwd+bwd": lambda: (forward(inputs.x, **kwargs), backward(inputs.x, inputs.dy, **kwargs)),
    }


def _torch_calls(named: NamedProblem) -> dict[str, Call]:
    p = named.problem
    inputs = make_inputs(p, "float64")
    x, dy = torch.from_numpy(inputs.x), torch.from_numpy(inputs.dy)
    pads = [lo for lo, _ in p.padding]
    if p.op == "max_pool_indices":
        with_indices = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[p.ndim - 1]

        def indices() -> object:
            with torch.no_grad():
                return with_indices(x, p.kernel, p.stride, pads, p.dilation, p.ceil_mode, return_indices=True)
        return {"forward": indices}
    if p.op == "max_pool":
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[p.ndim - 1]

        def run(t: torch.Tensor) -> torch.Tensor:
            return pool(t, p.kernel, p.stride, pads, p.dilation, p.ceil_mode)
    else:
        avg = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[p.ndim - 1]

        def run(t: torch.Tensor) -> torch.Tensor:
            return avg(t, p.kernel, p.stride, pads, p.ceil_mode, p.count_include_pad)

    def forward() -> object:
        with torch.no_grad():
            return run(x)

    saved = run(x.detach().requires_grad_(True))

    def backward() -> object:  # autograd's backward alone, from the graph (and indices) of one forward
        saved.backward(dy, retain_graph=True)
        return None

    def both() -> object:
        xg = x.detach().requires_grad_(True)
        return torch.autograd.grad(run(xg), xg, dy)

    return {"forward": forward, "backward": backward, "fwd+bwd": both}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=None, help="an importable older reference, e.g. reference_before")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--only", default="", help="only problems whose descriptor contains this")
    args = parser.parse_args(argv)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    before = importlib.import_module(args.before) if args.before else None
    print(f"load average {os.getloadavg()[0]:.2f}; torch threads {torch.get_num_threads()}; {args.clock} clock; "
          f"median ms over {args.repeats} interleaved rounds; ratio = median over rounds of reference / torch")
    head = "| set | layer | problem | mode | " + ("before ms | " if before else "") + "reference ms | torch ms | "
    head += ("before / torch | " if before else "") + "reference / torch |"
    print(head)
    print("|" + "---|" * 4 + "---:|" * (head.count("|") - 5))
    for set_name, rows in SHAPE_SETS.items():
        for named in rows:
            if named.problem.op not in ("max_pool", "avg_pool", "max_pool_indices") or args.only not in named.descriptor:
                continue
            contenders = ([_reference_calls(before, named)] if before else []) + [
                _reference_calls(reference, named), _torch_calls(named)]
            for mode in (m for m in MODES if m in contenders[-1]):
                calls = [c[mode] for c in contenders]
                for call in calls:
                    call()
                times: list[list[float]] = [[] for _ in calls]
                gc.disable()
                for _ in range(args.repeats):
                    for i, call in enumerate(calls):
                        start = clock()
                        call()
                        times[i].append(clock() - start)
                gc.enable()
                medians = [statistics.median(t) * 1e3 for t in times]
                ratios = [statistics.median(a / b for a, b in zip(t, times[-1])) for t in times[:-1]]
                cells = [f"{m:.2f}" for m in medians] + [f"{r:.2f}" for r in ratios]
                print(f"| {set_name} | {named.label} | `{named.descriptor}` | {mode} | " + " | ".join(cells) + " |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

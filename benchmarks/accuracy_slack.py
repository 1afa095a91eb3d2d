"""How tight the accuracy bounds are: worst error of correct implementations divided by the bound.

    python benchmarks/accuracy_slack.py [--examples 60] [--seed 0] [--write docs/accuracy.md]

For each correct implementation (the reference, an FFT convolution, other
summation orders, float16/bfloat16 summed in float32 or in their own dtype),
each operation and dtype, the suite's own strategies draw cases (the value
kinds with rounding: ``floats`` and ``wide``; sizes up to the long-reduction
class) and the script records ``max |error| / bound`` over every result element
(fast class: each slice's smaller ratio, elementwise or normwise). A ratio <= 1
is a pass; the closer to 1, the tighter the bound. Prints a Markdown table, or
writes it between the ``slack:start`` / ``slack:end`` markers of ``--write``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import reference  # noqa: E402
import spec  # noqa: E402
from conformance.compare import Bound, backward_bounds, expected_backward, expected_forward, forward_bound  # noqa: E402
from conformance.strategies import Case, cases  # noqa: E402
from tests.broken.correct import FFT, OFFSET_ORDER, REVERSED_PAIRWISE, REVERSED_PAIRWISE_F32  # noqa: E402

OPS: tuple[spec.OpName, ...] = ("conv", "avg_pool", "linear", "max_pool")
#: (label, backend, dtypes, operations)
IMPLEMENTATIONS: list[tuple[str, Any, tuple[str, ...], tuple[spec.OpName, ...]]] = [
    ("reference (float16/bfloat16 summed in float32)", reference, spec.DTYPES, OPS),
    ("FFT convolution (`accuracy=\"fast\"`)", FFT, spec.DTYPES, ("conv",)),
    ("reversed offsets, pairwise channels", REVERSED_PAIRWISE, ("float64", "float32"), ("conv", "avg_pool", "linear")),
    ("reversed + pairwise, summed in float32", REVERSED_PAIRWISE_F32, ("float16", "bfloat16"),
     ("conv", "avg_pool", "linear")),
    ("summed in the dtype (declared accumulation)", OFFSET_ORDER, ("float16", "bfloat16"),
     ("conv", "avg_pool", "linear")),
]


def draw_cases(op: spec.OpName, caps: spec.Capabilities, dtype: str, examples: int, seed: int) -> list[Case]:
    """``examples`` cases from the suite's strategies, reproducibly."""
    drawn: list[Case] = []
    strategy = st.builds(lambda c: c, cases(op, caps, dtype, kinds=("floats", "wide")))

    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case: Case) -> None:
        drawn.append(case)

    collect._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]
    collect()
    return drawn


def ratio(actual: Any, expected: Any, bound: Bound) -> float:
    """max |error| / bound over the elements (fast class: per slice, the smaller of elementwise and normwise)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if e.size == 0:
        return 0.0
    err = np.abs(a - e)
    b = np.broadcast_to(bound.elementwise, e.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(err == 0, 0.0, err / b)
    if bound.normwise is None or bound.slice_axes is None:
        return float(np.max(per))
    other = tuple(i for i in range(e.ndim) if i not in bound.slice_axes)
    elementwise = np.max(per, axis=other) if other else per
    norms = np.sqrt(np.sum(err ** 2, axis=other)) if other else err
    with np.errstate(divide="ignore", invalid="ignore"):
        normwise = np.where(norms == 0, 0.0, norms / bound.normwise)
    return float(np.max(np.minimum(elementwise, normwise)))


def measure(backend: Any, op: spec.OpName, dtype: str, examples: int, seed: int) -> tuple[float, float, int]:
    """(worst forward ratio, worst backward ratio, longest reduction seen) over the drawn cases."""
    caps = spec.capabilities_of(backend)
    worst_fwd = worst_bwd = 0.0
    longest = 0
    for case in draw_cases(op, caps, dtype, examples, seed):
        p, i = case.problem, case.inputs
        args = (i.x, i.w, i.b) if op in ("conv", "linear") else (i.x,)
        y = getattr(backend, f"{op}_forward")(*args, **p.params)
        worst_fwd = max(worst_fwd, ratio(y, expected_forward(case), forward_bound(case, caps)))
        back_args = (i.x, i.w, i.dy) if op in ("conv", "linear") else (i.x, i.dy)
        grads = getattr(backend, f"{op}_backward")(*back_args, **p.params)
        named = dict(zip(("dx", "dw", "db"), grads)) if isinstance(grads, tuple) else {"dx": grads}
        want, bounds = expected_backward(case), backward_bounds(case, caps)
        for name, g in named.items():
            worst_bwd = max(worst_bwd, ratio(g, want[name], bounds[name]))
        if op == "conv":
            out = p.output_shape()
            longest = max(longest, out[0] * math.prod(out[2:]))
    return worst_fwd, worst_bwd, longest


def table(examples: int, seed: int) -> str:
    lines = [f"Generated by `python benchmarks/accuracy_slack.py --examples {examples} --seed {seed}`: the worst "
             "`|error| / bound` over every result element of the drawn cases, forward / backward. "
             "Below 1 passes; max pooling's forward bound is 0 (exact), so its entry is 0 or inf.", "",
             "| implementation | dtype | " + " | ".join(OPS) + " | longest dW reduction |",
             "|---|---|" + "---|" * len(OPS) + "---:|"]
    for label, backend, dtypes, ops in IMPLEMENTATIONS:
        for dtype in dtypes:
            cells, longest = [], 0
            for op in OPS:
                if op not in ops:
                    cells.append("–")
                    continue
                fwd, bwd, k = measure(backend, op, dtype, examples, seed)
                longest = max(longest, k)
                cells.append(f"{fwd:.3g} / {bwd:.3g}")
            lines.append(f"| {label} | {dtype} | " + " | ".join(cells) + f" | {longest} |")
            print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=60, help="cases per implementation, operation and dtype")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, help="a Markdown file with <!-- slack:start --> / <!-- slack:end -->")
    args = parser.parse_args()
    start = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        text = table(args.examples, args.seed)
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    if args.write is None:
        print(text)
        return
    doc = args.write.read_text()
    pattern = re.compile(r"(<!-- slack:start -->\n).*?(<!-- slack:end -->)", re.S)
    if not pattern.search(doc):
        parser.error(f"{args.write} has no <!-- slack:start --> / <!-- slack:end --> markers")
    args.write.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc))


if __name__ == "__main__":
    main()

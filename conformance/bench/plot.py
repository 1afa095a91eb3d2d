"""``convspec bench --plot``: GFLOP/s per problem, backend beside baseline (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.bench.measuring import BenchResult, Row
from conformance.bench_shapes import MODES
from conformance.textio import replacing


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
    try:
        with replacing(path) as temporary:
            fig.savefig(temporary, dpi=110, format="png")
    finally:
        plt.close(fig)

"""Draw the figures of the spec documents from the reference implementation itself.

    python scripts/make_figures.py [--out spec/docs/figures]

Nothing drawn here is typed in by hand: which input elements a window covers
is read off the reference's own gradients (the dX of a one-hot dY marks the
window of that output), output sizes come from :func:`spec.output_size`, the
average-pool divisors from the reference's average-pool gradient, the channel
blocks of groups from which input channels a one-hot output channel reaches,
and the maxima that receive max-pool gradients from ``max_pool_backward``.
So a change to the reference that moves a window changes the picture, and
tests/test_figures.py, which regenerates the figures and compares pixels,
fails until they are redrawn. Needs ``pip install 'convspec[plot]'``.

Rendering is deterministic: the Agg backend, a fixed size and DPI, matplotlib's
bundled DejaVu fonts and no metadata in the PNG files.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import reference  # noqa: E402
import spec  # noqa: E402

OUT = ROOT / "spec" / "docs" / "figures"
MANIFEST = "figures.json"
DPI = 100
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
PAD_GREY = "#d9d9d9"
STYLE = {"font.family": "DejaVu Sans", "font.size": 10, "axes.titlesize": 11, "svg.hashsalt": "convspec",
         "path.simplify": False}


# --------------------------------------------------------------------------- what the reference says

def conv_taps(size: tuple[int, int], kernel: tuple[int, int], out: tuple[int, int], *, stride: int = 1,
              dilation: int = 1) -> list[tuple[int, int]]:
    """The input positions (row, column) the window of output ``out`` covers, from the reference's dX.

    ``size`` is the input as the kernel sees it (padding included: pass the padded size, padding 0).
    """
    x = np.ones((1, 1, *size))
    w = np.ones((1, 1, *kernel))
    params = spec.conv_params(size, kernel, stride=stride, dilation=dilation)._asdict()
    y_shape = reference.conv_forward(x, w, None, **params).shape
    dy = np.zeros(y_shape)
    dy[(0, 0, *out)] = 1.0
    dx = reference.conv_backward(x, w, dy, **params)[0][0, 0]
    return [(int(r), int(c)) for r, c in zip(*np.nonzero(dx))]


def avg_pool_windows(n: int, kernel: int, stride: int, padding: int, *, ceil_mode: bool,
                     count_include_pad: bool) -> list[tuple[list[int], float]]:
    """For each output of a 1-D average pool: the real input indices it averages and its divisor.

    The divisor is read off the reference's gradient: a one-hot dY gives 1/divisor at each real element.
    """
    params = spec.pool_params((n,), kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                              count_include_pad=count_include_pad)._asdict()
    x = np.ones((1, 1, n))
    outputs = reference.avg_pool_forward(x, **params).shape[-1]
    windows = []
    for j in range(outputs):
        dy = np.zeros((1, 1, outputs))
        dy[0, 0, j] = 1.0
        dx = reference.avg_pool_backward(x, dy, **params)[0, 0]
        members = [int(i) for i in np.nonzero(dx)[0]]
        windows.append((members, 1.0 / float(dx[members[0]]) if members else math.nan))
    return windows


def group_connections(c_in: int, c_out: int, groups: int) -> np.ndarray[Any, Any]:
    """connections[o, c] is True when output channel o reads input channel c (from the reference's dX)."""
    x = np.ones((1, c_in, 1, 1))
    w = np.ones((c_out, c_in // groups, 1, 1))
    params = spec.conv_params((1, 1), (1, 1), groups=groups)._asdict()
    rows = []
    for o in range(c_out):
        dy = np.zeros((1, c_out, 1, 1))
        dy[0, o] = 1.0
        rows.append(reference.conv_backward(x, w, dy, **params)[0][0, :, 0, 0] != 0)
    return np.array(rows)


# --------------------------------------------------------------------------- drawing helpers

def _grid(ax: Axes, rows: int, cols: int, *, origin: tuple[float, float] = (0.0, 0.0), colour: str = "#999999",
          width: float = 0.6) -> None:
    x0, y0 = origin
    for r in range(rows + 1):
        ax.plot([x0, x0 + cols], [y0 + r, y0 + r], color=colour, lw=width, zorder=1)
    for c in range(cols + 1):
        ax.plot([x0 + c, x0 + c], [y0, y0 + rows], color=colour, lw=width, zorder=1)


def _cell(ax: Axes, row: int, col: int, colour: str, *, origin: tuple[float, float] = (0.0, 0.0), alpha: float = 1.0,
          hatch: str | None = None, zorder: int = 0) -> None:
    ax.add_patch(Rectangle((origin[0] + col, origin[1] + row), 1, 1, facecolor=colour, edgecolor="none", alpha=alpha,
                           hatch=hatch, zorder=zorder))


def _outline(ax: Axes, rows: tuple[int, int], cols: tuple[int, int], colour: str, *,
             origin: tuple[float, float] = (0.0, 0.0), lw: float = 2.2, ls: str = "-") -> None:
    (r0, r1), (c0, c1) = rows, cols
    ax.add_patch(Rectangle((origin[0] + c0, origin[1] + r0), c1 - c0 + 1, r1 - r0 + 1, fill=False, edgecolor=colour,
                           lw=lw, ls=ls, zorder=4))


def _frame(ax: Axes, width: float, height: float) -> None:
    ax.set_xlim(-0.5, width + 0.5)
    ax.set_ylim(height + 0.5, -0.5)  # row 0 at the top, as arrays print
    ax.set_aspect("equal")
    ax.axis("off")


def _figure(width: float, height: float) -> Figure:
    return plt.figure(figsize=(width, height), dpi=DPI)


# --------------------------------------------------------------------------- the figures

def figure_windows() -> Figure:
    """A 2-D window grid: padding, stride and dilation on a 7×7 input."""
    n, k, pad, stride, dilation = 7, 3, 1, 2, 2
    padded = n + 2 * pad
    out = spec.output_size(n, k, stride=stride, padding=(pad, pad), dilation=dilation)
    fig = _figure(9.0, 4.6)
    ax, ax_out = fig.add_axes((0.02, 0.02, 0.6, 0.84)), fig.add_axes((0.66, 0.2, 0.32, 0.5))
    for r in range(padded):
        for c in range(padded):
            if not (pad <= r < pad + n and pad <= c < pad + n):
                _cell(ax, r, c, PAD_GREY)
    _grid(ax, padded, padded)
    shown = [(0, 0), (0, 1), (1, 0)]
    for colour, position in zip(COLOURS, shown):
        taps = conv_taps((padded, padded), (k, k), position, stride=stride, dilation=dilation)
        for i, (r, c) in enumerate(taps):
            offset = 0.18 * (shown.index(position) - 1)
            ax.add_patch(plt.Circle((c + 0.5 + offset, r + 0.5 + offset), 0.16, color=colour, zorder=5))
            if i == 0:
                rows, cols = zip(*taps)
                _outline(ax, (min(rows), max(rows)), (min(cols), max(cols)), colour, lw=1.6, ls="--")
    ax.annotate("", xy=(2 + 0.5, -0.25), xytext=(0.5, -0.25),
                arrowprops={"arrowstyle": "->", "color": COLOURS[1], "lw": 1.5})
    ax.text(1.5, -0.45, f"stride {stride}", ha="center", va="bottom", color=COLOURS[1])
    ax.text(padded + 0.1, 0.5, f"grey: padding {pad}", va="center", ha="left", fontsize=9)
    ax.text(padded + 0.1, 1.3, f"dots: the {k}×{k} taps,", va="center", ha="left", fontsize=9)
    ax.text(padded + 0.1, 2.0, f"dilation {dilation} apart", va="center", ha="left", fontsize=9)
    for i, (colour, (r, c)) in enumerate(zip(COLOURS, shown)):
        ax.text(padded + 0.1, 3.2 + 0.8 * i, f"● window of output ({r}, {c})", color=colour, va="center", ha="left",
                fontsize=9)
    _frame(ax, padded + 3.2, padded)
    ax.set_title(f"input {n}×{n}, padding {pad}, kernel {k}×{k}, stride {stride}, dilation {dilation}", pad=14)
    for colour, (r, c) in zip(COLOURS, shown):
        _cell(ax_out, r, c, colour, alpha=0.85)
    _grid(ax_out, out, out)
    _frame(ax_out, out, out)
    ax_out.set_title(f"output {out}×{out}\n(⌊({n} + 2·{pad} − {dilation}·({k}−1) − 1)/{stride}⌋ + 1 = {out})",
                     fontsize=9)
    return fig


def figure_ceil_mode() -> Figure:
    """Ceil mode's extra window and the divisor of each average (1-D, n = 6, kernel 3, stride 2, padding 1)."""
    n, k, stride, pad = 6, 3, 2, 1
    cases = [("floor mode", False, True), ("ceil mode, count_include_pad=True", True, True),
             ("ceil mode, count_include_pad=False", True, False)]
    fig = _figure(9.0, 5.4)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.9))
    row_height = 3.2
    length = n + 2 * pad + 1  # one cell past the after-padding, where the ceil window overhangs
    for row, (title, ceil_mode, include) in enumerate(cases):
        y = row * row_height
        windows = avg_pool_windows(n, k, stride, pad, ceil_mode=ceil_mode, count_include_pad=include)
        for i in range(length):
            kind = "pad" if i < pad or n + pad <= i < n + 2 * pad else "beyond" if i >= n + 2 * pad else "real"
            colour = {"pad": PAD_GREY, "real": "white", "beyond": "white"}[kind]
            ax.add_patch(Rectangle((i, y + 1), 1, 1, facecolor=colour, edgecolor="#666666",
                                   ls=":" if kind == "beyond" else "-", lw=0.8))
            if kind == "real":
                ax.text(i + 0.5, y + 1.5, f"x{i - pad}", ha="center", va="center", fontsize=9)
        for j, (members, divisor) in enumerate(windows):
            start = j * stride
            colour = COLOURS[j]
            ax.add_patch(Rectangle((start + 0.06, y + 0.2 + 0.12 * j), k - 0.12, 0.08, color=colour))
            extra = ceil_mode and j == len(windows) - 1 and j >= spec.output_size(n, k, stride=stride, padding=(pad, pad))
            ax.text(start + k / 2, y + 0.15 + 0.12 * j, f"÷{divisor:g}", color=colour, fontsize=9, ha="center",
                    va="bottom")
            if extra:
                ax.text(start + k + 0.1, y + 0.24 + 0.12 * j, "← the extra window", color=colour, fontsize=9,
                        va="center")
            assert all(start <= m + pad < start + k for m in members)
        ax.text(0, y - 0.45, f"{title}: {len(windows)} windows", fontsize=10, ha="left", va="center")
    ax.text(length + 0.2, 1.5, "grey: padding\ndotted: past the\npadding (never\ncounted)", fontsize=9, va="center")
    _frame(ax, length + 3.2, row_height * len(cases) - 0.8)
    ax.set_ylim(row_height * len(cases) - 0.8, -1.0)
    fig.suptitle(f"average pooling, n = {n}, kernel {k}, stride {stride}, padding {pad}: windows and divisors",
                 fontsize=11)
    return fig


def figure_groups() -> Figure:
    """Groups as channel blocks: which input channels each output channel reads."""
    settings = [(6, 4, 1), (6, 4, 2), (6, 6, 6)]
    fig = _figure(9.0, 3.6)
    for index, (c_in, c_out, groups) in enumerate(settings):
        ax = fig.add_axes((0.03 + index * 0.33, 0.05, 0.28, 0.72))
        connected = group_connections(c_in, c_out, groups)
        block = c_in // groups
        for o in range(c_out):
            for c in range(c_in):
                if connected[o, c]:
                    _cell(ax, o, c, COLOURS[c // block % len(COLOURS)], alpha=0.8)
        _grid(ax, c_out, c_in)
        for c in range(c_in):
            ax.text(c + 0.5, -0.25, str(c), ha="center", va="bottom", fontsize=8)
        for o in range(c_out):
            ax.text(-0.25, o + 0.5, str(o), ha="right", va="center", fontsize=8)
        _frame(ax, c_in, c_out)
        name = " (depthwise)" if groups == c_in == c_out else ""
        ax.set_title(f"groups={groups}{name}\n{c_in} in × {c_out} out channels", fontsize=10)
    fig.text(0.5, 0.94, "rows: output channels, columns: input channels read; each group a contiguous block",
             ha="center", fontsize=10)
    return fig


def _matrix(ax: Axes, values: np.ndarray[Any, Any], title: str, *, fmt: Callable[[float], str] = lambda v: f"{v:g}",
            highlight: np.ndarray[Any, Any] | None = None, cmap: str = "Blues") -> None:
    rows, cols = values.shape
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    colours = plt.get_cmap(cmap)
    for r in range(rows):
        for c in range(cols):
            v = float(values[r, c])
            if v != 0:
                _cell(ax, r, c, colours(0.15 + 0.6 * abs(v) / top))
            ax.text(c + 0.5, r + 0.5, fmt(v), ha="center", va="center", fontsize=9)
            if highlight is not None and highlight[r, c]:
                _outline(ax, (r, r), (c, c), "#d62728", lw=2.0)
    _grid(ax, rows, cols)
    _frame(ax, cols, rows)
    ax.set_title(title, fontsize=9.5)


def figure_conv_backward() -> Figure:
    """Where conv's gradients flow: one dY element spreads over its window (dX gets w, dW gets x)."""
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5) % 7
    w = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0], [1.0, 0.0, 2.0]]).reshape(1, 1, 3, 3)
    params = spec.conv_params((5, 5), (3, 3))._asdict()
    dy = np.zeros((1, 1, 3, 3))
    dy[0, 0, 1, 2] = 1.0
    dx, dw, _ = reference.conv_backward(x, w, dy, **params)
    counts = reference.conv_backward(np.ones_like(x), np.ones_like(w), np.ones_like(dy), **params)[0]
    taps = conv_taps((5, 5), (3, 3), (1, 2))
    window = np.zeros((5, 5), dtype=bool)
    window[tuple(zip(*taps))] = True
    fig = _figure(9.0, 6.6)
    panels = [(dy[0, 0], "dY: a single 1, at (1, 2)", None), (x[0, 0], "x: the window of y(1, 2)", window),
              (w[0, 0], "w", None), (dx[0, 0], "dX: w laid on that window", window),
              (dw[0, 0], "dW: x under that window", None),
              (counts[0, 0], "dX when dY = 1 everywhere\n(w = 1): windows covering x", None)]
    for index, (values, title, highlight) in enumerate(panels):
        row, col = divmod(index, 3)
        ax = fig.add_axes((0.02 + col * 0.33, 0.52 - row * 0.49, 0.28, 0.36))
        _matrix(ax, values, title, highlight=highlight)
    fig.suptitle("conv backward, 3×3 kernel, stride 1: each dY element sends w to its window of dX\n"
                 "and its window of x to dW (dX and dW sum these over every dY element)", fontsize=10)
    return fig


def figure_max_pool_backward() -> Figure:
    """Where max pooling's gradient flows: to the first maximum of each window (ties included)."""
    x = np.array([[1.0, 5.0, 2.0, 0.0], [3.0, 5.0, 4.0, 4.0], [0.0, 2.0, 6.0, 1.0], [7.0, 1.0, 6.0, 3.0]])
    params = spec.pool_params((4, 4), 2, stride=1).max_pool_kwargs()
    y = reference.max_pool_forward(x.reshape(1, 1, 4, 4), **params)[0, 0]
    dy = np.ones_like(y)
    dx = reference.max_pool_backward(x.reshape(1, 1, 4, 4), dy.reshape(1, 1, *y.shape), **params)[0, 0]
    fig = _figure(9.0, 3.5)
    panels = [(x, "x (ties: 5, 5 and 6, 6)", dx != 0), (y, "y = max over each 2×2 window,\nstride 1", None),
              (dy, "dY = 1 everywhere", None), (dx, "dX: each window's 1 goes to\nits first maximum (row-major)", dx != 0)]
    for index, (values, title, highlight) in enumerate(panels):
        ax = fig.add_axes((0.01 + index * 0.25, 0.05, 0.22, 0.68))
        _matrix(ax, values, title, highlight=highlight, cmap="Oranges")
    fig.suptitle("max pooling backward: gradients are routed, not spread; a tie goes to the first maximum only",
                 fontsize=10)
    return fig


def figure_seed_example() -> Figure:
    """The seed example: 28×28 input, 4×4 kernel, stride 2 → 13×13 output."""
    n, k, stride = 28, 4, 2
    out = spec.output_size(n, k, stride=stride)
    fig = _figure(9.0, 4.8)
    ax, ax_out = fig.add_axes((0.01, 0.02, 0.55, 0.86)), fig.add_axes((0.6, 0.16, 0.38, 0.6))
    _grid(ax, n, n, colour="#bbbbbb", width=0.4)
    shown = [(0, 0), (0, 1), (out - 1, out - 1)]
    for colour, position in zip(COLOURS, shown):
        taps = conv_taps((n, n), (k, k), position, stride=stride)
        for r, c in taps:
            _cell(ax, r, c, colour, alpha=0.35)
        rows, cols = zip(*taps)
        _outline(ax, (min(rows), max(rows)), (min(cols), max(cols)), colour, lw=1.6)
        _cell(ax_out, *position, colour, alpha=0.85)
    _frame(ax, n, n)
    ax.set_title(f"input {n}×{n}: windows of outputs (0,0), (0,1) and ({out - 1},{out - 1})", fontsize=10)
    _grid(ax_out, out, out, width=0.5)
    _frame(ax_out, out, out)
    ax_out.set_title(f"output {out}×{out} per filter\n({n} − {k} + 2·0)/{stride} + 1 = {out}", fontsize=10)
    return fig


FIGURES: dict[str, Callable[[], Figure]] = {
    "windows.png": figure_windows,
    "ceil_mode.png": figure_ceil_mode,
    "groups.png": figure_groups,
    "conv_backward.png": figure_conv_backward,
    "max_pool_backward.png": figure_max_pool_backward,
    "seed_example.png": figure_seed_example,
}


def render(out: Path, names: list[str] | None = None) -> list[Path]:
    """Draw the figures into ``out``, with a manifest naming the matplotlib that drew them; returns the PNG files."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(STYLE):
        for name in names or list(FIGURES):
            fig = FIGURES[name]()
            path = out / name
            fig.savefig(path, dpi=DPI, metadata={"Software": None}, facecolor="white")
            plt.close(fig)
            written.append(path)
    manifest = {"matplotlib": matplotlib.__version__, "figures": sorted(FIGURES)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return written


def differences(committed: Path, fresh: Path, *, tolerance: float = 0.0) -> list[str]:
    """The figures in ``committed`` that do not match those just drawn in ``fresh``, one line each.

    Pixels are compared, not bytes. ``tolerance`` is the largest RMS difference
    (on a 0–255 scale) allowed; 0 asks for identical pixels, which the same
    matplotlib gives.
    """
    import matplotlib.image as image

    problems = []
    for name in FIGURES:
        old, new = committed / name, fresh / name
        if not old.exists():
            problems.append(f"{name}: not committed")
            continue
        a = (image.imread(old) * 255).astype(np.float64)
        b = (image.imread(new) * 255).astype(np.float64)
        if a.shape != b.shape:
            problems.append(f"{name}: {a.shape[1]}×{a.shape[0]} pixels, but drawn now {b.shape[1]}×{b.shape[0]}")
            continue
        rms = float(np.sqrt(np.mean((a - b) ** 2)))
        if rms > tolerance:
            changed = int(np.count_nonzero(np.any(a != b, axis=-1)))
            problems.append(f"{name}: {changed} pixels differ (RMS {rms:.3f} > {tolerance:g})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw the spec's figures from the reference implementation.")
    parser.add_argument("--out", type=Path, default=OUT, help=f"directory of the PNG files (default {OUT.relative_to(ROOT)})")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"figures to draw (default: all of {', '.join(FIGURES)})")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    for path in render(args.out, args.names or None):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Check the NumPy reference against PyTorch (float64, CPU) on random configurations.

Run after every change to ``reference/``::

    python benchmarks/check_against_torch.py --cases 300 --seed 0

Convolution: 1 to 3 spatial dims, batch 0 to 3, groups, stride, dilation and
asymmetric padding (PyTorch gets it through ``F.pad``). Max and average pooling:
symmetric padding up to half the kernel (PyTorch's limit), ceil mode,
``count_include_pad``, max-pool dilation, and integer-valued inputs in half of
the cases so that ties in a window exercise the first-maximum rule. Linear:
batch 0 to 4. Forward outputs and every gradient (autograd with a random
upstream gradient) must agree within ``atol=1e-10``. Exits 1 on any mismatch
and prints the configuration that failed.

Operations the reference has beyond the protocol's four (spec/docs/conv_transpose.md,
max_pool_indices.md, adaptive_pool.md): transposed convolution (1 to 3 dims, groups,
stride, dilation, symmetric padding, ``output_padding`` up to ``max(stride, dilation) - 1``),
max pooling's ``return_indices`` (compared wherever the window holds a real element and no
NaN), and adaptive average / max pooling with output sizes from 1 (global) to beyond the
input, indices included. ``--ops`` selects a subset.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import reference  # noqa: E402
import spec  # noqa: E402

ATOL = 1e-10
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
ADAPTIVE_AVG: dict[int, Callable[..., Any]] = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
ADAPTIVE_MAX: dict[int, Callable[..., Any]] = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


def _t(a: np.ndarray[Any, Any], grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _flat_pairs(padding: tuple[tuple[int, int], ...]) -> list[int]:
    """F.pad lists the last dim first."""
    return [v for lo, hi in reversed(padding) for v in (lo, hi)]


def _close(name: str, mine: np.ndarray[Any, Any], theirs: torch.Tensor | np.ndarray[Any, Any], config: str) -> bool:
    expected = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    if mine.shape != expected.shape:
        print(f"FAIL {name}: shape {mine.shape}, but should be {expected.shape} [{config}]")
        return False
    if not np.allclose(mine, expected, atol=ATOL, rtol=0, equal_nan=True):
        diff = np.abs(mine - expected)
        where = np.unravel_index(int(np.nanargmax(diff)), diff.shape) if diff.size else ()
        print(f"FAIL {name}: max |diff| {np.nanmax(diff):.3g} at {where} [{config}]")
        return False
    return True


def _data(rng: np.random.Generator, shape: tuple[int, ...], integers: bool) -> np.ndarray[Any, Any]:
    if integers:
        return rng.integers(-3, 4, size=shape).astype(np.float64)
    return rng.standard_normal(shape)


def check_conv(rng: np.random.Generator) -> bool:
    nd = int(rng.integers(1, 4))
    groups = int(rng.integers(1, 4))
    cg, og = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    n = int(rng.integers(0, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
    padding = tuple((int(lo), int(hi)) for lo, hi in rng.integers(0, 4, (nd, 2)))
    spatial = []
    # A third of the cases get >= 128 output positions per sample (the reference's batch-major path).
    large = rng.random() < 1 / 3
    for k, d, (lo, hi) in zip(kernel, dilation, padding):
        smallest = max(1, d * (k - 1) + 1 - lo - hi)
        extra = {1: 400, 2: 40, 3: 18}[nd] if large else (6 if nd < 3 else 4)
        low = smallest + extra // 2 if large else smallest
        spatial.append(int(rng.integers(low, smallest + extra)))
    x = rng.standard_normal((n, cg * groups, *spatial))
    w = rng.standard_normal((og * groups, cg, *kernel))
    b = rng.standard_normal(og * groups) if rng.random() < 0.8 else None
    config = (f"conv x{x.shape} w{w.shape} bias={b is not None} stride={stride} padding={padding} "
              f"dilation={dilation} groups={groups}")
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    xt, wt = _t(x, True), _t(w, True)
    bt = _t(b, True) if b is not None else _t(np.zeros(w.shape[0]), True)
    yt = CONV[nd](F.pad(xt, _flat_pairs(padding)), wt, bt, stride=stride, dilation=dilation, groups=groups)
    dy = rng.standard_normal(tuple(yt.shape))
    dxt, dwt, dbt = torch.autograd.grad(yt, (xt, wt, bt), _t(dy))
    y = reference.conv_forward(x, w, b, **kwargs)
    dx, dw, db = reference.conv_backward(x, w, dy, **kwargs)
    return all([
        _close("conv_forward y", y, yt, config), _close("conv_backward dx", dx, dxt, config),
        _close("conv_backward dw", dw, dwt, config), _close("conv_backward db", db, dbt, config),
    ])


def _pool_config(rng: np.random.Generator, *, dilated: bool) -> tuple[int, tuple[int, ...], dict[str, Any], tuple[int, ...]]:
    nd = int(rng.integers(1, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd)) if dilated else (1,) * nd
    pads = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    spatial = []
    large = rng.random() < 1 / 4
    for k, d, p in zip(kernel, dilation, pads):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)
        extra = {1: 200, 2: 30, 3: 12}[nd] if large else (7 if nd < 3 else 4)
        spatial.append(int(rng.integers(smallest, smallest + extra)))
    kwargs: dict[str, Any] = {
        "kernel_size": kernel, "stride": stride, "padding": tuple((p, p) for p in pads), "dilation": dilation,
        "ceil_mode": bool(rng.random() < 0.5),
    }
    return nd, pads, kwargs, (int(rng.integers(0, 4)), int(rng.integers(1, 4)), *spatial)


def check_max_pool(rng: np.random.Generator) -> bool:
    nd, pads, kwargs, shape = _pool_config(rng, dilated=True)
    if any(size < 1 for size in spec.pool_output_shape(np.empty(shape), **kwargs)[2:]):
        return True
    x = _data(rng, shape, integers=bool(rng.random() < 0.5))
    config = f"max_pool x{x.shape} {kwargs}"
    xt = _t(x, True)
    yt = MAX_POOL[nd](xt, kwargs["kernel_size"], kwargs["stride"], pads, kwargs["dilation"], ceil_mode=kwargs["ceil_mode"])
    y = reference.max_pool_forward(x, **kwargs)
    if not _close("max_pool_forward y", y, yt, config):
        return False
    if np.isneginf(y).any():
        # A window entirely in padding: the spec routes its gradient nowhere; PyTorch's backward picks an
        # arbitrary element there and has been seen to corrupt the heap ("free(): invalid size"), so skip it.
        return True
    dy = rng.standard_normal(tuple(yt.shape))
    (dxt,) = torch.autograd.grad(yt, (xt,), _t(dy))
    dx = reference.max_pool_backward(x, dy, **kwargs)
    return _close("max_pool_backward dx", dx, dxt, config)


def check_avg_pool(rng: np.random.Generator) -> bool:
    nd, pads, kwargs, shape = _pool_config(rng, dilated=False)
    if any(size < 1 for size in spec.pool_output_shape(np.empty(shape), **kwargs)[2:]):
        return True
    kwargs["count_include_pad"] = bool(rng.random() < 0.5)
    x = rng.standard_normal(shape)
    config = f"avg_pool x{x.shape} {kwargs}"
    xt = _t(x, True)
    try:
        yt = AVG_POOL[nd](
            xt, kwargs["kernel_size"], kwargs["stride"], pads, ceil_mode=kwargs["ceil_mode"],
            count_include_pad=kwargs["count_include_pad"],
        )
    except RuntimeError:  # PyTorch's own shape limits (e.g. an input dim smaller than the kernel)
        return True
    dy = rng.standard_normal(tuple(yt.shape))
    (dxt,) = torch.autograd.grad(yt, (xt,), _t(dy))
    y = reference.avg_pool_forward(x, **kwargs)
    dx = reference.avg_pool_backward(x, dy, **kwargs)
    return _close("avg_pool_forward y", y, yt, config) and _close("avg_pool_backward dx", dx, dxt, config)


def check_linear(rng: np.random.Generator) -> bool:
    n, fan_in, fan_out = int(rng.integers(0, 5)), int(rng.integers(1, 40)), int(rng.integers(1, 40))
    x, w = rng.standard_normal((n, fan_in)), rng.standard_normal((fan_out, fan_in))
    b = rng.standard_normal(fan_out) if rng.random() < 0.8 else None
    config = f"linear x{x.shape} w{w.shape} bias={b is not None}"
    xt, wt = _t(x, True), _t(w, True)
    bt = _t(b, True) if b is not None else _t(np.zeros(fan_out), True)
    yt = F.linear(xt, wt, bt)
    dy = rng.standard_normal(tuple(yt.shape))
    dxt, dwt, dbt = torch.autograd.grad(yt, (xt, wt, bt), _t(dy))
    y = reference.linear_forward(x, w, b)
    dx, dw, db = reference.linear_backward(x, w, dy)
    return all([
        _close("linear_forward y", y, yt, config), _close("linear_backward dx", dx, dxt, config),
        _close("linear_backward dw", dw, dwt, config), _close("linear_backward db", db, dbt, config),
    ])


def check_conv_transpose(rng: np.random.Generator) -> bool:
    nd = int(rng.integers(1, 4))
    groups = int(rng.integers(1, 4))
    cg, og = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    n = int(rng.integers(0, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
    extra = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    large = rng.random() < 1 / 4
    spatial = tuple(int(rng.integers(1, {1: 60, 2: 16, 3: 6}[nd] if large else (5 if nd < 3 else 3))) for _ in range(nd))
    # Symmetric padding (PyTorch's only form) up to 2, leaving at least one output position.
    full = [(n - 1) * s + d * (k - 1) + e + 1 for n, k, s, d, e in zip(spatial, kernel, stride, dilation, extra)]
    pads = tuple(int(rng.integers(0, min(2, (length - 1) // 2) + 1)) for length in full)
    kwargs: dict[str, Any] = {
        "stride": stride, "padding": tuple((p, p) for p in pads), "output_padding": extra, "dilation": dilation,
        "groups": groups,
    }
    x = rng.standard_normal((n, cg * groups, *spatial))
    w = rng.standard_normal((cg * groups, og, *kernel))
    b = rng.standard_normal(og * groups) if rng.random() < 0.8 else None
    config = f"conv_transpose x{x.shape} w{w.shape} bias={b is not None} {kwargs}"
    xt, wt = _t(x, True), _t(w, True)
    bt = _t(b, True) if b is not None else _t(np.zeros(og * groups), True)
    yt = CONV_TRANSPOSE[nd](xt, wt, bt, stride=stride, padding=pads, output_padding=extra, groups=groups, dilation=dilation)
    dy = rng.standard_normal(tuple(yt.shape))
    dxt, dwt, dbt = torch.autograd.grad(yt, (xt, wt, bt), _t(dy))
    y = reference.conv_transpose_forward(x, w, b, **kwargs)
    dx, dw, db = reference.conv_transpose_backward(x, w, dy, **kwargs)
    return all([
        _close("conv_transpose_forward y", y, yt, config), _close("conv_transpose_backward dx", dx, dxt, config),
        _close("conv_transpose_backward dw", dw, dwt, config), _close("conv_transpose_backward db", db, dbt, config),
    ])


def _same_indices(name: str, mine: np.ndarray[Any, Any], theirs: torch.Tensor, where: np.ndarray[Any, Any],
                  config: str) -> bool:
    expected = theirs.numpy()
    if mine.shape != expected.shape or mine.dtype != np.int64:
        print(f"FAIL {name}: {mine.dtype} {mine.shape}, but should be int64 {expected.shape} [{config}]")
        return False
    if not np.array_equal(mine[where], expected[where]):
        print(f"FAIL {name}: {int((mine[where] != expected[where]).sum())} indices differ [{config}]")
        return False
    return True


def check_max_pool_indices(rng: np.random.Generator) -> bool:
    nd, pads, kwargs, shape = _pool_config(rng, dilated=True)
    if any(size < 1 for size in spec.pool_output_shape(np.empty(shape), **kwargs)[2:]):
        return True
    x = _data(rng, shape, integers=bool(rng.random() < 0.5))
    if x.size and rng.random() < 0.2:
        x.ravel()[rng.integers(0, x.size, max(1, x.size // 10))] = np.nan
    config = f"max_pool_indices x{x.shape} {kwargs}"
    _, it = MAX_POOL[nd](_t(x), kwargs["kernel_size"], kwargs["stride"], pads, kwargs["dilation"],
                        ceil_mode=kwargs["ceil_mode"], return_indices=True)
    y = reference.max_pool_forward(x, **kwargs)
    # MAXIDX-C4/C5: a NaN window may point at any of its NaNs (PyTorch: the last), an empty window is -1 (PyTorch: arbitrary).
    return _same_indices("max_pool_indices", reference.max_pool_indices(x, **kwargs), it, ~np.isneginf(y) & ~np.isnan(y),
                         config)


def _adaptive_config(rng: np.random.Generator) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    nd = int(rng.integers(1, 4))
    large = rng.random() < 1 / 4
    spatial = tuple(int(rng.integers(1, {1: 300, 2: 40, 3: 12}[nd] if large else 9)) for _ in range(nd))
    if rng.random() < 0.2:
        output_size: tuple[int, ...] = (1,) * nd  # global pooling
    else:  # from 1 to twice the input: windows overlap once output > input
        output_size = tuple(int(rng.integers(1, 2 * n + 1)) for n in spatial)
    return nd, (int(rng.integers(0, 4)), int(rng.integers(1, 4)), *spatial), output_size


def check_adaptive_avg_pool(rng: np.random.Generator) -> bool:
    nd, shape, output_size = _adaptive_config(rng)
    x = rng.standard_normal(shape)
    config = f"adaptive_avg_pool x{x.shape} output_size={output_size}"
    xt = _t(x, True)
    yt = ADAPTIVE_AVG[nd](xt, output_size)
    dy = rng.standard_normal(tuple(yt.shape))
    (dxt,) = torch.autograd.grad(yt, (xt,), _t(dy))
    y = reference.adaptive_avg_pool_forward(x, output_size=output_size)
    dx = reference.adaptive_avg_pool_backward(x, dy, output_size=output_size)
    return _close("adaptive_avg_pool_forward y", y, yt, config) and _close("adaptive_avg_pool_backward dx", dx, dxt, config)


def check_adaptive_max_pool(rng: np.random.Generator) -> bool:
    nd, shape, output_size = _adaptive_config(rng)
    x = _data(rng, shape, integers=bool(rng.random() < 0.5))
    config = f"adaptive_max_pool x{x.shape} output_size={output_size}"
    xt = _t(x, True)
    yt, it = ADAPTIVE_MAX[nd](xt, output_size, return_indices=True)
    dy = rng.standard_normal(tuple(yt.shape))
    (dxt,) = torch.autograd.grad(yt, (xt,), _t(dy))
    y = reference.adaptive_max_pool_forward(x, output_size=output_size)
    dx = reference.adaptive_max_pool_backward(x, dy, output_size=output_size)
    indices = reference.adaptive_max_pool_indices(x, output_size=output_size)
    return all([
        _close("adaptive_max_pool_forward y", y, yt, config), _close("adaptive_max_pool_backward dx", dx, dxt, config),
        _same_indices("adaptive_max_pool_indices", indices, it, np.ones(indices.shape, dtype=bool), config),
    ])


CHECKS: dict[str, Callable[[np.random.Generator], bool]] = {
    "conv": check_conv, "max_pool": check_max_pool, "avg_pool": check_avg_pool, "linear": check_linear,
    "conv_transpose": check_conv_transpose, "max_pool_indices": check_max_pool_indices,
    "adaptive_avg_pool": check_adaptive_avg_pool, "adaptive_max_pool": check_adaptive_max_pool,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="random configurations per operation (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ops", default=",".join(CHECKS), help="comma-separated subset of: " + ", ".join(CHECKS))
    args = parser.parse_args(argv)
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    unknown = sorted(set(ops) - set(CHECKS))
    if unknown:
        parser.error(f"unknown --ops {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    torch.set_num_threads(1)
    failed = 0
    for name in ops:
        # One generator per operation, seeded from --seed and the name: a subset replays the same cases.
        rng = np.random.default_rng([args.seed, *name.encode()])
        bad = sum(not CHECKS[name](rng) for _ in range(args.cases))
        print(f"{name}: {args.cases - bad} passed, {bad} failed")
        failed += bad
    print(f"{len(ops) * args.cases - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

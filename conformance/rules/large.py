"""Large cases: channel counts and spatial sizes one past the block sizes kernels tile by.

Blocked and tiled kernels (channel blocks of 8, 16, 32 or 64, tiles of 32 or
64 pixels, GEMM panels) break exactly where a size crosses a block edge, at
sizes the ordinary strategies rarely reach. The rule ``large-shapes`` draws
from a fixed pool of such problems — channels 33, 65 and 129, 2-D planes of
17, 33, 49 and 65 pixels a side — and checks forward and backward against the
reference with the accuracy bound. The pool is small and fixed, so ``ci``
spends a few examples per operation and dtype on it and ``thorough`` goes
through all of it with several value kinds.
"""

from __future__ import annotations

from hypothesis import strategies as st

import spec
from conformance.rules.base import ops_where, rule
from conformance.rules.values import against_reference
from conformance.shape_pool import rotation
from conformance.strategies import ORDINARY_KINDS, Case, Problem, ValueKind, make_inputs
from spec import Capabilities, OpName

#: (batch, channels, plane side, out channels, kernel, stride, padding): each crosses a block edge by one.
_CONV_2D: tuple[tuple[int, int, int, int, int, int, int], ...] = (
    (1, 33, 17, 17, 3, 1, 1),    # 33 input channels: past a block of 32
    (1, 9, 65, 8, 3, 1, 1),      # a 65 x 65 plane: past a tile of 64
    (1, 129, 9, 65, 1, 1, 0),    # 129 in, 65 out: past 128 and 64 (a 1 x 1 conv is a GEMM)
    (2, 65, 33, 33, 3, 2, 1),    # 65 channels, a 33 x 33 plane, stride 2
    (1, 17, 49, 33, 5, 1, 2),    # a 49 x 49 plane (past 48-pixel tiles), 33 out channels
)
#: (batch, channels, plane side, kernel, stride, padding) for pooling.
_POOL_2D: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 65, 65, 3, 2, 1),
    (2, 33, 33, 2, 2, 0),
    (1, 129, 17, 3, 1, 1),
)
#: (batch, C_in, plane side, C_out, kernel, stride, padding, output_padding) for transposed convolution:
#: a U-Net decoder's upsampling (stride 2, output_padding restoring the even size) past the same edges.
_CONV_TRANSPOSE_2D: tuple[tuple[int, int, int, int, int, int, int, int], ...] = (
    (1, 65, 17, 33, 3, 2, 1, 1),   # 65 in, 33 out, 17 -> 34 pixels
    (2, 33, 9, 17, 2, 2, 0, 0),    # the common kernel 2, stride 2: 9 -> 18
    (1, 129, 8, 65, 1, 1, 0, 0),   # a 1 x 1 transposed conv is a GEMM: 129 in, 65 out
)
#: (batch, channels, plane side, output size) for adaptive pooling: a classifier head's global pool and a
#: 65-pixel plane to 7 (windows of 10 or 11, overlapping).
_ADAPTIVE_2D: tuple[tuple[int, int, int, int], ...] = ((2, 129, 7, 1), (1, 33, 65, 7), (1, 65, 17, 33))
#: The operations the pool has problems for: all of them.
LARGE_OPS: tuple[OpName, ...] = ops_where(lambda r: True)
#: (batch, in features, out features) for linear.
_LINEAR: tuple[tuple[int, int, int], ...] = ((17, 129, 65), (65, 257, 33), (3, 513, 129))


def _rank(caps: Capabilities) -> int:
    """2-D when declared, else the backend's first rank (a 1-D or 3-D line of the same sizes)."""
    return 2 if 2 in caps.spatial_ranks else min(caps.spatial_ranks)


def _plane(side: int, rank: int) -> tuple[int, ...]:
    return (side,) * rank if rank <= 2 else (side, 3, 3)  # 3-D only when 2-D is missing: keep it cheap


def large_problems(op: OpName, caps: Capabilities, dtype: str) -> list[Problem]:
    """The pool for ``op``, inside the backend's capabilities."""
    rank = _rank(caps)
    out: list[Problem] = []
    if op == "conv":
        for n, c, side, o, k, s, p in _CONV_2D:
            plane = _plane(side, rank)
            kernel = tuple(min(k, size) for size in plane)
            pad = tuple((min(p, kk // 2),) * 2 for kk in kernel)
            params = {"stride": (s,) * rank, "padding": pad, "dilation": (1,) * rank, "groups": 1}
            out.append(Problem("conv", dtype, (n, c, *plane), (o, c, *kernel), True, params))
    elif op == "conv_transpose":
        for n, c, side, o, k, s, p, e in _CONV_TRANSPOSE_2D:
            plane = _plane(side, rank)
            kernel = tuple(min(k, size) for size in plane)
            e = e if caps.output_padding else 0
            params = {"stride": (s,) * rank, "padding": ((p, p),) * rank, "output_padding": (e,) * rank,
                      "dilation": (1,) * rank, "groups": 1}
            out.append(Problem(op, dtype, (n, c, *plane), (c, o, *kernel), True, params))
    elif op in ("adaptive_avg_pool", "adaptive_max_pool"):
        for n, c, side, size in _ADAPTIVE_2D:
            plane = _plane(side, rank)
            size = size if caps.adaptive_output_size == "any" else 1
            out.append(Problem(op, dtype, (n, c, *plane), None, False, {"output_size": (size,) * len(plane)}))
    elif op in ("max_pool", "avg_pool", "max_pool_indices"):
        for n, c, side, k, s, p in _POOL_2D:
            plane = _plane(side, rank)
            kernel = tuple(min(k, size) for size in plane)
            limits = [spec.pool_padding_limit(caps.pool_padding, kk, 1) for kk in kernel]
            pad = tuple((p if limit is None else min(p, limit),) * 2 for limit in limits)
            params = {"kernel_size": kernel, "stride": (s,) * rank, "padding": pad, "dilation": (1,) * rank,
                      "ceil_mode": False}
            if op == "avg_pool":
                params["count_include_pad"] = True in caps.count_include_pad
            out.append(Problem(op, dtype, (n, c, *plane), None, False, params))
    else:
        out = [Problem("linear", dtype, (n, fin), (fout, fin), True, {}) for n, fin, fout in _LINEAR]
    return out


def _case(problem: Problem, kind: ValueKind, seed: int) -> Case:
    return Case(problem, make_inputs(problem, kind, seed))


def large_cases(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    """Cases drawn from the pool, with ordinary values (small integers, normal and spread floats).

    For a backend that compiles per shape, these are its costliest compilations: a run takes a few of
    them (one per operation and dtype in ``ci``, :func:`conformance.shape_pool.rotation`), another seed
    or dtype others, and varies the values.
    """
    pool = large_problems(op, caps, dtype)
    if caps.compiles_per_shape:
        pool = rotation(pool, f"{op}/{dtype}")
    return st.builds(_case, st.sampled_from(pool), st.sampled_from(ORDINARY_KINDS), st.integers(0, 2**32 - 1))


#: Forward, and backward when the backend has it, equal the reference's within the accuracy bound.
check_large = against_reference("large-shapes")


LARGE_SHAPES = rule("large-shapes", "channels and planes one past block sizes (33, 65, 129 channels; 17 to 65 pixels) "
                    "match the reference forward and backward", LARGE_OPS, ("forward",), large_cases, check_large,
                    weight=0.1)

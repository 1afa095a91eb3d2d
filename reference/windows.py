"""The one windowing primitive behind convolution, max pooling and average pooling.

A window operation reads, for every output position ``o`` and kernel offset
``j`` (per spatial dim), the input element at ``o * stride + j * dilation -
pad_before``. For a *fixed* offset ``j`` those elements form a strided slice of
the padded input with the output's shape. So every operation here is a short
loop over kernel offsets (row-major order), each step a whole-array NumPy
operation on one slice: no loop over batch or output positions. Where one pass is
better (im2col, global pooling), :func:`window_view` gives all the windows at once
as a strided view, copied or reduced by a single NumPy call.

The rest lays the same reads out for speed, never changing which elements a window
reads: :func:`offset_reads` gives each offset's slice either as it is or as one
contiguous run of x split by stride phase (:func:`split_phases`, :class:`PhaseRuns`);
for windows that tile the input, :func:`reduce_tiles` and :func:`repeat_tiles` go
axis by axis.

>>> g = window_grid((5,), kernel_size=(2,), stride=(2,), padding=((0, 0),), dilation=(1,), out_spatial=(3,))
>>> g.pad_after       # ceil mode's third window overhangs the input by one element
(1,)
>>> [s[0] for s in g.slices]
[slice(0, 5, 2), slice(1, 6, 2)]
>>> g.positions[0].tolist()    # input index read by output o at offset j
[[0, 1], [2, 3], [4, 5]]

Without the padded copy: at each offset, the outputs whose windows read a real
element there, and the input elements they read (offset 1 of output 2 is the overhang):

>>> [(out[0], inp[0]) for out, inp in g.inside_slices]
[(slice(0, 3, None), slice(0, 5, 2)), (slice(0, 2, None), slice(1, 4, 2))]
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from spec import Padding

_LEAD = (slice(None), slice(None))


class WindowGrid(NamedTuple):
    """Where every window of a window operation reads, per spatial dimension."""

    spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    pad_before: tuple[int, ...]
    #: Padding after the input, including any ceil-mode overhang.
    pad_after: tuple[int, ...]
    #: Kernel offsets in row-major order, and the padded-input slice of each.
    offsets: tuple[tuple[int, ...], ...]
    slices: tuple[tuple[slice, ...], ...]
    #: Per dim, an (out, k) array of the (unpadded) input index each window reads.
    positions: tuple[NDArray[np.int64], ...]
    #: The operation's kernel size, stride and dilation, one entry per spatial dim.
    kernel_size: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    #: Per kernel offset (row-major), ``(out_slices, in_slices)``: the output positions whose
    #: window reads a real input element at that offset, and those elements of the *unpadded*
    #: input (both regions have the same shape; empty when every read falls in padding).
    inside_slices: tuple[tuple[tuple[slice, ...], tuple[slice, ...]], ...] = ()


def window_grid(
    spatial: tuple[int, ...],
    *,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: Padding,
    dilation: tuple[int, ...],
    out_spatial: tuple[int, ...],
) -> WindowGrid:
    """Lay out the windows of an operation whose output size is already known.

    Cached: a 7x7 window's layout takes 0.3 ms of Python to build, as long as a global
    average pool of ResNet-50's last layer; a network calls the same few shapes again
    and again. The grid is immutable (its arrays read-only).
    """
    return _window_grid(
        tuple(int(n) for n in spatial), tuple(int(k) for k in kernel_size), tuple(int(s) for s in stride),
        tuple((int(lo), int(hi)) for lo, hi in padding), tuple(int(d) for d in dilation),
        tuple(int(o) for o in out_spatial),
    )


@functools.lru_cache(maxsize=256)
def _window_grid(
    spatial: tuple[int, ...], kernel_size: tuple[int, ...], stride: tuple[int, ...], padding: Padding,
    dilation: tuple[int, ...], out_spatial: tuple[int, ...],
) -> WindowGrid:
    pad_after = []
    positions = []
    for n, k, s, (lo, hi), d, o in zip(spatial, kernel_size, stride, padding, dilation, out_spatial):
        needed = (o - 1) * s + d * (k - 1) + 1  # padded length the last window reaches
        pad_after.append(max(hi, needed - n - lo))
        position = np.arange(o)[:, None] * s + np.arange(k)[None, :] * d - lo
        position.setflags(write=False)
        positions.append(position)
    offsets = tuple(np.ndindex(*kernel_size))
    slices = tuple(
        tuple(slice(j * d, j * d + (o - 1) * s + 1, s) for j, d, o, s in zip(offset, dilation, out_spatial, stride))
        for offset in offsets
    )
    inside = tuple(
        _inside_slices(offset, spatial, out_spatial, stride, padding, dilation) for offset in offsets
    )
    return WindowGrid(
        spatial, out_spatial, tuple(lo for lo, _ in padding), tuple(pad_after), offsets, slices, tuple(positions),
        tuple(kernel_size), tuple(stride), tuple(dilation), inside,
    )


def _inside_slices(
    offset: tuple[int, ...], spatial: tuple[int, ...], out_spatial: tuple[int, ...], stride: tuple[int, ...],
    padding: Padding, dilation: tuple[int, ...],
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Output o reads input o * s + (j * d - lo); keep the run of o for which that is in [0, n)."""
    out_slices, in_slices = [], []
    for j, n, o, s, (lo, _), d in zip(offset, spatial, out_spatial, stride, padding, dilation):
        shift = j * d - lo
        first = max(0, -(shift // s))  # smallest o with o * s + shift >= 0
        stop = min(o, (n - 1 - shift) // s + 1)  # one past the largest o with o * s + shift < n
        if stop <= first:
            out_slices.append(slice(0, 0))
            in_slices.append(slice(0, 0))
            continue
        start = first * s + shift
        out_slices.append(slice(first, stop))
        in_slices.append(slice(start, start + (stop - first - 1) * s + 1, s))
    return tuple(out_slices), tuple(in_slices)


def pad(x: NDArray[Any], grid: WindowGrid, value: float) -> NDArray[Any]:
    """Pad the spatial dims of (N, C, *spatial) ``x`` so that every window is in bounds."""
    widths = [(0, 0), (0, 0), *zip(grid.pad_before, grid.pad_after)]
    return np.pad(x, widths, mode="constant", constant_values=value)


def pad_if_needed(x: NDArray[Any], grid: WindowGrid, value: float) -> NDArray[Any]:
    """:func:`pad`, or ``x`` itself when no window reaches outside it (callers only read the result)."""
    if any(grid.pad_before) or any(grid.pad_after):
        return pad(x, grid, value)
    return x


def window_view(xp: NDArray[Any], grid: WindowGrid, *, writeable: bool = False) -> NDArray[Any]:
    """A (N, C, *out_spatial, *kernel_size) view of a padded ``xp``, no copy; read-only unless ``writeable``.

    Write through it only when no two windows share an element (:func:`tiles_input`).

    ``view[n, c, o..., j...] = xp[n, c, o * stride + j * dilation]`` per spatial dim.

    >>> g = window_grid((5,), kernel_size=(2,), stride=(2,), padding=((0, 0),), dilation=(2,), out_spatial=(2,))
    >>> window_view(np.arange(5.0).reshape(1, 1, 5), g)[0, 0].tolist()
    [[0.0, 2.0], [2.0, 4.0]]
    """
    ndim = len(grid.spatial)
    dilated = tuple(d * (k - 1) + 1 for k, d in zip(grid.kernel_size, grid.dilation))
    view = np.lib.stride_tricks.sliding_window_view(xp, dilated, axis=tuple(range(2, 2 + ndim)), writeable=writeable)
    starts = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(grid.out_spatial, grid.stride))
    taps = tuple(slice(None, None, d) for d in grid.dilation)
    return view[(slice(None), slice(None)) + starts + taps]






def _outer_product(per_dim: list[NDArray[Any]]) -> NDArray[Any]:
    """Broadcast one 1-D array per spatial dim to the (1, 1, *out_spatial) grid and multiply."""
    result: NDArray[Any] = np.ones((1, 1) + (1,) * len(per_dim), dtype=per_dim[0].dtype)
    for axis, values in enumerate(per_dim):
        shape = [1] * (len(per_dim) + 2)
        shape[axis + 2] = values.shape[0]
        result = result * values.reshape(shape)
    return result




def window_counts(grid: WindowGrid, *, include_padding: bool, padding: Padding) -> NDArray[np.float64]:
    """How many positions of each window lie inside the input (or inside the padded input).

    The region is a box, so the count is a product of per-dim counts. The
    ceil-mode overhang beyond the padded input is never counted.
    """
    per_dim = []
    for pos, n, (lo, hi) in zip(grid.positions, grid.spatial, padding):
        first, end = (-lo, n + hi) if include_padding else (0, n)
        per_dim.append(((pos >= first) & (pos < end)).sum(axis=1).astype(np.float64))
    return _outer_product(per_dim)


def tiles_input(grid: WindowGrid) -> bool:
    """Whether the windows are disjoint, unpadded blocks of the input (stride == kernel, no dilation).

    Then :func:`window_view` of the unpadded input reads every element at most once (the
    last ``n % k`` elements of a dim not at all), and gradients can be written through it
    with no accumulation.

    >>> tiles_input(window_grid((7, 7), kernel_size=(7, 7), stride=(7, 7), padding=((0, 0),) * 2,
    ...                         dilation=(1, 1), out_spatial=(1, 1)))
    True
    """
    return not any(grid.pad_before) and not any(grid.pad_after) and all(
        s == k and (d == 1 or k == 1) for k, s, d in zip(grid.kernel_size, grid.stride, grid.dilation)
    )


def reduce_tiles(x: NDArray[Any], grid: WindowGrid, combine: np.ufunc) -> NDArray[Any]:
    """(N, C, *out_spatial): ``combine`` reduced over each tile, for windows that tile the input
    (:func:`tiles_input`); the inverse of :func:`repeat_tiles`.

    One spatial axis at a time, the last first: the last axis's k passes are long strided loops
    over the whole array, the others run over contiguous rows, instead of K passes whose
    innermost loop is one output row (16 elements of a 32^3 volume). The reduction pairs
    elements per axis rather than in row-major order, which changes a sum's rounding (within
    the accuracy bound, AVGPOOL-C14) but not a maximum.

    >>> g = window_grid((2, 5), kernel_size=(2, 2), stride=(2, 2), padding=((0, 0),) * 2, dilation=(1, 1),
    ...                 out_spatial=(1, 2))
    >>> reduce_tiles(np.arange(10.0).reshape(1, 1, 2, 5), g, np.add).tolist()    # column 4 is read by no window
    [[[[12.0, 20.0]]]]
    """
    result = x[_LEAD + tuple(slice(0, o * k) for o, k in zip(grid.out_spatial, grid.kernel_size))]
    for axis in reversed(range(2, x.ndim)):
        k = grid.kernel_size[axis - 2]
        if k == 1:
            continue
        shape = result.shape
        lead, o, inner = math.prod(shape[:axis]), shape[axis] // k, math.prod(shape[axis + 1:])
        tiles = result.reshape(lead, o, k, inner)
        reduced = combine(tiles[:, :, 0, :], tiles[:, :, 1, :])
        for j in range(2, k):
            combine(reduced, tiles[:, :, j, :], out=reduced)
        result = reduced.reshape(*shape[:axis], o, *shape[axis + 1:])
    return result


def repeat_tiles(values: NDArray[Any], grid: WindowGrid) -> NDArray[Any]:
    """(N, C, *spatial): each window's value in every element of its tile, for windows that tile the
    input (:func:`tiles_input`); 0 in the remainder no window reads.

    One spatial axis at a time, the last first, each step writing k copies of every value: the
    last axis's writes are one long strided loop over the whole array, the others contiguous
    rows. Measured 2x faster than one broadcast write through :func:`window_view`, whose
    innermost loop runs over the kernel's last extent (2 elements for a 2x2x2 tile).

    >>> g = window_grid((5,), kernel_size=(2,), stride=(2,), padding=((0, 0),), dilation=(1,), out_spatial=(2,))
    >>> repeat_tiles(np.array([[[1.0, 2.0]]]), g).tolist()
    [[[1.0, 1.0, 2.0, 2.0, 0.0]]]
    """
    result = values
    for axis in reversed(range(2, values.ndim)):
        k = grid.kernel_size[axis - 2]
        if k == 1:
            continue
        lead, o, inner = math.prod(result.shape[:axis]), result.shape[axis], math.prod(result.shape[axis + 1:])
        grown = np.empty((*result.shape[:axis], o * k, *result.shape[axis + 1:]), dtype=result.dtype)
        source, target = result.reshape(lead, o, inner), grown.reshape(lead, o, k, inner)
        for j in range(k):
            target[:, :, j, :] = source
        result = grown
    if result.shape[2:] == grid.spatial:
        return result
    padded = np.zeros((*values.shape[:2], *grid.spatial), dtype=values.dtype)
    padded[_LEAD + tuple(slice(0, n) for n in result.shape[2:])] = result
    return padded


# ---- the padded input regrouped by stride phase ----------------------------------------------------------
#
# At kernel offset j a window operation reads padded index o * s + j * d for every output
# o: a slice with step s. Regrouped by phase (index mod s), each of those slices is a
# contiguous block: with (q, p) = divmod(j * d, s) the reads are phases[..., p, q:q + out].


def phase_shape(grid: WindowGrid) -> tuple[int, ...]:
    """(*stride, *blocks): the padded input (ceil-mode overhang included) cut into blocks of ``stride``."""
    blocks = tuple(-(-(lo + n + hi) // s) for n, s, lo, hi in zip(grid.spatial, grid.stride, grid.pad_before, grid.pad_after))
    return (*grid.stride, *blocks)


def _phase_copies(grid: WindowGrid) -> list[tuple[tuple[int | slice, ...], tuple[slice, ...]]]:
    """(index into (*stride, *blocks), the x[r::s] slices it holds), one per phase holding real elements."""
    per_dim = []
    for n, s, lo in zip(grid.spatial, grid.stride, grid.pad_before):
        runs = []
        for p in range(s):
            first = (p - lo) % s  # the first real index r with (r + lo) % s == p
            count = len(range(first, n, s))
            if count:
                start = (first + lo) // s
                runs.append((p, slice(start, start + count), slice(first, n, s)))
        per_dim.append(runs)
    return [
        ((*(p for p, _, _ in combo), *(b for _, b, _ in combo)), tuple(r for _, _, r in combo))
        for combo in itertools.product(*per_dim)
    ]


def _is_identity(grid: WindowGrid) -> bool:
    return all(s == 1 for s in grid.stride) and not any(grid.pad_before) and not any(grid.pad_after)


def split_phases(x: NDArray[Any], grid: WindowGrid, fill: float) -> NDArray[Any]:
    """``x`` padded with ``fill`` and regrouped by phase: an (N, C, *stride, *blocks) array.

    ``phases[n, c, p..., b...] = x_pad[n, c, b * s + p]`` per spatial dim; with stride 1 and
    no padding, ``x`` itself (reshaped, no copy).

    >>> g = window_grid((5,), kernel_size=(3,), stride=(2,), padding=((1, 1),), dilation=(1,), out_spatial=(3,))
    >>> split_phases(np.arange(5.0).reshape(1, 1, 5), g, -9.0)[0, 0].tolist()
    [[-9.0, 1.0, 3.0, -9.0], [0.0, 2.0, 4.0, -9.0]]
    """
    shape = (*x.shape[:2], *phase_shape(grid))
    if _is_identity(grid):
        return x.reshape(shape)
    # Fill only the slabs of blocks that hold no element of x (padding, the ceil-mode overhang),
    # not the whole array, whose elements the copies below then write a second time.
    phases = np.empty(shape, dtype=x.dtype)
    ndim = len(grid.stride)
    for d, (n, s, lo) in enumerate(zip(grid.spatial, grid.stride, grid.pad_before)):
        for p in range(s):
            first = (p - lo) % s  # as in _phase_copies
            count = len(range(first, n, s))
            start = (first + lo) // s if count else 0
            for outside in (slice(0, start), slice(start + count, shape[2 + ndim + d])):
                if outside.start < outside.stop:
                    slab: list[int | slice] = [slice(None)] * len(shape)
                    slab[2 + d], slab[2 + ndim + d] = p, outside
                    phases[tuple(slab)] = fill
    for target, source in _phase_copies(grid):
        phases[_LEAD + target] = x[_LEAD + source]
    return phases


class PhaseRuns(NamedTuple):
    """Every kernel offset's reads as one contiguous run of the flattened phases.

    Flatten each phase's blocks (row-major, F elements) and give the outputs the same row
    lengths: output ``o`` sits at ``sum(o[d] * row_stride[d])`` of a flat buffer of ``rows``
    (``out_spatial[0]`` by the trailing blocks), so that every offset reads the slice
    ``[start, start + length)`` of its phase, a single contiguous run per plane. The
    buffer's extra row ends (block columns past the outputs) are computed and cropped.
    """

    #: Per kernel offset (row-major): (flat phase index, first element of the run).
    starts: tuple[tuple[int, int], ...]
    length: int
    rows: tuple[int, ...]


def phase_runs(grid: WindowGrid) -> PhaseRuns:
    """The runs of ``grid`` (cached).

    >>> g = window_grid((5,), kernel_size=(3,), stride=(2,), padding=((1, 1),), dilation=(1,), out_spatial=(3,))
    >>> phase_runs(g)    # offsets 0, 1, 2: phase 0, 1, 0, from block 0, 0, 1 (see split_phases)
    PhaseRuns(starts=((0, 0), (1, 0), (0, 1)), length=3, rows=(3,))
    """
    return _phase_runs(grid.out_spatial, phase_shape(grid)[len(grid.stride):], grid.kernel_size, grid.stride,
                       grid.dilation)


@functools.lru_cache(maxsize=256)
def _phase_runs(out_spatial: tuple[int, ...], blocks: tuple[int, ...], kernel_size: tuple[int, ...],
                stride: tuple[int, ...], dilation: tuple[int, ...]) -> PhaseRuns:
    row_stride = [math.prod(blocks[d + 1:]) for d in range(len(blocks))]
    starts = []
    for offset in np.ndindex(*kernel_size):
        reads = [divmod(j * d, s) for j, d, s in zip(offset, dilation, stride)]
        phase = int(np.ravel_multi_index(tuple(p for _, p in reads), stride))
        starts.append((phase, sum(q * r for (q, _), r in zip(reads, row_stride))))
    length = sum((o - 1) * r for o, r in zip(out_spatial, row_stride)) + 1
    return PhaseRuns(tuple(starts), length, (out_spatial[0], *blocks[1:]))


def windows_overlap(grid: WindowGrid) -> bool:
    """Whether some input element lies in more than one window (a stride shorter than the dilated kernel)."""
    return any(s < d * (k - 1) + 1 for k, s, d in zip(grid.kernel_size, grid.stride, grid.dilation))


Region = tuple[slice, ...]


class OffsetReads(NamedTuple):
    """What the windows read at every kernel offset, shaped for one whole-array NumPy pass each.

    A caller computes into a buffer of ``buffer_shape``: per offset (row-major), its
    ``(region, window)`` pair of :attr:`reads` combines ``window`` into ``buffer[region]``
    (the windows read padding elsewhere); :meth:`outputs` is then the (N, C, *out_spatial)
    view of the results.
    """

    buffer_shape: tuple[int, ...]
    reads: list[tuple[Region, NDArray[Any]]]
    #: The (N, C, *rows) shape and crop of a run buffer (:class:`PhaseRuns`); None for an output-shaped one.
    rows: tuple[tuple[int, ...], Region] | None

    def outputs(self, buffer: NDArray[Any]) -> NDArray[Any]:
        if self.rows is None:
            return buffer
        shape, crop = self.rows
        return buffer.reshape(shape)[crop]

    def first_covers_outputs(self) -> bool:
        """Whether the first offset's region holds every output (a running result can start as a copy of it):
        always for runs, whose buffer tail past the run holds no output."""
        return bool(self.reads) and (self.rows is not None or self.reads[0][1].shape == self.buffer_shape)


def offset_reads(x: NDArray[Any], grid: WindowGrid, fill: float) -> OffsetReads:
    """Per kernel offset (row-major): a region of a result buffer and what its windows read there.

    Reading padding as ``fill`` or not at all must not matter to the caller (max pooling: -inf,
    sums: 0). Two layouts, the same results:

    * runs (:class:`PhaseRuns`): x padded, split by stride phase (one copy; none with stride 1
      and no padding) and flattened, each offset one contiguous run per plane. Used where
      windows overlap in 2 or 3 dims, so that each element is read at several offsets: a pass
      over a contiguous run was measured 2.6x faster than over the strided N-D slice with the
      same elements (NumPy's inner loop then spans a whole plane, not one output row, and can
      use SIMD).
    * slices: the strided slices of x itself (:attr:`WindowGrid.inside_slices`), no copy, for
      windows that read each element once, where the copy would cost what it saves (measured
      12-17% slower on the disjoint 2x2, 2x2x2 and 1-D k4/4 max-pool backwards, which read each
      offset twice), and in 1-D, where a slice is already one long loop per plane (the copy made
      the overlapping k3/2 average pool 25% slower).

    In 1-D, slices: the first window's first tap and the last window's last read padding.

    >>> g = window_grid((5,), kernel_size=(3,), stride=(2,), padding=((1, 1),), dilation=(1,), out_spatial=(3,))
    >>> [(region[2], w[0, 0].tolist()) for region, w in offset_reads(np.arange(5.0).reshape(1, 1, 5), g, -9.0).reads]
    [(slice(1, 3, None), [1.0, 3.0]), (slice(0, 3, None), [0.0, 2.0, 4.0]), (slice(0, 2, None), [1.0, 3.0])]

    A 2x3 window with stride (1, 2) over a 3x5 input padded by one column each side: runs of 7
    over rows of 4 blocks (3 outputs a row; the fourth entry is computed, then cropped).

    >>> g = window_grid((3, 5), kernel_size=(2, 3), stride=(1, 2), padding=((0, 0), (1, 1)), dilation=(1, 1),
    ...                 out_spatial=(2, 3))
    >>> reads = offset_reads(np.arange(15.0).reshape(1, 1, 3, 5), g, -9.0)
    >>> reads.buffer_shape, reads.reads[1][1][0, 0].tolist()     # offset (0, 1): x[0:2, 0::2], row by row
    ((1, 1, 8), [0.0, 2.0, 4.0, -9.0, 5.0, 7.0, 9.0])
    >>> reads.outputs(np.arange(8.0).reshape(1, 1, 8))[0, 0].tolist()
    [[0.0, 1.0, 2.0], [4.0, 5.0, 6.0]]
    """
    lead = x.shape[:2]
    if not windows_overlap(grid) or len(grid.spatial) == 1:
        reads = [(_LEAD + out_slices, x[_LEAD + in_slices]) for out_slices, in_slices in grid.inside_slices]
        return OffsetReads((*lead, *grid.out_spatial), reads, None)
    runs = phase_runs(grid)
    phases = split_phases(x, grid, fill).reshape(*lead, math.prod(grid.stride), math.prod(phase_shape(grid)[len(grid.stride):]))
    region = _LEAD + (slice(0, runs.length),)
    reads = [(region, phases[:, :, phase, start:start + runs.length]) for phase, start in runs.starts]
    crop = _LEAD + (slice(None),) + tuple(slice(0, o) for o in grid.out_spatial[1:])
    return OffsetReads((*lead, math.prod(runs.rows)), reads, ((*lead, *runs.rows), crop))


def covers_input(grid: WindowGrid) -> bool:
    """Whether there is one window, reading every element of the input once (global pooling)."""
    return tiles_input(grid) and grid.kernel_size == grid.spatial

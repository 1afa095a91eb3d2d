"""``convspec bench`` measuring: inputs, the protocol calls, interleaved timings, the matmul ceiling."""

from __future__ import annotations

import datetime
import gc
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import spec
from conformance.bench.environment import user_cache_dir
from conformance.bench.options import BenchOptions
from conformance.bench_shapes import MODES, Mode, NamedProblem, Problem
from conformance.loader import LoadedBackend
from conformance.textio import write_atomically
from spec import OPERATIONS, UnsupportedError


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of the timed calls of one mode."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def q1(self) -> float:
        return float(np.percentile(self.samples, 25))

    @property
    def q3(self) -> float:
        return float(np.percentile(self.samples, 75))

    def rate(self, flop_count: int) -> float:
        """GFLOP/s at the median time."""
        return flop_count / self.median / 1e9 if self.median > 0 else math.inf

    def as_dict(self, flop_count: int, ceiling: float) -> dict[str, Any]:
        rate = self.rate(flop_count)
        return {
            "median_s": self.median, "q1_s": self.q1, "q3_s": self.q3,
            "min_s": min(self.samples), "max_s": max(self.samples), "repeats": len(self.samples),
            "gflops": rate, "fraction_of_ceiling": rate / ceiling if ceiling > 0 else None,
        }


@dataclass(frozen=True)
class Ceiling:
    """The NumPy float matmul rate of this machine in one dtype."""

    dtype: str
    size: int
    gflops: float
    median_gflops: float
    #: When it was measured (ISO 8601, UTC), and whether this run read it from the cache.
    measured_at: str = ""
    cached: bool = False


def measure_matmul_ceiling(
    dtype: str, size: int, repeats: int = 7, clock: Callable[[], float] = time.perf_counter,
) -> Ceiling:
    """Best and median GFLOP/s of ``a @ b`` for two ``size`` x ``size`` matrices (2 size**3 FLOPs)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty((size, size), dtype=dtype)
    np.matmul(a, b, out=out)
    seconds = []
    for _ in range(repeats):
        start = clock()
        np.matmul(a, b, out=out)
        seconds.append(clock() - start)
    work = 2.0 * size**3 / 1e9
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return Ceiling(dtype, size, work / min(seconds), work / statistics.median(seconds), when)


#: The file under :func:`~conformance.bench.environment.user_cache_dir` holding each machine's ceilings.
CEILING_CACHE_FILE = "matmul_ceiling.json"


def matmul_ceilings(
    dtypes: tuple[str, ...], size: int, *, clock: str, machine: str, remeasure: bool = False,
    cache_dir: Path | None = None, measure: Callable[..., Ceiling] = measure_matmul_ceiling, store: bool = True,
) -> dict[str, Ceiling]:
    """The matmul ceiling per dtype: this machine's cached value, else (or with ``remeasure``) measured and cached.

    Measuring takes seconds, most of a small run; the rate changes only with the CPU,
    NumPy and its BLAS, which ``machine`` (:func:`~conformance.bench.environment.machine_key`)
    names, so the cache is keyed by it, the matrix size and the clock. A cache that
    cannot be read or written is ignored. ``store=False`` (a measurement taken while
    other processes load the machine, and so too low) is used for this run only.
    """
    path = (cache_dir if cache_dir is not None else user_cache_dir()) / CEILING_CACHE_FILE
    key = f"{machine} | {size}x{size} | {clock} clock"
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError):
        entries = {}
    stored = entries.get(key, {})
    found: dict[str, Ceiling] = {}
    if not remeasure and isinstance(stored, dict):
        for dtype in dtypes:
            entry = stored.get(dtype)
            if not isinstance(entry, dict):
                break
            try:
                found[dtype] = Ceiling(dtype, size, float(entry["gflops"]), float(entry["median_gflops"]),
                                       str(entry["measured_at"]), cached=True)
            except (TypeError, KeyError, ValueError):
                break
    if len(found) == len(dtypes):
        return found
    ceilings = {dtype: measure(dtype, size, clock=CLOCKS[clock]) for dtype in dtypes}
    if not store:
        return ceilings
    entries[key] = {
        dtype: {"gflops": c.gflops, "median_gflops": c.median_gflops, "measured_at": c.measured_at}
        for dtype, c in ceilings.items()
    }
    try:
        write_atomically(path, json.dumps(entries, indent=2))
    except OSError:
        pass  # an unwritable cache costs a measurement next time, nothing else
    return ceilings


def _ceiling_dtype(dtype: str) -> str:
    """float16 rows are compared with the float32 ceiling (NumPy has no float16 GEMM)."""
    return "float32" if dtype == "float16" else dtype


Call = Callable[[], object]
#: Builds a framework's native-path calls for a problem and its inputs (see :mod:`conformance.bench.native`).
NativeCalls = Callable[["Problem", "Inputs"], "dict[Mode, Call]"]


#: ``--clock``: wall-clock seconds, or CPU seconds of the whole process (all its threads).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Inputs:
    """Random operands of one problem in one dtype (the same for every backend)."""

    x: NDArray[Any]
    w: NDArray[Any] | None
    b: NDArray[Any] | None
    dy: NDArray[Any]


def make_inputs(problem: Problem, dtype: str, seed: int = 0) -> Inputs:
    """Standard-normal x, b and dy; w scaled by 1/sqrt(fan-in) so outputs stay O(1)."""
    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, ...], scale: float = 1.0) -> NDArray[Any]:
        return (rng.standard_normal(shape) * scale).astype(dtype)

    x = normal(problem.x_shape())
    w = b = None
    if problem.operation.has_weights:
        w_shape = problem.w_shape()
        fan_in = problem.operation.terms(problem.x_shape(), w_shape, call_kwargs(problem)).forward
        w = normal(w_shape, 1.0 / math.sqrt(max(1, fan_in)))
        b = normal((problem.o,))
    return Inputs(x, w, b, normal(problem.y_shape()))


def call_kwargs(problem: Problem) -> dict[str, Any]:
    """The keyword arguments of the protocol functions for ``problem``."""
    return problem.kwargs()


def mode_calls(backend: LoadedBackend, problem: Problem, inputs: Inputs) -> dict[Mode, Call]:
    """Zero-argument callables for the modes the backend has functions for."""
    record = OPERATIONS[problem.op]
    forward_fn = backend.functions.get(record.forward)
    backward_fn = None if record.backward is None else backend.functions.get(record.backward)
    kwargs = call_kwargs(problem)
    x, w, b, dy = inputs.x, inputs.w, inputs.b, inputs.dy
    forward: Call | None = None
    backward: Call | None = None
    if forward_fn is not None:
        fwd = forward_fn
        forward = (lambda: fwd(x, w, b, **kwargs)) if w is not None else (lambda: fwd(x, **kwargs))
    if backward_fn is not None:
        bwd = backward_fn
        backward = (lambda: bwd(x, w, dy, **kwargs)) if w is not None else (lambda: bwd(x, dy, **kwargs))
    calls: dict[Mode, Call] = {}
    if forward is not None:
        calls["forward"] = forward
    if backward is not None:
        calls["backward"] = backward
    if forward is not None and backward is not None:
        first, second = forward, backward
        calls["fwd+bwd"] = lambda: (first(), second())
    return calls


def unsupported_reason(backend: LoadedBackend, problem: Problem, dtype: str) -> str | None:
    """Why the backend's declared capabilities exclude ``problem`` in ``dtype`` (None: they include it)."""
    caps = backend.capabilities
    record = OPERATIONS[problem.op]
    if not any(name in backend.functions for name in record.functions):
        return f"no {' / '.join(record.functions)}"
    if dtype not in caps.dtypes:
        return f"dtype {dtype}"
    if problem.n == 0 and not caps.empty_batch:
        return "empty batch"
    if record.windowing == "none":
        return None
    if problem.ndim not in caps.spatial_ranks:
        return f"{problem.ndim}-D"
    names = record.param_names
    pool = not record.has_weights  # pooling padding has its own capabilities
    asymmetric = caps.asymmetric_pool_padding if pool else caps.asymmetric_padding
    if any(lo != hi for lo, hi in problem.padding) and not asymmetric:
        return "asymmetric padding"
    if any(d > 1 for d in problem.dilation) and record.dilation_field and not getattr(caps, record.dilation_field):
        return "pool dilation" if pool else "dilation"
    if "groups" in names and problem.groups > 1 and not caps.groups:
        return "groups"
    if "output_padding" in names and any(problem.output_padding) and not caps.output_padding:
        return "output_padding"
    if "output_size" in names and set(problem.output_size) != {1} and caps.adaptive_output_size == "global":
        return "adaptive output size other than 1"
    if "ceil_mode" in names and problem.ceil_mode and not caps.ceil_mode:
        return "ceil_mode"
    if "count_include_pad" in names and problem.count_include_pad not in caps.count_include_pad:
        return f"count_include_pad={problem.count_include_pad}"
    if "kernel_size" in names and not all(spec.pool_padding_allowed(caps.pool_padding, k, d, lo, hi)
                                          for (lo, hi), k, d in zip(problem.padding, problem.kernel, problem.dilation)):
        return "pool padding beyond half the kernel"
    return None


@dataclass
class Side:
    """One backend's outcome on one (problem, dtype): timings per mode, or why there are none."""

    timings: dict[str, Timing] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None


@dataclass
class Pair:
    """Both backends' outcomes on one (problem, dtype), and per mode the ratio of each interleaved pair of calls."""

    backend: Side
    baseline: Side | None
    ratios: dict[str, tuple[float, ...]] = field(default_factory=dict)


class _Contender:
    """One backend's calls on one problem, timed one call at a time; its first failure ends its timings."""

    def __init__(self, backend: LoadedBackend, problem: Problem, dtype: str, native: NativeCalls | None = None) -> None:
        self.backend = backend
        self.side = Side()
        self.calls: dict[Mode, Call] = {}
        reason = unsupported_reason(backend, problem, dtype)
        if reason is not None:
            self.side.skipped = f"not supported: {reason}"
            return
        inputs = make_inputs(problem, dtype)
        if native is None:
            self.calls = mode_calls(backend, problem, inputs)
            return
        try:  # a native path records one forward while it is built
            self.calls = native(problem, inputs)
        except UnsupportedError as exc:
            self.side.skipped = f"not supported: {_one_line(str(exc))}"
        except Exception as exc:
            self.side.error = f"{type(exc).__name__}: {_one_line(str(exc))}"

    @property
    def active(self) -> bool:
        return bool(self.calls) and self.side.skipped is None and self.side.error is None

    def call(self, mode: Mode, clock: Callable[[], float]) -> float | None:
        """Seconds of one call of ``mode`` (None: this backend failed and is out)."""
        try:
            start = clock()
            self.calls[mode]()
            return clock() - start
        except UnsupportedError as exc:
            self.side.skipped = f"not supported: {_one_line(str(exc))}"
        except Exception as exc:  # a backend failing on one problem must not end the run
            self.side.error = f"{type(exc).__name__}: {_one_line(str(exc))}"
        self.side.timings.clear()
        return None


def measure_pair(
    backend: LoadedBackend, baseline: LoadedBackend | None, problem: Problem, dtype: str, options: BenchOptions,
    *, sleep: Callable[[float], None] = time.sleep, baseline_native: NativeCalls | None = None,
) -> Pair:
    """Time every mode of ``problem`` on the backend and the baseline, interleaved call by call (ABAB).

    A load swing on a shared machine then hits both sides of a pair alike, and the
    ratio of each pair (backend / baseline) cancels it; the row reports the median of
    those ratios and their spread. Before a call whose predecessor was the other
    backend's, a pause of ``options.pause`` seconds lets that library's spinning
    worker threads go to sleep. ``baseline_native`` times the baseline's framework on
    its own path instead of through its protocol functions (:mod:`conformance.bench.native`).
    """
    contenders = [_Contender(backend, problem, dtype)]
    if baseline is not None:
        contenders.append(_Contender(baseline, problem, dtype, baseline_native))
    clock = CLOCKS[options.clock]
    last: list[_Contender | None] = [None]

    def timed(contender: _Contender, mode: Mode) -> float | None:
        if last[0] is not None and last[0] is not contender and options.pause > 0:
            sleep(options.pause)
        last[0] = contender
        return contender.call(mode, clock)

    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for contender in contenders:  # warm-up: caches, lazy initialisation, JIT
            if contender.active:
                warm: Mode = "fwd+bwd" if "fwd+bwd" in contender.calls else next(iter(contender.calls))
                deadline = time.perf_counter() + options.min_warmup_seconds
                while timed(contender, warm) is not None and time.perf_counter() < deadline:
                    pass
        ratios: dict[str, tuple[float, ...]] = {}
        for mode in MODES:
            playing = [c for c in contenders if c.active and mode in c.calls]
            if not playing:
                continue
            for _ in range(options.warmup):
                for contender in playing:
                    timed(contender, mode)
            samples: dict[int, list[float]] = {id(c): [] for c in playing}
            pairs: list[float] = []
            for _ in range(options.repeats):
                seconds = [timed(contender, mode) if contender.active else None for contender in playing]
                for contender, taken in zip(playing, seconds):
                    if taken is not None:
                        samples[id(contender)].append(taken)
                if len(seconds) == 2 and seconds[0] is not None and seconds[1] is not None and seconds[1] > 0:
                    pairs.append(seconds[0] / seconds[1])
            for contender in playing:
                if contender.active and samples[id(contender)]:
                    contender.side.timings[mode] = Timing(tuple(samples[id(contender)]))
            if len(pairs) == options.repeats and all(c.active for c in contenders):
                ratios[mode] = tuple(pairs)
    finally:
        if gc_was_enabled:
            gc.enable()
    if not all(c.active for c in contenders):
        ratios = {}
    return Pair(contenders[0].side, contenders[1].side if len(contenders) > 1 else None, ratios)


def measure(backend: LoadedBackend, problem: Problem, dtype: str, options: BenchOptions) -> Side:
    """Warm up, then time every mode of ``problem`` on ``backend`` alone."""
    return measure_pair(backend, None, problem, dtype, options).backend


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"




@dataclass(frozen=True)
class Row:
    """One (problem, dtype, mode) line of the results."""

    named: NamedProblem
    dtype: str
    mode: Mode
    flop_count: int
    backend: Timing | None
    baseline: Timing | None
    backend_note: str | None
    baseline_note: str | None
    #: backend / baseline time of each interleaved pair of calls.
    pair_ratios: tuple[float, ...] = ()

    @property
    def ratio(self) -> float | None:
        """backend time / baseline time: the median of the per-pair ratios (median over median without pairs)."""
        if self.pair_ratios:
            return statistics.median(self.pair_ratios)
        if self.backend is None or self.baseline is None or self.baseline.median <= 0:
            return None
        return self.backend.median / self.baseline.median

    @property
    def ratio_spread(self) -> tuple[float, float] | None:
        """The interquartile range (q1, q3) of the per-pair ratios."""
        if not self.pair_ratios:
            return None
        q1, q3 = np.percentile(self.pair_ratios, [25, 75])
        return float(q1), float(q3)


@dataclass
class BenchResult:
    """Everything one run measured."""

    options: BenchOptions
    backend_target: str
    baseline_target: str | None
    ceilings: dict[str, Ceiling]
    environment: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    #: (problem, dtype, what differs) where the backend's values disagree with the reference.
    nonconformant: list[tuple[str, str, str]] = field(default_factory=list)

    def ceiling(self, dtype: str) -> float:
        return self.ceilings[_ceiling_dtype(dtype)].gflops

"""Copy-pasteable reproductions: every failure comes with Python that re-runs it."""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import spec
from conformance.invoke import Caller, CallOutcome
from conformance.isolation import dtype_of
from conformance.replay import is_valid, value_deviation
from conformance.strategies import Case


def _literal(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    number = float(value)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return repr(number)


def array_literal(a: np.ndarray[Any, Any]) -> str:
    """Python source that rebuilds ``a`` exactly (values, shape and dtype).

    >>> array_literal(np.array([[1.5, -np.inf]], dtype=np.float32))
    "np.array([1.5, -inf], dtype='float32').reshape(1, 2)"
    """
    flat = _literal(a.ravel().tolist())
    shape = ", ".join(str(s) for s in a.shape) + ("," if a.ndim == 1 else "")
    return f"np.array({flat}, dtype='{a.dtype}').reshape({shape})"


def call_source(function: str, case: Case, *, dy: bool = False, backend: str = "backend", overrides: str = "",
                rename: dict[str, str] | None = None) -> str:
    """The source of one protocol call on the case's named arrays (``rename`` swaps an argument's name)."""
    p = case.problem
    names = p.operation.backward_args if dy else p.operation.forward_args
    args = ", ".join((rename or {}).get(n, n) for n in names)
    kwargs = ", ".join(f"{k}={v!r}" for k, v in p.params.items())
    extra = f", {overrides}" if overrides else ""
    return f"{backend}.{function}({args}{', ' if kwargs else ''}{kwargs}{extra})"


def case_snippet(case: Case, import_line: str, body: list[str]) -> list[str]:
    """A full script: imports, the case's arrays, then ``body``."""
    i = case.inputs
    lines = [
        "import numpy as np",
        "from numpy import inf, nan",
        "import reference",
        import_line,
        "",
        f"# {case.problem.describe()}",
        f"x = {array_literal(i.x)}",
        f"w = {array_literal(i.w) if i.w is not None else None}",
        f"b = {array_literal(i.b) if i.b is not None else None}",
        f"dy = {array_literal(i.dy)}",
    ]
    if not case.problem.operation.has_weights:
        lines = [line for line in lines if not line.startswith(("w = ", "b = "))]
    return lines + body


# --------------------------------------------------------------------------- reproductions from recorded calls
#
# A snippet is generated from data: the backend calls the failing example made
# (recorded by :class:`RecordingCaller`), each followed by the check the spec
# requires of that call (:mod:`conformance.replay`). It stops at the first call
# that breaks the spec, so it exits non-zero while the backend is broken and 0
# once it is fixed or when ``backend`` is the reference.

#: Arrays larger than this are built by a seeded generator in hang snippets: a hang depends on shapes and
#: parameters, rarely on the values (NaN and infinities are kept), and hundreds of listed values are hard to read.
LARGE_ARRAY = 16
#: The history keeps the first call of each signature, for backends that keep state between calls.
HISTORY_LIMIT = 4000
HISTORY_MAX_ELEMENTS = 100_000


@dataclass
class RecordedCall:
    """One call the suite made to the backend, with what came back."""

    function: str
    args: list[Any]
    kwargs: dict[str, Any]
    outcome: CallOutcome

    def key(self) -> tuple[str, str]:
        """The function and the dtype of its first array argument: what a crash or hang is recorded under."""
        return self.function, dtype_of(self.args)

    def signature(self) -> tuple[Any, ...]:
        shapes = tuple((a.shape, str(a.dtype)) if isinstance(a, np.ndarray) else a for a in self.args)
        return self.function, shapes, repr(sorted(self.kwargs.items()))


class RecordingCaller:
    """A :class:`~conformance.invoke.Caller` that records every call of the current example.

    It also keeps the first call of each signature (function, shapes, dtypes,
    parameters) made in the current row (rule x operation x dtype), so that a
    failure that depends on an earlier call (a cache, a compiled kernel reused
    with stale state) can be replayed. The history starts afresh with each row,
    so that a row's report does not depend on which other rows ran before it
    (``--ops``, ``--shard`` and the unsharded run give the same snippets).
    """

    def __init__(self, inner: Caller) -> None:
        self.inner = inner
        self.calls: list[RecordedCall] = []
        self.first: dict[tuple[Any, ...], RecordedCall] = {}
        #: The last call of each function in each dtype that really crashed or hung (a skipped call replays it).
        self.last_failure: dict[tuple[str, str], RecordedCall] = {}

    def call(self, function: str, args: Sequence[Any], kwargs: Mapping[str, Any], label: Any = None) -> CallOutcome:
        outcome = self.inner.call(function, args, kwargs, label)
        kept = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
        record = RecordedCall(function, kept, dict(kwargs), outcome)
        self.calls.append(record)
        if (outcome.crashed is not None or outcome.timed_out is not None) and outcome.skipped is None:
            self.last_failure[record.key()] = record
        size = sum(a.size for a in kept if isinstance(a, np.ndarray))
        if len(self.first) < HISTORY_LIMIT and size <= HISTORY_MAX_ELEMENTS:
            self.first.setdefault(record.signature(), record)
        return outcome

    def begin_example(self) -> None:
        self.calls = []

    def new_search(self) -> None:
        self.first.clear()
        if hasattr(self.inner, "new_search"):
            self.inner.new_search()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def deviation(call: RecordedCall, accuracy: spec.AccuracyClass, accumulation: dict[str, str] | None = None) -> str | None:
    """How one recorded call breaks the spec, or None (the suite's version of the snippet's assertions)."""
    o = call.outcome
    if o.crashed is not None:
        return f"{call.function} crashed: {o.crashed}"
    if o.timed_out is not None:
        return f"{call.function} did not return within {o.timed_out:g} s"
    valid = is_valid(call.function, call.args, call.kwargs)
    if not valid:
        return None if o.error is not None else f"{call.function} accepted an invalid call"
    if o.error is not None:
        return None if o.unsupported else f"{call.function} raised {type(o.error).__name__}: {o.error}"
    if o.mutated:
        return f"{call.function} wrote into {', '.join(o.mutated)}"
    try:
        return value_deviation(call.function, o.result, call.args, call.kwargs, accuracy, accumulation)
    except Exception as exc:  # a result the checks cannot even read (not an array): a deviation
        return f"{call.function} returned {type(o.result).__name__}: {exc}"


def _number(value: Any, dtype: np.dtype[Any]) -> str:
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v)) if v != 0 or math.copysign(1.0, v) > 0 else "-0.0"
    # The shortest text that reads back to the same value in the array's own dtype.
    return str(dtype.type(value)) if dtype.kind == "f" else repr(v)


def compact_literal(a: np.ndarray[Any, Any]) -> str:
    """Python source that rebuilds ``a`` exactly, with integers printed as integers.

    >>> compact_literal(np.array([[1.0, -np.inf, 0.1]], dtype=np.float32))
    "np.array([1, -inf, 0.1], dtype='float32').reshape(1, 3)"
    """
    flat = ", ".join(_number(v, a.dtype) for v in a.ravel())
    shape = ", ".join(str(s) for s in a.shape) + ("," if a.ndim == 1 else "")
    return f"np.array([{flat}], dtype='{a.dtype}').reshape({shape})"


def seeded_lines(name: str, a: np.ndarray[Any, Any], seed: int) -> list[str]:
    """Source that builds an array of ``a``'s shape and dtype from a seeded generator, keeping its non-finite values.

    The values are not ``a``'s (only where it holds NaN or an infinity, which may be what a kernel trips on).

    >>> a = np.zeros((2, 20)); a[1, 3] = np.nan
    >>> print("\\n".join(seeded_lines("x", a, 1)))
    x = np.random.default_rng(1).standard_normal((2, 20)).astype('float64')
    x.flat[[23]] = [nan]
    """
    lines = [f"{name} = np.random.default_rng({seed}).standard_normal({tuple(a.shape)!r}).astype('{a.dtype}')"]
    special = np.flatnonzero(~np.isfinite(a)) if a.dtype.kind in "fc" else np.array([], dtype=int)
    if special.size:
        values = ", ".join(_number(v, a.dtype) for v in a.ravel()[special])
        lines.append(f"{name}.flat[[{', '.join(str(int(i)) for i in special)}]] = [{values}]")
    return lines


#: Arrays of more values than this are written packed (exact bytes, compressed) rather than as a literal:
#: the large-shapes rule's minimal cases hold 10^5 values, whose literal ran to 400 KB of digits.
PACKED_ARRAY = 1024


def packed_lines(name: str, a: np.ndarray[Any, Any]) -> list[str]:
    """Source that rebuilds ``a`` exactly from its bytes, compressed and base64-encoded, with a summary comment.

    >>> a = np.arange(3000, dtype=np.float32).reshape(1, 3000) % 3 + 1
    >>> lines = packed_lines("x", a)
    >>> lines[0]
    '# x: 3000 values of float32, from 1 to 3 (packed exactly: zlib + base64 of the bytes)'
    >>> env = {"np": np, "zlib": zlib, "base64": base64}
    >>> exec("\\n".join(lines), env); bool(np.array_equal(env["x"], a)) and env["x"].dtype == a.dtype
    True
    """
    data = np.ascontiguousarray(a)
    text = base64.b64encode(zlib.compress(data.tobytes(), 9)).decode("ascii")
    chunks = [text[i:i + 100] for i in range(0, len(text), 100)]
    finite = data.ravel() if data.dtype.kind in "iub" else data[np.isfinite(data.astype(np.float64))]
    span = (f", from {_number(finite.min(), data.dtype)} to {_number(finite.max(), data.dtype)}" if finite.size else "")
    special = data.size - finite.size
    note = f"; {special} NaN or infinite" if special else ""
    byte_order = "" if data.dtype.byteorder in "=|" or data.dtype.itemsize == 1 else f" ({data.dtype.str})"
    shape = ", ".join(str(n) for n in data.shape) + ("," if data.ndim == 1 else "")
    return ([f"# {name}: {data.size} values of {data.dtype}{byte_order}{span}{note} "
             "(packed exactly: zlib + base64 of the bytes)",
             f"{name} = np.frombuffer(zlib.decompress(base64.b64decode("]
            + [f"    {chunk!r}" for chunk in chunks]
            + [f")), dtype={data.dtype.str if data.dtype.names is None and data.dtype.kind != 'V' else str(data.dtype)!r})"
               f".reshape({shape}).copy()"])


class _Names:
    """Variable names for the arrays of a snippet: x, w, b, dy, then x2, x3, ... for other values."""

    def __init__(self, seeded: bool) -> None:
        self.seeded = seeded
        self.known: list[tuple[str, np.ndarray[Any, Any]]] = []
        self.lines: list[str] = []
        self.used: set[str] = set()
        self.packed = False

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}{k}"
        self.used.add(name)
        return name

    def of(self, role: str, value: Any) -> str:
        if not isinstance(value, np.ndarray):
            return repr(value)
        for name, known in self.known:
            if known.dtype == value.dtype and known.shape == value.shape and np.array_equal(known, value, equal_nan=True):
                return name
        name = self.fresh(role)
        self.known.append((name, value))
        if self.seeded and value.size > LARGE_ARRAY:
            self.lines += seeded_lines(name, value, len(self.known))
        elif value.size > PACKED_ARRAY:
            self.lines += packed_lines(name, value)
            self.packed = True
        else:
            self.lines.append(f"{name} = {compact_literal(value)}")
        return name


def _roles(function: str, n: int) -> tuple[str, ...]:
    record = spec.OPERATION_OF[function]
    return (record.backward_args if function == record.backward else record.forward_args)[:n]


def _kwargs_source(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def reproduction(calls: Sequence[RecordedCall], import_line: str, *, accuracy: spec.AccuracyClass = "direct",
                 accumulation: dict[str, str] | None = None, header: Sequence[str] = (),
                 history: Mapping[tuple[Any, ...], RecordedCall] | None = None,
                 ) -> tuple[list[str], RecordedCall | None, str | None]:
    """A standalone script replaying ``calls`` up to the first that breaks the spec; that call and its problem.

    ``history`` maps a call signature to the first call of that signature in
    the run (:attr:`RecordingCaller.first`). When that call was made before the
    failing example and was right, it is replayed first: the backend may keep
    state between calls (right on the first call, wrong on repeated ones).
    """
    found: tuple[int, str] | None = None
    for index, call in enumerate(calls):
        problem = deviation(call, accuracy, accumulation)
        if problem is not None:
            found = (index, problem)
            break
    if found is None:
        shown, bad, problem_text = list(calls), None, None
    else:
        shown, bad, problem_text = list(calls[: found[0] + 1]), calls[found[0]], found[1]
        # Earlier calls of other functions do not change a result: keep only those of the failing one.
        op = bad.function.rpartition("_")[0]
        shown = [c for c in shown[:-1] if c.function.rpartition("_")[0] == op] + [shown[-1]]
    earlier = None
    if bad is not None and history is not None:
        first = history.get(bad.signature())
        if first is not None and all(first is not c for c in calls) and deviation(first, accuracy, accumulation) is None:
            earlier = first
    hang = bad is not None and bad.outcome.timed_out is not None
    crash = bad is not None and bad.outcome.crashed is not None
    names = _Names(seeded=hang)
    body: list[str] = []
    acc = f", accuracy={accuracy!r}" if accuracy != "direct" else ""
    if accumulation:
        acc += f", accumulation={dict(accumulation)!r}"
    replayed = ([earlier] if earlier is not None else []) + shown
    results: dict[str, int] = {}
    for k, call in enumerate(replayed):
        args = [names.of(role, value) for role, value in zip(_roles(call.function, len(call.args)), call.args)]
        call_args = ", ".join(args) + (", " + _kwargs_source(call.kwargs) if call.kwargs else "")
        body.append("")
        if earlier is not None and k == 0:
            body.append("# an earlier call with the same shapes, replayed first: the backend may keep state between calls")
        if call is bad and hang:
            body.append(f"faulthandler.dump_traceback_later({bad.outcome.timed_out:g}, exit=True)  # a hang exits 1")
        if not is_valid(call.function, call.args, call.kwargs):
            body.append("# an invalid call: the spec requires an exception (the reference raises spec.SpecError)")
            body.append(f"expect_raises(backend.{call.function}, {call_args})")
            continue
        record = spec.OPERATION_OF[call.function]
        base = (record.forward_results[0] if call.function == record.forward
                else "grads" if len(record.backward_results) > 1 else "dx")
        results[base] = results.get(base, 0) + 1
        out = base if results[base] == 1 else f"{base}{results[base]}"
        mutated = call.outcome.mutated if call is bad else []
        for name in mutated:
            source = args[_roles(call.function, len(call.args)).index(name)]
            body.append(f"{source}_before = {source}.copy()")
        body.append(f"{out} = backend.{call.function}({call_args})")
        for name in mutated:
            source = args[_roles(call.function, len(call.args)).index(name)]
            body.append(f"expect_unchanged({name!r}, {source}_before, {source})")
        if not (hang or crash) or call is not bad:
            body.append(f"expect({call.function!r}, {out}, {call_args}{acc})  "
                        f"# = reference.{call.function} in float64, within the spec's bound")
    imports = ["import numpy as np", "from numpy import inf, nan",
               "from conformance.replay import expect, expect_raises, expect_unchanged"]
    if names.packed:
        imports[:1] = ["import base64", "import zlib", "import numpy as np"]
    if hang or crash:
        imports.append("import faulthandler")
        if crash:
            imports.append("faulthandler.enable()  # prints where the backend crashed")
    lines = [f"# {h}" for h in header] + imports + [import_line, ""] + names.lines + body
    if found is None:
        lines += ["", "# note: no single call above breaks the spec on its own in this process; the failure depends on",
                  "# what the backend computed before (state) or differs between runs (nondeterminism)"]
    return lines, bad, problem_text

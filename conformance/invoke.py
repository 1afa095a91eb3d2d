"""Calling the backend under test: every call the suite makes goes through a caller.

The caller checks what comes back before any rule looks at values: the
result's type, dtype and shape, that it is a fresh, writable array, and that
the backend did not write into its inputs. A backend exception on a valid call,
a crash, a hang or a misbehaving result is turned into a :class:`Violation` by
the rule that made the call, so it is reported like any other failure.
:mod:`conformance.isolation` provides a caller that runs the backend in a
worker process, so that a crash or a hang cannot take the suite down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from spec import OPERATION_OF, UnsupportedError


def result_names(function: str) -> tuple[str, ...]:
    """The names of what a protocol function returns, from the registry (one name: a bare array).

    >>> result_names("conv_transpose_backward"), result_names("max_pool_indices")
    (('dx', 'dw', 'db'), ('indices',))
    """
    record = OPERATION_OF[function]
    return record.forward_results if function == record.forward else record.backward_results


#: How many arrays each protocol function returns (1 means a bare array).
RESULT_ARITY: dict[str, int] = {function: len(result_names(function)) for function in OPERATION_OF}
#: The names of the results of the functions that return a tuple.
RESULT_NAMES: dict[str, tuple[str, ...]] = {function: result_names(function) for function in OPERATION_OF
                                            if RESULT_ARITY[function] > 1}


@dataclass
class CallOutcome:
    """What one backend call did: its result or exception, and what was wrong with it."""

    function: str
    result: Any = None
    #: The exception the backend raised (a valid call should raise none).
    error: BaseException | None = None
    #: The worker died (signal, abort, exit) or was killed for using too much memory.
    crashed: str | None = None
    #: The call exceeded its time limit.
    timed_out: float | None = None
    #: Where the backend was when it crashed or hung (``file:line in function``), if known.
    where: str | None = None
    #: Why the call was not made: the function crashed or hung too often (``crashed``/``timed_out`` say how).
    skipped: str | None = None
    #: Input names the backend wrote into.
    mutated: list[str] = field(default_factory=list)
    #: Problems with the returned value (type, dtype, aliasing, flags), one line each.
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: How a crash or hang was confirmed (replayed in a fresh worker), in words.
    confirmed: str | None = None
    #: The label of an earlier call that a replay showed to have caused this crash (see SubprocessCaller).
    culprit: Any = None
    #: The call exceeded its time limit but finished when retried with a longer one: the seconds it took.
    slow: float | None = None
    #: The last lines the worker wrote to its stderr before it crashed.
    stderr_tail: str | None = None

    @property
    def unsupported(self) -> bool:
        return isinstance(self.error, UnsupportedError)


def inspect_result(function: str, result: Any, inputs: Mapping[str, Any]) -> list[str]:
    """Problems with a backend result that hold whatever the values are.

    >>> x = np.zeros((1, 1, 2))
    >>> inspect_result("max_pool_forward", x, {"x": x})
    ['result shares memory with input x (must be a fresh array)']
    >>> inspect_result("conv_backward", (x, x), {})
    ['result is a tuple of 2 items, must be a tuple of 3 arrays (dx, dw, db)']
    """
    arity = RESULT_ARITY[function]
    if arity == 1:
        items: Sequence[Any] = (result,)
        names: tuple[str, ...] = ("result",)
    else:
        names = RESULT_NAMES[function]
        if not isinstance(result, (tuple, list)) or len(result) != arity:
            what = f"a {type(result).__name__} of {len(result)} items" if isinstance(result, (tuple, list)) else (
                f"a {type(result).__name__}")
            return [f"result is {what}, must be a tuple of {arity} arrays ({', '.join(names)})"]
        items = result
    problems: list[str] = []
    for name, item in zip(names, items):
        if not isinstance(item, np.ndarray):
            problems.append(f"{name} is a {type(item).__name__}, must be a numpy.ndarray")
            continue
        if type(item) is not np.ndarray:  # memmap, masked array, any subclass: its behaviour is the backend's code
            problems.append(f"{name} is a {type(item).__module__}.{type(item).__qualname__}, must be exactly a "
                            "numpy.ndarray (no subclass, memmap or masked array)")
            continue
        for input_name, value in inputs.items():
            if isinstance(value, np.ndarray) and np.shares_memory(item, value):
                problems.append(f"{name} shares memory with input {input_name} (must be a fresh array)")
        if not item.flags.writeable:
            problems.append(f"{name} is read-only (must be a fresh, writable array)")
    return problems


class ResultHistory:
    """The last few results, to catch a backend that reuses a result's memory on a later call.

    A result must be a fresh array the backend never writes again. Holding
    references to the last ``keep`` results (and copies of their values), each
    call checks that none of them changed and that its own results do not
    share memory with them (they are alive, so fresh memory cannot overlap).
    """

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._kept: list[tuple[str, np.ndarray[Any, Any], np.ndarray[Any, Any]]] = []

    def check(self, function: str, result: Any) -> list[str]:
        """Problems of this call's ``result`` against the earlier ones; then remember it."""
        items = [r for r in (result if isinstance(result, (tuple, list)) else (result,)) if type(r) is np.ndarray]
        problems: list[str] = []
        for earlier_function, earlier, values in self._kept:
            if earlier.shape != values.shape or not np.array_equal(earlier, values, equal_nan=True):
                problems.append(f"an earlier result of {earlier_function} changed during this call: results must be "
                                "fresh arrays the backend never writes again (a reused output buffer?)")
                break
            if any(np.may_share_memory(item, earlier) for item in items):
                problems.append(f"result shares memory with an earlier result of {earlier_function} "
                                "(a reused output buffer?)")
                break
        self._kept += [(function, item, item.copy()) for item in items]
        del self._kept[:-self.keep]
        return problems

    def clear(self) -> None:
        self._kept.clear()


class Caller(Protocol):
    """Runs one protocol function of the backend under test.

    ``label`` is the caller's own name for the call (the suite passes the
    case); a crash that a replay pins on an earlier call comes back with that
    call's label in :attr:`CallOutcome.culprit`.
    """

    def call(self, function: str, args: Sequence[Any], kwargs: Mapping[str, Any], label: Any = None) -> CallOutcome: ...

    def close(self) -> None: ...


def _input_names(function: str, n: int) -> tuple[str, ...]:
    record = OPERATION_OF[function]
    return (record.backward_args if function == record.backward else record.forward_args)[:n]


def run_call(fn: Callable[..., Any], function: str, args: Sequence[Any], kwargs: Mapping[str, Any],
             history: ResultHistory | None = None) -> CallOutcome:
    """Call ``fn`` in this process on private copies of the inputs and inspect what it did."""
    names = _input_names(function, len(args))
    private = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    snapshot = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in private]
    outcome = CallOutcome(function)
    start = time.perf_counter()
    try:
        outcome.result = fn(*private, **kwargs)
    except Exception as exc:  # the backend's exception is data for the rule that made the call
        outcome.error = exc
    outcome.seconds = time.perf_counter() - start
    for name, before, after in zip(names, snapshot, private):
        if before is not None and not np.array_equal(before, after, equal_nan=True):
            outcome.mutated.append(name)
    if outcome.error is None:
        outcome.problems = inspect_result(function, outcome.result, dict(zip(names, private)))
        if history is not None:
            outcome.problems += history.check(function, outcome.result)
    return outcome


class InProcessCaller:
    """Calls the backend directly: fastest, but a crash or hang of the backend stops the suite."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.functions = functions
        self.history = ResultHistory()

    def call(self, function: str, args: Sequence[Any], kwargs: Mapping[str, Any], label: Any = None) -> CallOutcome:
        outcome = run_call(self.functions[function], function, args, kwargs, self.history)
        if not outcome.problems and outcome.error is None:  # the rules get copies: the history keeps the originals
            r = outcome.result
            outcome.result = tuple(a.copy() for a in r) if isinstance(r, tuple) else r.copy()
        return outcome

    def close(self) -> None:
        pass

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

from spec import UnsupportedError

#: How many arrays each protocol function returns (1 means a bare array).
RESULT_ARITY: dict[str, int] = {
    "conv_forward": 1, "conv_backward": 3, "max_pool_forward": 1, "max_pool_backward": 1,
    "avg_pool_forward": 1, "avg_pool_backward": 1, "linear_forward": 1, "linear_backward": 3,
}
RESULT_NAMES: dict[str, tuple[str, ...]] = {
    "conv_backward": ("dx", "dw", "db"), "linear_backward": ("dx", "dw", "db"),
}


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
        for input_name, value in inputs.items():
            if isinstance(value, np.ndarray) and np.shares_memory(item, value):
                problems.append(f"{name} shares memory with input {input_name} (must be a fresh array)")
        if not item.flags.writeable:
            problems.append(f"{name} is read-only (must be a fresh, writable array)")
    return problems


class Caller(Protocol):
    """Runs one protocol function of the backend under test."""

    def call(self, function: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> CallOutcome: ...

    def close(self) -> None: ...


def _input_names(function: str, n: int) -> tuple[str, ...]:
    if function in ("conv_forward", "linear_forward"):
        names: tuple[str, ...] = ("x", "w", "b")
    elif function in ("conv_backward", "linear_backward"):
        names = ("x", "w", "dy")
    elif function.endswith("_backward"):
        names = ("x", "dy")
    else:
        names = ("x",)
    return names[:n]


def run_call(fn: Callable[..., Any], function: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> CallOutcome:
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
    return outcome


class InProcessCaller:
    """Calls the backend directly: fastest, but a crash or hang of the backend stops the suite."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.functions = functions

    def call(self, function: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> CallOutcome:
        return run_call(self.functions[function], function, args, kwargs)

    def close(self) -> None:
        pass

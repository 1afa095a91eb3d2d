"""The context a rule runs in: the backend, its caller, and checked calls."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from conformance.compare import Violation
from conformance.invoke import Caller, CallOutcome
from conformance.loader import LoadedBackend
from conformance.snippets import call_source, case_snippet
from conformance.strategies import Case, Inputs


class Unsupported(Exception):
    """The backend raised spec.UnsupportedError: the example is not covered, not failed."""


class Disabled(Exception):
    """The function was given up on earlier in the run (it crashed or hung): the example is not run."""


def _short_reason(error: BaseException | None) -> str:
    text = str(error).strip().splitlines()[0] if error is not None and str(error).strip() else "no reason given"
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class Context:
    backend: LoadedBackend
    caller: Caller
    #: Reasons given by the backend for examples it declined (UnsupportedError) in the current search.
    unsupported: list[str] = field(default_factory=list)
    #: The same reasons, counted.
    declined: Counter[str] = field(default_factory=Counter)
    #: Backend calls that computed something (returned or raised other than UnsupportedError) so far.
    reached: int = 0
    #: The last crash or hang of each function in each dtype, reported again when it is skipped in that dtype.
    crashes: dict[tuple[str, str], Violation] = field(default_factory=dict)
    #: (function, dtype) that crashed or hung in the current search.
    failed_in_search: set[tuple[str, str]] = field(default_factory=set)
    #: Calls that were slow but not hung, one line each, for the report.
    slow: list[str] = field(default_factory=list)
    #: Shape signatures (function, array shapes and dtypes, parameters) called so far in the run.
    signatures: set[str] = field(default_factory=set)
    #: Seconds and number of calls of a new shape signature in the current search: for a backend that
    #: compiles per shape, its compilation time, reported apart from the time the checks take.
    first_call_seconds: float = 0.0
    first_calls: int = 0
    #: Functions the backend's ``supports`` declined for the current example (rules then leave them out).
    withheld: set[str] = field(default_factory=set)

    def supports(self, op: str, problem: dict[str, Any]) -> str | None:
        """Why the backend does not implement ``problem`` (plain data), or None: its ``supports(op, problem)``.

        A caller that runs the backend elsewhere answers by providing ``supports`` itself; otherwise the
        backend's own function is asked. A backend without ``supports`` implements everything it declares.
        """
        ask = getattr(self.caller, "supports", None)
        if not callable(ask):
            ask = getattr(self.backend.obj, "supports", None)
        if not callable(ask):
            return None
        answer = ask(op, problem)
        return None if answer is None else (str(answer) or "declined without a reason")

    def new_search(self) -> None:
        """A rule's Hypothesis search begins."""
        self.unsupported.clear()
        self.declined.clear()
        self.failed_in_search.clear()
        self.first_call_seconds, self.first_calls = 0.0, 0
        new_search = getattr(self.caller, "new_search", None)
        if callable(new_search):
            new_search()

    def _crash_or_hang(self, function: str, outcome: CallOutcome, case: Case, snippet: list[str]) -> Violation:
        """The finding for a call that crashed or hung, or was skipped because it did so before.

        A skipped call is reported with the case and snippet of the last call
        that really crashed or hung, so the reproduction stays true while
        Hypothesis shrinks towards examples that were never run. A crash that
        a replay pinned on an earlier call is reported with that call's case.
        """
        where = f" at {outcome.where}" if outcome.where else ""
        details = [f"confirmed: {outcome.confirmed}"] if outcome.confirmed else []
        if outcome.stderr_tail:
            details.append(f"the worker's last output: {outcome.stderr_tail}")
        if outcome.crashed is not None:
            summary = f"{function} crashed the process: {outcome.crashed}{where}"
            if isinstance(outcome.culprit, tuple) and len(outcome.culprit) == 2 and isinstance(outcome.culprit[1], Case):
                guilty_function, guilty = outcome.culprit
                summary = (f"{guilty_function} corrupted the process, which later crashed in {function}: "
                           f"{outcome.crashed}{where}")
                details.append(f"the crash itself was in {function} on {case.problem.describe()}")
                source = call_source(guilty_function, guilty, dy=guilty_function.endswith("_backward"))
                snippet = self.snippet(guilty, [f"result = {source}",
                                                f"# then call {function} on {case.problem.describe()}: the process dies"])
                case = guilty
            finding = Violation("crash", summary, case, details, snippet=snippet, kind="crash")
        else:
            confirmed = f" ({outcome.confirmed})" if outcome.confirmed else ""
            finding = Violation("hang", f"{function} did not return within {outcome.timed_out:g} s{confirmed}{where}",
                                case, details[1:], snippet=snippet, kind="hang")
        key = (function, case.problem.dtype)  # a hang in float64 is never reported on a float32 row
        if outcome.skipped is None:
            self.crashes[key] = finding
            self.failed_in_search.add(key)
            return finding
        last = self.crashes.get(key)
        if last is not None and key in self.failed_in_search:
            return last  # the same finding while Hypothesis shrinks: the reproduction stays the real one
        if last is not None:
            raise Disabled(f"{function} disabled after: {last.summary}")
        return replace(finding, summary=f"{function} {outcome.skipped}")

    def call(self, function: str, args: list[Any], kwargs: dict[str, Any], case: Case, *, what: str = "") -> CallOutcome:
        """Call the backend once with the suite's bookkeeping; crashes, hangs and declines raise.

        An ``UnsupportedError`` raises :class:`Unsupported` (the example is
        declined, not checked); a crash or hang raises its
        :class:`~conformance.compare.Violation`. Any other outcome is returned
        and counts as reached.
        """
        __tracebackhide__ = True
        outcome = self._timed_call(function, args, kwargs, case)
        if outcome.crashed is not None or outcome.timed_out is not None:
            source = call_source(function, case, dy=function.endswith("_backward"))
            snippet = self.snippet(case, [f"result = {source}", "print(result)"])
            finding = self._crash_or_hang(function, outcome, case, snippet)
            if what:
                finding = replace(finding, summary=finding.summary.replace(f"{function} ", f"{function} {what} ", 1),
                                  snippet=[])  # the snippet would rebuild the valid case, not this call
            raise finding  # one raise: Hypothesis sees one failure
        if outcome.slow is not None:
            self.slow.append(f"{function} took {outcome.slow:.1f} s on {case.problem.describe()}: over the time limit, "
                             "but it finished when retried with a longer one (slow, not hung)")
        if outcome.unsupported:
            reason = _short_reason(outcome.error)
            self.declined[reason] += 1
            raise Unsupported(f"{function}: {reason}")
        self.reached += 1
        return outcome

    def _timed_call(self, function: str, args: list[Any], kwargs: dict[str, Any], case: Case) -> CallOutcome:
        """Call the backend, timing apart the first call of each shape signature (a compilation, if it compiles)."""
        signature = shape_signature(function, args, kwargs)
        start = time.perf_counter()
        outcome: CallOutcome = self.caller.call(function, args, kwargs, (function, case))
        if signature not in self.signatures:
            self.first_call_seconds += time.perf_counter() - start
            self.first_calls += 1
            self.signatures.add(signature)
        return outcome

    def has(self, function: str) -> bool:
        return function in self.backend.functions and function not in self.withheld

    def snippet(self, case: Case, body: list[str]) -> list[str]:
        return case_snippet(case, self.backend.import_line, body)

    def _checked(self, rule: str, function: str, case: Case, args: list[Any], kwargs: dict[str, Any],
                 expected: dict[str, tuple[int, ...]], dtype: str) -> Any:
        __tracebackhide__ = True
        outcome = self.call(function, args, kwargs, case)

        def snippet() -> list[str]:  # only for a failure: writing out large arrays is slow
            source = call_source(function, case, dy=function.endswith("_backward"))
            return self.snippet(case, [f"result = {source}", "print(result)"])

        if outcome.error is not None:
            raise Violation(rule, f"{function} raised {type(outcome.error).__name__} on a valid call: {outcome.error}",
                            case, snippet=snippet(), kind="error")
        if outcome.mutated:
            raise Violation("input-mutation", f"{function} wrote into its input(s) {', '.join(outcome.mutated)}", case,
                            snippet=snippet())
        if outcome.problems:
            raise Violation("output-contract", f"{function}: {outcome.problems[0]}", case, outcome.problems[1:],
                            snippet())
        results = outcome.result if isinstance(outcome.result, (tuple, list)) else (outcome.result,)
        out: dict[str, Any] = {}
        for (name, shape), value in zip(expected.items(), results):
            if value.shape != shape:
                raise Violation("output-shape", f"{name}.shape={value.shape}, but should be {shape} [{function}]", case,
                                snippet=snippet())
            if value.dtype != np.dtype(dtype):
                raise Violation("output-shape", f"{name}.dtype={value.dtype}, but should be {dtype} [{function}]", case,
                                snippet=snippet())
            out[name] = value
        return out

    def forward(self, rule: str, case: Case) -> np.ndarray[Any, Any]:
        """The backend's forward output for ``case``, checked for shape, dtype and contract."""
        __tracebackhide__ = True
        p, i = case.problem, case.inputs
        record = p.operation
        args: list[Any] = [getattr(i, name) for name in record.forward_args]
        name = record.forward_results[0]
        result: np.ndarray[Any, Any] = self._checked(
            rule, record.forward, case, args, dict(p.params), {name: p.output_shape()}, p.result_dtype())[name]
        return result

    def backward(self, rule: str, case: Case) -> dict[str, np.ndarray[Any, Any]]:
        """The backend's gradients for ``case`` by name (the registry's: dx, and dw, db with weights)."""
        __tracebackhide__ = True
        p, i = case.problem, case.inputs
        record = p.operation
        if record.backward is None:
            raise ValueError(f"{p.op} has no backward function")
        shapes: dict[str, tuple[int, ...]] = {"dx": p.x_shape}
        if p.w_shape is not None:
            shapes |= {"dw": p.w_shape, "db": p.bias_shape()}
        expected = {name: shapes[name] for name in record.backward_results}
        args: list[Any] = [getattr(i, name) for name in record.backward_args]
        return dict(self._checked(rule, record.backward, case, args, dict(p.params), expected, p.dtype))


def shape_signature(function: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    """What a compiling backend specialises on: the function, each argument's shape and dtype, the parameters."""
    arrays = [None if a is None else (getattr(a, "shape", None), str(getattr(a, "dtype", type(a).__name__)))
              for a in args]
    return repr((function, arrays, sorted(kwargs.items())))


def derive(case: Case, **arrays: Any) -> Case:
    """The same problem with some arrays replaced (b=None also drops the bias)."""
    inputs: Inputs = replace(case.inputs, **arrays)
    problem = case.problem
    if "b" in arrays:
        problem = replace(problem, bias=arrays["b"] is not None)
    if "x" in arrays:
        problem = replace(problem, x_shape=tuple(arrays["x"].shape))
    if "w" in arrays and arrays["w"] is not None:
        problem = replace(problem, w_shape=tuple(arrays["w"].shape))
    return Case(problem, inputs)

"""What every rule module shares: the :class:`Rule` record, its callable types and small numeric helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance.context import Context
from conformance.strategies import Case, cases
from spec import OPERATIONS, Capabilities, Operation, OpName

F64 = np.float64
CaseStrategy = Callable[[OpName, Capabilities, str], st.SearchStrategy[Case]]
Check = Callable[[Context, Case], None]


def ops_where(predicate: Callable[[Operation], bool]) -> tuple[OpName, ...]:
    """The operations whose registry record satisfies ``predicate``, in registry order.

    A generic rule takes its operations from here, so an operation added to the registry is checked by
    every generic rule whose predicate fits its record, with no change to the rule.
    """
    return tuple(name for name, record in OPERATIONS.items() if predicate(record))


#: Every operation.
EVERY_OP: tuple[OpName, ...] = ops_where(lambda r: True)
#: Operations with a backward function (the gradient rules).
WITH_BACKWARD: tuple[OpName, ...] = ops_where(lambda r: r.has_backward)
#: Operations whose result has the input's (floating) dtype: not max-pool indices.
FLOAT_RESULT: tuple[OpName, ...] = ops_where(lambda r: r.result_dtype is None)


def weight_out_axis(record: Operation) -> int:
    """The axis of w that indexes output channels (within a group), from the registry's weight layout."""
    assert record.weight_shape is not None, f"{record.name} has no weights"
    return record.weight_shape(1, 2, 1, ()).index(2)


#: The four operations of the first protocol. Tests that sample one operation per seed still use them;
#: rules draw their operations from the registry.
ALL_OPS: tuple[OpName, ...] = ("conv", "max_pool", "avg_pool", "linear")


@dataclass(frozen=True)
class Rule:
    """One named property of the spec, checked on generated cases."""

    id: str
    title: str
    ops: tuple[OpName, ...]
    #: Protocol functions the rule needs: "forward", "backward".
    needs: tuple[str, ...]
    strategy: CaseStrategy
    check: Check
    #: Relative number of examples (1.0 = the profile's base count).
    weight: float = 1.0
    #: Run in every requested dtype (False: only the widest the backend supports).
    per_dtype: bool = True
    #: Returns why the rule cannot run for (op, caps), or None.
    applies: Callable[[OpName, Capabilities], str | None] = lambda op, caps: None


def rule(id: str, title: str, ops: tuple[OpName, ...], needs: tuple[str, ...],
         strategy: Any, check: Any, **kw: Any) -> Rule:
    """A :class:`Rule`; strategy and check are loosely typed (some draw tuples, not cases)."""
    return Rule(id, title, ops, needs, strategy, check, **kw)


def ordinary(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return cases(op, caps, dtype)


def dot(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(np.sum(np.asarray(a, dtype=F64) * np.asarray(b, dtype=F64)))


def rounding64(*products: float) -> float:
    """Rounding of the float64 dot products the rules themselves compute."""
    return 1e-12 * sum(products)


def cast(a: np.ndarray[Any, Any], dtype: str) -> np.ndarray[Any, Any]:
    with np.errstate(over="ignore"):
        return np.asarray(a).astype(dtype)


def set_first(params: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``params`` with the first spatial entry of ``key`` replaced by ``value``."""
    out = dict(params)
    out[key] = (value, *out[key][1:])
    return out


def zero_bias(case: Case) -> np.ndarray[Any, Any] | None:
    """A bias of zeros where ``case`` has one, else None: the linear map without its bias, called with the
    case's own argument shapes (adding 0 is exact), so a backend that compiles per shape compiles nothing new."""
    b = case.inputs.b
    return None if b is None else np.zeros_like(b)

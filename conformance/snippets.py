"""Copy-pasteable reproductions: every failure comes with Python that re-runs it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

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
    if p.op in ("conv", "linear"):
        names = ["x", "w", "dy"] if dy else ["x", "w", "b"]
    else:
        names = ["x", "dy"] if dy else ["x"]
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
    if case.problem.op not in ("conv", "linear"):
        lines = [line for line in lines if not line.startswith(("w = ", "b = "))]
    return lines + body

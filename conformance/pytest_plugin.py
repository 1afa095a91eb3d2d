"""pytest plugin: run the conformance suite inside a project's own pytest run.

    pytest --convspec-backend=mypkg.kernels:backend [--convspec-profile=ci] [--convspec-seed=0]
           [--convspec-ops=conv,linear] [--convspec-dtypes=float32]

Each rule x operation x dtype becomes one pytest item named
``convspec[<backend>]::<op>::<rule>[<dtype>]``; a failure shows the same report
as ``convspec check``. Without ``--convspec-backend`` the plugin does nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from spec import DTYPES, OPERATIONS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("convspec", "convspec conformance suite")
    group.addoption("--convspec-backend", default=None, help="backend to check (as for `convspec check`)")
    group.addoption("--convspec-profile", default="ci", choices=("quick", "ci", "thorough"), help="example budget")
    group.addoption("--convspec-seed", type=int, default=0, help="seed of every Hypothesis search")
    group.addoption("--convspec-ops", default=",".join(OPERATIONS), help="comma-separated operations")
    group.addoption("--convspec-dtypes", default=",".join(DTYPES), help="comma-separated dtypes")


class ConvspecFailure(Exception):
    """A conformance rule failed; the message is the full report of the failure."""


class ConvspecItem(pytest.Item):
    def __init__(self, *, plan_item: Any, runtime: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_item = plan_item
        self.runtime = runtime

    def runtest(self) -> None:
        from conformance.report import failure_text
        from conformance.runner import run_item

        context, seed = self.runtime
        result = run_item(context, self.plan_item, seed)
        if result.status in ("failed", "error"):
            raise ConvspecFailure(failure_text(result))
        if result.status == "not covered":
            pytest.skip(f"not covered: {result.note}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ConvspecFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "convspec", None, self.name


def _split(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise pytest.UsageError(f"{option}: unknown value(s) {bad or text!r}; choose from {', '.join(allowed)}")
    return values


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    name = config.getoption("convspec_backend")
    if not name:
        return
    from conformance.context import Context
    from conformance.invoke import InProcessCaller
    from conformance.loader import BackendLoadError, load_backend
    from conformance.runner import make_plan

    try:
        backend = load_backend(name)
    except BackendLoadError as exc:
        raise pytest.UsageError(f"--convspec-backend: {exc}") from exc
    wanted = _split(config.getoption("convspec_ops"), tuple(OPERATIONS), "--convspec-ops")
    ops = [op for op in OPERATIONS if op in wanted]
    dtypes = _split(config.getoption("convspec_dtypes"), DTYPES, "--convspec-dtypes")
    plan, _ = make_plan(backend, ops, dtypes, config.getoption("convspec_profile"))
    runtime = (Context(backend, InProcessCaller(backend.functions)), config.getoption("convspec_seed"))
    for entry in plan:
        items.append(ConvspecItem.from_parent(
            session, name=f"convspec[{backend.name}]::{entry.op}::{entry.rule.id}[{entry.dtype}]",
            plan_item=entry, runtime=runtime,
        ))

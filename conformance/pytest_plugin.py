"""pytest plugin: run the conformance suite inside a project's own pytest run.

    pytest --convspec-backend=mypkg.kernels:backend [--convspec-profile=ci] [--convspec-seed=0]
           [--convspec-ops=conv,linear] [--convspec-dtypes=float32] [-n 2]

Each rule x operation x dtype is one pytest item, collected (and counted) by
a collector named ``convspec[<backend>]``, so its id reads
``convspec[<backend>]::<op>::<rule>[<dtype>]`` and can be pasted into ``-k``
as printed. A failure shows the same report as ``convspec check``. What the
backend does not cover is a skipped item with the reason (in the terminal
summary with ``-rs`` and as ``<skipped>`` in ``--junitxml``); capabilities not
declared are listed at the end. The backend runs in a worker process, as with
``convspec check`` (``--convspec-isolation=none`` to call it in pytest's own
process), and failing examples are saved and replayed first
(``--convspec-database``). With pytest-xdist (``-n N``) every pytest worker
collects the same items and runs its share. Without ``--convspec-backend`` the
plugin does nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from conformance.textio import parse_choices
from spec import DTYPES, OPERATIONS

if TYPE_CHECKING:
    from conformance.context import Context
    from conformance.loader import LoadedBackend
    from conformance.runner import NotPlanned, PlanItem


def pytest_addoption(parser: pytest.Parser) -> None:
    from conformance.database import DEFAULT_DIRECTORY
    from conformance.isolation import DEFAULT_MEMORY_LIMIT_MIB, DEFAULT_TIMEOUT

    group = parser.getgroup("convspec", "convspec conformance suite")
    group.addoption("--convspec-backend", default=None, help="backend to check (as for `convspec check`)")
    group.addoption("--convspec-profile", default="ci", choices=("quick", "ci", "thorough"), help="example budget")
    group.addoption("--convspec-seed", type=int, default=0, help="seed of every Hypothesis search")
    group.addoption("--convspec-ops", default=",".join(OPERATIONS), help="comma-separated operations")
    group.addoption("--convspec-dtypes", default=",".join(DTYPES), help="comma-separated dtypes")
    group.addoption("--convspec-isolation", default="process", choices=("process", "none"),
                    help="process (default): the backend runs in a worker process; none: in pytest's process")
    group.addoption("--convspec-timeout", type=float, default=DEFAULT_TIMEOUT,
                    help=f"time limit of one backend call in seconds (default {DEFAULT_TIMEOUT:g})")
    group.addoption("--convspec-memory-limit", type=int, default=DEFAULT_MEMORY_LIMIT_MIB,
                    help=f"memory limit of the worker process in MiB (default {DEFAULT_MEMORY_LIMIT_MIB})")
    group.addoption("--convspec-database", default=None, metavar="DIR",
                    help=f"keep failing examples in DIR and replay them first (default {DEFAULT_DIRECTORY})")
    group.addoption("--convspec-no-database", action="store_true", help="neither replay nor save failing examples")


class ConvspecFailure(Exception):
    """A conformance rule failed; the message is the full report of the failure."""


def _split(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    try:
        return parse_choices(text, allowed)
    except ValueError as exc:
        raise pytest.UsageError(f"{option}: {exc}") from None


class ConvspecBackend(pytest.Collector):
    """The collector of one backend's items; it holds what they share (the backend, its caller, the database)."""

    backend: LoadedBackend

    def __init__(self, *, backend: LoadedBackend, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self._context: Context | None = None
        self.uncovered: list[str] = []

    def collect(self) -> Iterator[pytest.Item]:
        from conformance.rules import RULES
        from conformance.runner import NotPlanned, PlanItem, make_plan

        config = self.config
        ops = [op for op in OPERATIONS if op in _split(config.getoption("convspec_ops"), tuple(OPERATIONS),
                                                            "--convspec-ops")]
        dtypes = _split(config.getoption("convspec_dtypes"), DTYPES, "--convspec-dtypes")
        not_planned: list[NotPlanned] = []
        plan, self.uncovered = make_plan(self.backend, ops, dtypes, config.getoption("convspec_profile"),
                                         not_planned=not_planned)
        order = {rule.id: i for i, rule in enumerate(RULES)}
        entries: list[PlanItem | NotPlanned] = [*plan, *not_planned]

        def position(entry: PlanItem | NotPlanned) -> tuple[int, int, int]:
            rule = entry.rule.id if isinstance(entry, PlanItem) else entry.rule
            return (ops.index(entry.op), -1 if rule is None else order.get(rule, len(order)),
                    dtypes.index(entry.dtype) if entry.dtype in dtypes else -1)

        for entry in sorted(entries, key=position):
            if isinstance(entry, NotPlanned):  # one skip per operation the backend lacks, else per rule (x dtype)
                name = entry.op if entry.rule is None else f"{entry.op}::{entry.rule}"
                name += f"[{entry.dtype}]" if entry.dtype else ""
                item = ConvspecItem.from_parent(self, name=name, plan_item=None)
                item.add_marker(pytest.mark.skip(reason=f"not covered: {entry.reason}"))
            else:
                item = ConvspecItem.from_parent(self, name=f"{entry.op}::{entry.rule.id}[{entry.dtype}]",
                                                plan_item=entry)
            yield item

    def context(self) -> Context:
        """The backend's caller, made on first use in this process (each xdist worker makes its own)."""
        if self._context is None:
            from conformance.context import Context
            from conformance.runner import make_caller
            from conformance.snippets import RecordingCaller

            config = self.config
            args = argparse.Namespace(isolation=config.getoption("convspec_isolation"),
                                      timeout=config.getoption("convspec_timeout"),
                                      memory_limit=config.getoption("convspec_memory_limit"))
            caller, _ = make_caller(self.backend, args)
            # Recorded calls give each failure a reproduction that replays them, as in `convspec check`.
            self._context = Context(self.backend, RecordingCaller(caller))
            config.add_cleanup(caller.close)
        return self._context


class ConvspecItem(pytest.Item):
    """One rule x operation x dtype; ``plan_item`` None for what the backend does not cover (a skip)."""

    def __init__(self, *, plan_item: PlanItem | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_item = plan_item
        # The id as printed (convspec[backend]::op::rule[dtype]) matches in -k, not only its parts.
        self.extra_keyword_matches.add(self.nodeid)

    def runtest(self) -> None:
        from conformance.report import failure_text
        from conformance.runner import run_item
        from conformance.shape_pool import POOL_SIZES, pool_settings

        assert self.plan_item is not None and isinstance(self.parent, ConvspecBackend)
        seed = self.config.getoption("convspec_seed")
        with pool_settings(seed, POOL_SIZES[self.config.getoption("convspec_profile")]):  # compile-per-shape backends
            result = run_item(self.parent.context(), self.plan_item, seed, _database(self.config))
        if result.status in ("failed", "error"):
            raise ConvspecFailure(failure_text(result))
        if result.status != "passed":
            pytest.skip(f"{result.status}: {result.note}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ConvspecFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int, str]:
        return "convspec", 0, self.nodeid  # no source line: skip summaries read "convspec:1: not covered: ..."


_DATABASE = pytest.StashKey[Any]()


def _database(config: pytest.Config) -> Any:
    """The example database of this pytest run (opened once per process), or None."""
    if _DATABASE not in config.stash:
        from conformance.database import default_directory, open_database

        if config.getoption("convspec_no_database"):
            config.stash[_DATABASE] = None
        else:
            try:
                config.stash[_DATABASE] = open_database(config.getoption("convspec_database") or default_directory())
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
    return config.stash[_DATABASE]


_COLLECTOR = pytest.StashKey[ConvspecBackend]()


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Add the backend's collector beside the session's own, so its items are collected and counted."""
    report = yield
    config = collector.config
    name = config.getoption("convspec_backend", None)
    if not name or not isinstance(collector, pytest.Session) or not report.passed:
        return report
    from conformance.loader import BackendLoadError, load_backend

    try:
        backend = load_backend(name)
    except BackendLoadError as exc:
        raise pytest.UsageError(f"--convspec-backend: {exc}") from None
    _database(config)  # an invalid --convspec-database is a usage error before anything runs
    name = f"convspec[{backend.name}]"
    node = ConvspecBackend.from_parent(collector, name=name, nodeid=name, backend=backend)
    config.stash[_COLLECTOR] = node
    report.result.append(node)  # the session's collect report: its nodes are collected next
    return report


_UNCOVERED = pytest.StashKey[tuple[str, list[str]]]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker sends what was not covered to the controller, which prints the summary."""
    node = session.config.stash.get(_COLLECTOR, None)
    workeroutput = getattr(session.config, "workeroutput", None)
    if node is not None and workeroutput is not None:
        workeroutput["convspec_uncovered"] = (node.backend.name, node.uncovered)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    sent = getattr(node, "workeroutput", {}).get("convspec_uncovered")
    if sent is not None:
        node.config.stash[_UNCOVERED] = (str(sent[0]), [str(line) for line in sent[1]])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    node = config.stash.get(_COLLECTOR, None)
    name, uncovered = (node.backend.name, node.uncovered) if node is not None else config.stash.get(_UNCOVERED, ("", []))
    if not uncovered:
        return
    terminalreporter.section(f"convspec: not covered by {name}")
    for line in uncovered:
        terminalreporter.write_line(f"- {line}")

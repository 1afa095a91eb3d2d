"""Progress of a run: a live bar on a terminal, one line per item elsewhere (CI logs, pipes, files).

On a terminal the bar shows the items done, the elapsed time and an estimate
of the time left, with each failure printed above it as it is found; the
summary follows when the run ends. When the output is not a terminal, each
item prints one line as it finishes, as before, so logs read the same.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from conformance.report import progress_line
from conformance.results import RuleResult


class RunProgress:
    """The ``progress`` callback of :func:`conformance.runner.run`, as a context manager.

    ``live`` forces the bar on or off; by default it is on exactly when
    ``stream`` is a terminal.
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True, force_terminal=live)
        self.live = self.console.is_terminal and not self.console.is_dumb_terminal if live is None else live
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self.failed = 0

    def __enter__(self) -> RunProgress:
        if self.live:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                 console=self.console, transient=True)
            self._task = self._bar.add_task("starting", total=None)
            self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, done: int, total: int, result: RuleResult) -> None:
        line = progress_line(done, total, result)
        self.failed += result.status in ("failed", "error")
        if self._bar is None:
            print(line, file=self.stream, flush=True)
            return
        assert self._task is not None
        if result.status in ("failed", "error"):
            self._bar.console.print(line, markup=False)
        failures = f", {self.failed} failed" if self.failed else ""
        self._bar.update(self._task, completed=done, total=total,
                         description=f"{result.op} {result.dtype} {result.rule}{failures}")

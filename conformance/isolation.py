"""Running the backend under test in a worker process: no backend code ever runs in the suite's process.

:class:`SubprocessCaller` keeps one worker process (a fresh interpreter that
talks to the suite through a ``multiprocessing.connection.Connection``). The
worker imports convspec's own ``spec``, ``reference`` and ``conformance``
first (so a ``spec/`` or ``reference.py`` in the working directory cannot
replace them), then the backend, and reports back what it found as plain data
(:class:`conformance.loader.BackendInfo`). Each call runs
:func:`conformance.invoke.run_call` there, so the contract (exact
``numpy.ndarray``, no aliasing, inputs untouched, earlier results unchanged)
is checked where the real objects are; only builtins and bytes travel back
(:mod:`conformance.wire`).

What the worker can do to the suite, and what the suite makes of it:

* it exits, raises or hangs while importing the backend: a
  :class:`~conformance.loader.BackendLoadError` naming the cause (exit 2);
* it dies during a call (segfault, ``abort()``, ``os._exit``, a signal): the
  call is replayed in a fresh worker. If it crashes alone, the crash is
  confirmed; if not, the dead worker's last calls (up to :data:`HISTORY`) are
  replayed and bisected to find the earlier call that corrupted the process,
  and the outcome names it (:attr:`CallOutcome.culprit`);
* it does not answer within ``timeout`` seconds: the call is retried alone in
  a fresh worker with ``retry_factor`` times the limit; only if it times out
  again is it a hang, otherwise the call was slow and its result stands
  (:attr:`CallOutcome.slow`);
* it allocates more than ``memory_limit_mib``: ``crashed`` with "exceeded the
  memory limit";
* it forks: the worker leads its own session and process group, and every
  process carrying the worker's token in its environment is killed when the
  worker is replaced or closed, before the suite writes anything. The worker's
  stdout and stderr go to a file, never to the suite's output.

A function that keeps crashing or hanging in one dtype is not called again in
that dtype (a *circuit breaker*): within one rule's search after
``max_strikes`` crashes or hangs, and for the rest of the run once they have
cost ``max_strikes * timeout`` seconds. Its later calls in that dtype return at
once with ``skipped`` set; other dtypes are still called, so a kernel that
hangs only in float64 is still checked (and passes or fails) in float32. A
timeout of a function already confirmed to hang in another dtype is not
retried with the longer limit: it is taken as the same hang, and the function
is given up on in that dtype at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import math
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from conformance.invoke import CallOutcome, ResultHistory, run_call
from conformance.loader import BackendInfo, BackendLoadError, Target, resolve_target
from conformance.wire import BackendError, decode_outcome, dumps_plain, encode_outcome, loads_plain

#: Default time limit of one call, in seconds (the worker's start-up is not counted).
DEFAULT_TIMEOUT = 10.0
#: A call that times out is retried alone in a fresh worker with this many times the limit.
DEFAULT_RETRY_FACTOR = 6.0
#: Default memory limit of the worker, in MiB (torch, jax and tensorflow use well under 1 GiB after import).
DEFAULT_MEMORY_LIMIT_MIB = 4096
#: Default number of crashes or hangs after which a function is given up on.
DEFAULT_MAX_STRIKES = 2
#: How long the worker may take to start and import the backend (tensorflow alone can take 10 s).
DEFAULT_IMPORT_TIMEOUT = 120.0
STARTUP_TIMEOUT = DEFAULT_IMPORT_TIMEOUT
#: How many of a worker's latest calls are kept to find the one that corrupted it.
HISTORY = 32
#: How many crashes of one function are replayed and bisected in a run. Each confirmation restarts the worker up to
#: about log2(HISTORY) + 2 times (a framework import each); a backend that crashes in every rule would otherwise spend
#: most of its run confirming the same crash. Later crashes of that function are reported as they happened, saying so.
MAX_CONFIRMATIONS = 3
#: How often the worker's resident size is checked while a call runs, in seconds.
_POLL_SECONDS = 0.05
#: The environment variable that marks the worker and every process it starts.
TOKEN_VARIABLE = "CONVSPEC_WORKER_TOKEN"
#: The directory holding convspec's own packages (spec, reference, conformance).
OWN_ROOT = str(Path(__file__).resolve().parent.parent)

__all__ = ["BackendError", "DEFAULT_TIMEOUT", "SubprocessCaller", "describe_exit", "where_it_was"]


# --------------------------------------------------------------------------- the worker side

def _limit_memory(limit_mib: int) -> None:
    limit = limit_mib * 2**20
    for which in (resource.RLIMIT_DATA,):
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(which, (limit, hard))
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the suite's process dies (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def own_packages_problem(root: str) -> str | None:
    """Why convspec's own packages are not the ones imported (a shadowing module), or None."""
    for name in ("spec", "reference", "conformance"):
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None) or ""
        if module is None or not os.path.abspath(file).startswith(os.path.join(root, name) + os.sep):
            return (f"convspec's own package {name!r} is shadowed by {file or 'a module'} "
                    f"(convspec lives in {root}); rename or move the colliding module")
    return None


#: The worker's first lines: isolate from the working directory (-P), import convspec's own packages
#: from its root, then take the user's path and run :func:`worker_main`.
_BOOTSTRAP = """
import sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
sys.path.insert(0, sys.argv[2])
import spec, reference, conformance.isolation
del sys.path[0]
conformance.isolation.worker_main(conn, sys.argv[2])
"""


def worker_main(conn: Connection, root: str) -> None:
    """The worker's loop: load the backend, then answer ``(function, args, kwargs)`` with plain outcomes."""
    _die_with_parent()
    setup = conn.recv()
    sys.path[:] = setup["path"]
    os.chdir(setup["cwd"])
    fault_file = open(setup["fault_path"], "a", encoding="utf-8")  # kept open for the worker's lifetime
    faulthandler.enable(file=fault_file, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=fault_file, all_threads=True)
    memory_limit_mib = int(setup["memory_limit_mib"])
    _limit_memory(memory_limit_mib)
    problem = own_packages_problem(root)
    if problem is not None:
        conn.send_bytes(dumps_plain(("failed", problem)))
        return
    try:
        from conformance.loader import import_backend, version_of

        obj, functions, capabilities = import_backend(Target(**setup["target"]))
        info = BackendInfo(tuple(functions), capabilities, version_of(obj)).to_data()
    except BackendLoadError as exc:
        conn.send_bytes(dumps_plain(("failed", str(exc))))
        return
    except BaseException as exc:  # report why the worker cannot serve, whatever it is
        conn.send_bytes(dumps_plain(("failed", f"loading the backend failed: {type(exc).__name__}: {exc}")))
        return
    conn.send_bytes(dumps_plain(("ready", info)))
    history = ResultHistory()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        function, args, kwargs = request
        if function == SUPPORTS:  # the backend's supports(op, problem): plain data in, a reason or None out
            ask = getattr(obj, "supports", None)
            if not callable(ask):
                conn.send_bytes(encode_outcome(CallOutcome(function, problems=[NO_SUPPORTS])))
                continue
            try:
                answer = ask(*args)
                conn.send_bytes(encode_outcome(CallOutcome(function, result=None if answer is None else str(answer))))
            except Exception as exc:  # a failing supports() declines nothing; the calls themselves will tell
                conn.send_bytes(encode_outcome(CallOutcome(function, problems=[f"supports() raised {exc!r}"])))
            continue
        outcome = run_call(functions[function], function, args, kwargs, history)
        if isinstance(outcome.error, MemoryError):
            outcome.crashed = f"exceeded the memory limit of {memory_limit_mib} MiB (MemoryError: {outcome.error})"
            outcome.error = None
        try:
            payload = encode_outcome(outcome)
        except MemoryError:
            payload = encode_outcome(CallOutcome(function, crashed=f"exceeded the memory limit of {memory_limit_mib} MiB"))
        conn.send_bytes(payload)


# --------------------------------------------------------------------------- the suite's side

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')


def where_it_was(dump: str) -> str | None:
    """The backend line a faulthandler dump shows the worker running, as ``file:line in function``.

    Of the last dump, the thread that was inside :func:`run_call` is taken,
    and in it the innermost frame outside the standard library.

    >>> where_it_was('Current thread 0x1 (most recent call first):\\n'
    ...              '  File "/usr/lib/python3.11/ctypes/__init__.py", line 9 in string_at\\n'
    ...              '  File "/src/bad.py", line 7 in conv_forward\\n'
    ...              '  File "/src/conformance/invoke.py", line 117 in run_call\\n')
    '/src/bad.py:7 in conv_forward'
    """
    start = max(dump.rfind("Fatal Python error"), dump.rfind("(most recent call first)"))
    header = dump.rfind("\n\n", 0, start)
    blocks = dump[header + 1 if header >= 0 else 0:].split("\n\n")
    stdlib = sysconfig.get_paths()["stdlib"]
    for block in blocks:
        frames = [m for m in map(_FRAME.match, block.splitlines()) if m]
        if not any(m["func"] == "run_call" for m in frames):
            continue
        for m in frames:
            if m["func"] == "run_call":
                break
            if not (m["file"].startswith(stdlib) or re.search(r"/lib/python3\.\d+/", m["file"])):
                try:
                    file = os.path.relpath(m["file"])
                except ValueError:
                    file = m["file"]
                return f"{file if not file.startswith('..') else m['file']}:{m['line']} in {m['func']}"
    return None


def describe_exit(exitcode: int | None) -> str:
    """Words for how a worker ended.

    >>> describe_exit(-11)
    'killed by signal SIGSEGV (Segmentation fault)'
    >>> describe_exit(3)
    'the process exited with status 3'
    """
    if exitcode is None:
        return "the process ended for an unknown reason"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"killed by signal {-exitcode}"
        text = f"killed by signal {sig.name} ({signal.strsignal(sig) or sig.name})"
        if sig == signal.SIGKILL:
            text += ", perhaps by the system's out-of-memory killer"
        return text
    return f"the process exited with status {exitcode}"


def _resident_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def processes_with_token(token: str) -> list[int]:
    """Pids of live processes whose environment carries ``TOKEN_VARIABLE=token`` (Linux /proc)."""
    marker = f"{TOKEN_VARIABLE}={token}".encode()
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as environ:
                    if marker in environ.read().split(b"\0"):
                        found.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                continue
    return found


def _tail(path: str | None, lines: int = 3) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as log:
            log.seek(max(0, os.path.getsize(path) - 4096))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return None
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[:500] or None


@dataclass
class _Strikes:
    """One function's crashes and hangs: how many, in the current search and in all, their cost, the last one."""

    in_search: int = 0
    crashes: int = 0
    hangs: int = 0
    seconds: float = 0.0
    last: CallOutcome | None = None
    #: A hang taken as one already confirmed in another dtype: given up on at once.
    same_hang: bool = False

    def add(self, outcome: CallOutcome, seconds: float) -> None:
        self.in_search += 1
        if outcome.timed_out is not None:
            self.hangs += 1
        else:
            self.crashes += 1
        self.seconds += seconds
        self.last = outcome

    def describe(self) -> str:
        """``crashed twice and hung once``."""
        def times(n: int) -> str:
            return {1: "once", 2: "twice"}.get(n, f"{n} times")
        parts = ([f"crashed {times(self.crashes)}"] if self.crashes else []) + (
            [f"hung {times(self.hangs)}"] if self.hangs else [])
        return " and ".join(parts)


#: How a hang taken as the same as one confirmed in another dtype is marked (:attr:`CallOutcome.confirmed`).
NOT_RETRIED = "not retried: "
#: The request name under which the worker answers the backend's ``supports(op, problem)``.
SUPPORTS = "supports"
#: The worker's answer when the backend has no supports().
NO_SUPPORTS = "the backend has no supports()"


@dataclass(frozen=True)
class _Call:
    function: str
    args: list[Any]
    kwargs: dict[str, Any]
    label: Any


@dataclass
class SlowCall:
    """A call that exceeded the time limit but finished when retried with a longer one."""

    function: str
    label: Any
    seconds: float
    limit: float


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    token: str
    fault_path: str
    log_path: str


@dataclass
class SubprocessCaller:
    """Runs the backend's functions in a persistent worker process, with a time and memory limit.

    ``target`` is a backend name or :class:`~conformance.loader.Target`.
    :meth:`connect` starts the first worker and returns what it found.
    """

    target: str | Target
    timeout: float = DEFAULT_TIMEOUT
    memory_limit_mib: int = DEFAULT_MEMORY_LIMIT_MIB
    max_strikes: int = DEFAULT_MAX_STRIKES
    import_timeout: float = DEFAULT_IMPORT_TIMEOUT
    retry_factor: float = DEFAULT_RETRY_FACTOR
    #: Extra environment of the worker (glibc's MALLOC_PERTURB_ by default: freed memory is poisoned).
    worker_env: dict[str, str] = field(default_factory=lambda: {"MALLOC_PERTURB_": "165"})
    #: Worker starts so far (the first, one after each crash, hang or memory overrun, and replays).
    starts: int = 0
    #: What the first worker found: the backend's functions, capabilities and version.
    info: BackendInfo | None = None
    #: Calls that were slow but not hung.
    slow_calls: list[SlowCall] = field(default_factory=list)
    _worker: _Worker | None = field(default=None, repr=False)
    #: Whether the backend has supports() (None: not asked yet).
    _has_supports: bool | None = field(default=None, repr=False)
    #: Crashes and hangs by (function, dtype of its first array argument).
    _strikes: dict[tuple[str, str], _Strikes] = field(default_factory=dict, repr=False)
    _history: deque[_Call] = field(default_factory=lambda: deque(maxlen=HISTORY), repr=False)
    _confirmations: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.target, str):
            self.target = resolve_target(self.target)
        for name in ("timeout", "import_timeout"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name}={value!r}, but must be a positive number of seconds")
        if not (self.retry_factor >= 1 and math.isfinite(self.retry_factor)):
            raise ValueError(f"retry_factor={self.retry_factor!r}, but must be at least 1")
        if self.memory_limit_mib < 64:
            raise ValueError(f"memory_limit_mib={self.memory_limit_mib!r}, but must be at least 64")
        if self.max_strikes < 1:
            raise ValueError(f"max_strikes={self.max_strikes!r}, but must be at least 1")

    @property
    def _target(self) -> Target:
        assert isinstance(self.target, Target)
        return self.target

    # ------------------------------------------------------------------ the Caller protocol

    def connect(self) -> BackendInfo:
        """Start the worker and import the backend there; raise BackendLoadError naming why it cannot be."""
        failure = self._start()
        if failure is not None:
            raise BackendLoadError(failure)
        assert self.info is not None
        return self.info

    def call(self, function: str, args: Sequence[Any], kwargs: Mapping[str, Any], label: Any = None) -> CallOutcome:
        key = (function, dtype_of(args))
        skipped = self._skip(key)
        if skipped is not None:
            return skipped
        start = time.perf_counter()
        request = _Call(function, list(args), dict(kwargs), label)
        outcome = self._call(request, self.timeout)
        if outcome.timed_out is not None:
            outcome = self._confirm_hang(request, outcome, key)
            lost = time.perf_counter() - start  # both waits: the first limit and the longer retry
        elif outcome.crashed is not None and not outcome.crashed.startswith(("exceeded the memory", "the worker process could")):
            lost = time.perf_counter() - start  # the crash itself; replaying it is the suite's own cost
            confirmed = self._confirmations.get(function, 0)
            if confirmed < MAX_CONFIRMATIONS:
                self._confirmations[function] = confirmed + 1
                outcome = self._confirm_crash(request, outcome)
            else:
                outcome.confirmed = (f"not replayed: {confirmed} crashes of {function} were already replayed and "
                                     "bisected in this run")
        else:
            lost = 0.0
        if outcome.crashed is not None or outcome.timed_out is not None:
            outcome.seconds = lost
            strikes = self._strikes.setdefault(key, _Strikes())
            strikes.add(outcome, lost)
            strikes.same_hang = strikes.same_hang or (outcome.confirmed or "").startswith(NOT_RETRIED)
        return outcome

    def close(self) -> None:
        """Stop the worker and every process it started, and remove its files."""
        worker, self._worker = self._worker, None
        self._history.clear()
        if worker is None:
            return
        with contextlib.suppress(OSError, ValueError):
            worker.conn.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(0.5)
        self._kill(worker)
        worker.conn.close()
        for path in (worker.fault_path, worker.log_path):
            with contextlib.suppress(OSError):
                os.unlink(path)

    def new_search(self) -> None:
        """A new rule search begins: functions skipped only within the last one may be called again."""
        for strikes in self._strikes.values():
            strikes.in_search = 0

    def disabled(self, function: str, dtype: str) -> bool:
        """Whether ``function`` is given up on in ``dtype`` for the rest of the run."""
        strikes = self._strikes.get((function, dtype))
        return strikes is not None and (strikes.same_hang or strikes.seconds >= self.max_strikes * self.timeout)

    # ------------------------------------------------------------------ the circuit breaker

    def _skip(self, key: tuple[str, str]) -> CallOutcome | None:
        function = key[0]
        strikes = self._strikes.get(key)
        if strikes is None or strikes.last is None:
            return None
        if self.disabled(*key):
            why = f"it {strikes.describe()} in this run, losing {strikes.seconds:.1f} s"
        elif strikes.in_search >= self.max_strikes:
            why = f"it {strikes.describe()} in this run, {strikes.in_search} times in this search"
        else:
            return None
        last = strikes.last
        return CallOutcome(function, crashed=last.crashed, timed_out=last.timed_out, where=last.where,
                           skipped=f"was not called again: {why}", confirmed=last.confirmed, culprit=last.culprit)

    # ------------------------------------------------------------------ confirming hangs and crashes

    def _confirm_hang(self, request: _Call, first: CallOutcome, key: tuple[str, str]) -> CallOutcome:
        """Retry a timed-out call alone in a fresh worker with a longer limit: a hang only if it times out again.

        Not retried when the function was already confirmed to hang in another dtype: the same hang, and the
        retry would cost ``retry_factor`` times the limit again.
        """
        longer = self.timeout * self.retry_factor
        if longer <= self.timeout:
            return first
        elsewhere = [dtype for (function, dtype), strikes in self._strikes.items()
                     if function == key[0] and dtype != key[1] and strikes.last is not None
                     and strikes.last.timed_out is not None and strikes.last.confirmed]
        if elsewhere:
            first.confirmed = f"{NOT_RETRIED}{key[0]} was confirmed to hang in {elsewhere[0]} in this run"
            return first
        self.close()
        retry = self._call(request, longer)
        if retry.timed_out is not None:
            first.confirmed = f"nor within {longer:g} s when retried alone in a fresh worker"
            first.where = retry.where or first.where
            return first
        if retry.crashed is not None:
            return retry
        retry.slow = retry.seconds
        self.slow_calls.append(SlowCall(request.function, request.label, retry.seconds, self.timeout))
        return retry

    def _replay(self, calls: Sequence[_Call]) -> int | None:
        """Run ``calls`` in a fresh worker; the index of the call during which it crashed, or None."""
        self.close()
        for index, request in enumerate(calls):
            outcome = self._call(request, self.timeout * self.retry_factor, record=False)
            if outcome.crashed is not None and "could not load" not in outcome.crashed:
                self.close()
                return index
            if outcome.timed_out is not None:
                break
        self.close()
        return None

    def _confirm_crash(self, request: _Call, first: CallOutcome) -> CallOutcome:
        """Replay a crash: alone, then after the dead worker's last calls, bisecting for the call that caused it."""
        earlier = list(self._history)[:-1]
        if self._replay([request]) is not None:
            first.confirmed = "reproduced alone in a fresh worker"
            return first
        if not earlier:
            first.confirmed = "did not reproduce alone in a fresh worker (it was the worker's first call)"
            return first
        sequence = [*earlier, request]
        crashed_at = self._replay(sequence)
        if crashed_at is None:
            first.confirmed = (f"did not reproduce in a fresh worker, alone or after the {len(earlier)} calls "
                               "that preceded it")
            return first
        if crashed_at < len(earlier) and self._replay([sequence[crashed_at]]) is not None:
            culprit = sequence[crashed_at]
            first.culprit, first.confirmed = culprit.label, (
                f"when replayed, the earlier call {culprit.function} crashed alone: it is the one to fix")
            return first
        lo, hi = 0, crashed_at  # sequence[lo:crashed_at + 1] crashes; sequence[hi:crashed_at + 1] does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._replay(sequence[mid:crashed_at + 1]) is not None:
                lo = mid
            else:
                hi = mid
        culprit = sequence[lo]
        first.culprit = culprit.label
        first.confirmed = (f"it does not crash alone in a fresh worker; replaying the dead worker's last "
                           f"{len(sequence)} calls and bisecting, the crash needs an earlier {culprit.function} "
                           "call first: that call corrupted the process")
        return first

    # ------------------------------------------------------------------ the worker

    def _start(self) -> str | None:
        """Start a worker and import the backend there; the reason it could not, or None."""
        self.close()
        fd, fault_path = tempfile.mkstemp(prefix="convspec-worker-", suffix=".faults")
        os.close(fd)
        log_fd, log_path = tempfile.mkstemp(prefix="convspec-worker-", suffix=".log")
        token = secrets.token_hex(8)
        ours, theirs = socket.socketpair()
        env = {**os.environ, **self.worker_env, TOKEN_VARIABLE: token}
        try:
            process = subprocess.Popen([sys.executable, "-P", "-c", _BOOTSTRAP, str(theirs.fileno()), OWN_ROOT],
                                       pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=log_fd,
                                       stderr=log_fd, start_new_session=True, env=env)
        finally:
            theirs.close()
            os.close(log_fd)
        conn = Connection(ours.detach())
        self._worker = _Worker(process, conn, token, fault_path, log_path)
        self.starts += 1
        target = self._target
        path = list(dict.fromkeys([os.getcwd(), *(p or os.getcwd() for p in sys.path)]))
        conn.send({"path": path, "cwd": os.getcwd(), "fault_path": fault_path,
                   "memory_limit_mib": self.memory_limit_mib,
                   "target": {"name": target.name, "spec": target.spec, "module": target.module,
                              "attribute": target.attribute, "path": target.path, "extra": target.extra}})
        what = f"backend {target.name!r}"
        reason = (f"importing {what} did not finish within {self.import_timeout:g} s "
                  "(the import itself hangs, or raise --import-timeout)")
        if wait([conn], self.import_timeout):
            try:
                kind, detail = loads_plain(conn.recv_bytes())
            except (EOFError, OSError):
                exitcode = self._reap()
                tail = _tail(log_path, 1)
                kind, detail = "died", (f"the worker process ended while importing {what}: {describe_exit(exitcode)}"
                                        + (f" ({tail})" if tail else ""))
            except Exception as exc:  # anything but plain data
                kind, detail = "died", f"the worker process sent an unreadable answer: {type(exc).__name__}: {exc}"
            if kind == "ready":
                try:
                    info = BackendInfo.from_data(detail)
                except BackendLoadError as exc:
                    kind, detail = "failed", str(exc)
                else:
                    if self.info is None:
                        self.info = info
                    return None
            reason = str(detail)
        self.close()
        return reason

    def supports(self, op: str, problem: dict[str, Any]) -> str | None:
        """The backend's answer to ``supports(op, problem)``, asked in the worker (None: implemented, or no answer)."""
        if self._has_supports is False or self._worker is None or self._worker.process.poll() is not None:
            return None  # no supports(), or no live worker: not worth a start (a declining call still raises)
        outcome = self._call(_Call(SUPPORTS, [op, problem], {}, None), self.timeout, record=False)
        if outcome.problems == [NO_SUPPORTS]:
            self._has_supports = False
            return None
        self._has_supports = True
        return outcome.result if isinstance(outcome.result, str) and outcome.crashed is None else None

    def _call(self, request: _Call, timeout: float, *, record: bool = True) -> CallOutcome:
        function = request.function
        if self._worker is None or self._worker.process.poll() is not None:
            failure = self._start()
            if failure is not None:
                return CallOutcome(function, crashed=f"the worker process could not load the backend again: {failure}")
        worker = self._worker
        assert worker is not None
        if record:
            self._history.append(request)
        try:
            worker.conn.send((function, request.args, request.kwargs))
        except (OSError, ValueError):
            return self._crashed(function)
        started = time.perf_counter()
        deadline = started + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if wait([worker.conn], max(0.0, min(remaining, _POLL_SECONDS))):
                try:
                    payload = worker.conn.recv_bytes()
                except (EOFError, OSError):
                    return self._crashed(function)
                outcome = decode_outcome(function, payload)
                if outcome.crashed is not None:  # exceeded the memory limit: start afresh
                    self.close()
                return outcome
            if worker.process.poll() is not None:  # died, but a child of the backend holds the socket open
                return self._crashed(function)
            resident = _resident_mib(worker.process.pid)
            if resident > self.memory_limit_mib:
                self.close()
                return CallOutcome(function, crashed=f"exceeded the memory limit of {self.memory_limit_mib} MiB "
                                                     f"({resident:.0f} MiB resident)")
            if remaining <= 0:
                where = self._dump_stack(worker)
                self.close()
                return CallOutcome(function, timed_out=self.timeout, where=where, seconds=time.perf_counter() - started)

    def _crashed(self, function: str) -> CallOutcome:
        exitcode = self._reap()
        worker = self._worker
        where = where_it_was(_read(worker.fault_path)) if worker else None
        tail = _tail(worker.log_path) if worker else None
        history = list(self._history)
        self.close()
        self._history.extend(history)  # kept for the replay that confirms the crash
        return CallOutcome(function, crashed=describe_exit(exitcode), where=where, stderr_tail=tail)

    def _reap(self) -> int | None:
        worker = self._worker
        if worker is None:
            return None
        try:
            return worker.process.wait(2.0)
        except subprocess.TimeoutExpired:
            self._kill(worker)
            return None

    def _dump_stack(self, worker: _Worker) -> str | None:
        """Ask the hanging worker where it is (faulthandler on SIGUSR1), for the report."""
        size = os.path.getsize(worker.fault_path)
        with contextlib.suppress(OSError):
            os.kill(worker.process.pid, signal.SIGUSR1)
        give_up = time.perf_counter() + 0.5
        while time.perf_counter() < give_up and os.path.getsize(worker.fault_path) == size:
            time.sleep(0.01)
        time.sleep(0.02)
        return where_it_was(_read(worker.fault_path))

    @staticmethod
    def _kill(worker: _Worker) -> None:
        """Kill the worker's process group and every process carrying its token, and reap the worker."""
        with contextlib.suppress(OSError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            worker.process.kill()
        for _ in range(3):  # a process may fork while we look: look again until none is left
            pids = [pid for pid in processes_with_token(worker.token) if pid != os.getpid()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(5.0)


def dtype_of(args: Sequence[Any]) -> str:
    """The dtype of a call's first array argument ("" when it has none): the circuit breaker's second key."""
    for arg in args:
        dtype = getattr(arg, "dtype", None)
        if dtype is not None:
            return str(dtype)
    return ""


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as dump:
            return dump.read()
    except OSError:
        return ""


def importable_in_a_worker(target: str) -> bool:
    """Whether a fresh process can import ``target``'s module (not one made in memory by a test)."""
    module = sys.modules.get(target.partition(":")[0])
    return module is None or getattr(module, "__spec__", None) is not None

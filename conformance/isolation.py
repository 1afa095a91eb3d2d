"""Running the backend under test in a worker process, so that it cannot take the suite down.

:class:`SubprocessCaller` keeps one worker process (a fresh interpreter that
talks to the suite through a ``multiprocessing.connection.Connection``, so
nothing of the suite's ``__main__`` is re-imported) that loads the backend by
its target string and runs
:func:`conformance.invoke.run_call` there, so input mutation and aliasing are
detected where the real arrays are; only the :class:`CallOutcome` travels back.

What the worker can do to the suite, and what the suite makes of it:

* it dies (segfault, ``abort()``, ``os._exit``, a signal): the call's outcome
  is ``crashed`` with the signal or exit status and, when Python's
  ``faulthandler`` could see it, the backend line that was running; the next
  call starts a new worker;
* it does not answer within ``timeout`` seconds: the worker is killed (its
  whole process group) and the outcome is ``timed_out``;
* it allocates more than ``memory_limit_mib`` (``RLIMIT_DATA`` in the worker,
  and the resident size watched from here while a call runs): ``crashed``
  with "exceeded the memory limit";
* it returns something that cannot be pickled, or raises an exception that
  cannot be: the type name and message arrive instead.

A function that keeps crashing or hanging is not called again (a *circuit
breaker*): within one rule's search after ``max_strikes`` crashes or hangs, so
that Hypothesis's shrinking never waits on it again, and for the rest of the
run once its crashes and hangs have cost ``max_strikes * timeout`` seconds. Its
later calls return at once with the same kind of outcome and ``skipped`` set.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import math
import os
import pickle
import re
import resource
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from conformance.invoke import CallOutcome, run_call

#: Default time limit of one call, in seconds (the worker's start-up is not counted).
DEFAULT_TIMEOUT = 10.0
#: Default memory limit of the worker, in MiB (torch, jax and tensorflow use well under 1 GiB after import).
DEFAULT_MEMORY_LIMIT_MIB = 4096
#: Default number of crashes or hangs after which a function is given up on.
DEFAULT_MAX_STRIKES = 2
#: How long the worker may take to start and import the backend (tensorflow alone can take 10 s).
STARTUP_TIMEOUT = 120.0
#: How often the worker's resident size is checked while a call runs, in seconds.
_POLL_SECONDS = 0.05


class BackendError(Exception):
    """An exception raised by the backend that could not be sent from the worker as itself.

    The parent turns it into a subclass with the original type's name, so a
    report reads ``raised ValueErrorWithState`` rather than ``BackendError``.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (_rebuild_error, (self.type_name, str(self)))


_ERROR_TYPES: dict[str, type[BackendError]] = {}


def _rebuild_error(type_name: str, message: str) -> BackendError:
    """A :class:`BackendError` whose class is named after the backend's exception type."""
    cls = _ERROR_TYPES.get(type_name)
    if cls is None:
        name = type_name.rpartition(".")[2] if type_name.rpartition(".")[2].isidentifier() else "BackendError"
        cls = _ERROR_TYPES[type_name] = type(name, (BackendError,), {"__module__": __name__})
    return cls(type_name, message)


@dataclass
class _Unsendable:
    """Stands in for a result that could not be pickled in the worker."""

    type_name: str

    def __repr__(self) -> str:
        return f"<unsendable {self.type_name}>"


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


def _plain(value: Any) -> bool:
    """Whether ``value`` surely survives pickling (arrays of numbers, None, and tuples of those)."""
    if value is None:
        return True
    if isinstance(value, np.ndarray):
        return type(value) is np.ndarray and not value.dtype.hasobject
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return False


def _round_trips(value: Any) -> str | None:
    try:
        pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # anything may go wrong pickling a backend's objects
        return f"{type(exc).__name__}: {exc}"
    return None


def _qualified_name(obj: object) -> str:
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def encode_outcome(outcome: CallOutcome) -> bytes:
    """Pickle ``outcome``, replacing an exception or result that does not survive pickling."""
    if outcome.error is not None and _round_trips(outcome.error) is not None:
        outcome.error = BackendError(_qualified_name(outcome.error), str(outcome.error))
    if not _plain(outcome.result):
        failure = _round_trips(outcome.result)
        if failure is not None:
            outcome.problems.append(f"result ({_qualified_name(outcome.result)}) could not be sent from the worker "
                                    f"process: {failure}")
            outcome.result = _Unsendable(_qualified_name(outcome.result))
    return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)


#: The worker's first lines: connect, take the suite's sys.path, then run :func:`worker_main`.
_BOOTSTRAP = """
import os, sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
path, cwd, target, memory_limit_mib, fault_path = conn.recv()
sys.path[:] = path
os.chdir(cwd)
from conformance.isolation import worker_main
worker_main(conn, target, memory_limit_mib, fault_path)
"""


def worker_main(conn: Connection, target: str, memory_limit_mib: int, fault_path: str) -> None:
    """The worker's loop: load the backend, then answer ``(function, args, kwargs)`` with outcomes."""
    _die_with_parent()
    fault_file = open(fault_path, "a", encoding="utf-8")  # kept open for the worker's lifetime
    faulthandler.enable(file=fault_file, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=fault_file, all_threads=True)
    _limit_memory(memory_limit_mib)
    try:
        from conformance.loader import load_backend

        functions = load_backend(target).functions
    except BaseException as exc:  # report why the worker cannot serve, whatever it is
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        function, args, kwargs = request
        outcome = run_call(functions[function], function, args, kwargs)
        if isinstance(outcome.error, MemoryError):
            outcome.crashed = f"exceeded the memory limit of {memory_limit_mib} MiB (MemoryError: {outcome.error})"
            outcome.error = None
        try:
            payload = encode_outcome(outcome)
        except MemoryError:
            payload = pickle.dumps(CallOutcome(function, crashed=f"exceeded the memory limit of {memory_limit_mib} MiB"))
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


@dataclass
class _Strikes:
    """One function's crashes and hangs: how many, in the current search and in all, their cost, the last one."""

    in_search: int = 0
    crashes: int = 0
    hangs: int = 0
    seconds: float = 0.0
    last: CallOutcome | None = None

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


@dataclass
class SubprocessCaller:
    """Runs the backend's functions in a persistent worker process, with a time and memory limit.

    ``target`` is the backend's ``module[:attribute]`` (``LoadedBackend.target``).
    """

    target: str
    timeout: float = DEFAULT_TIMEOUT
    memory_limit_mib: int = DEFAULT_MEMORY_LIMIT_MIB
    max_strikes: int = DEFAULT_MAX_STRIKES
    startup_timeout: float = STARTUP_TIMEOUT
    #: Worker starts so far (the first, and one after each crash, hang or memory overrun).
    starts: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _conn: Connection | None = field(default=None, repr=False)
    _fault_path: str | None = field(default=None, repr=False)
    _strikes: dict[str, _Strikes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ValueError(f"timeout={self.timeout!r}, but must be a positive number of seconds")
        if self.memory_limit_mib < 64:
            raise ValueError(f"memory_limit_mib={self.memory_limit_mib!r}, but must be at least 64")
        if self.max_strikes < 1:
            raise ValueError(f"max_strikes={self.max_strikes!r}, but must be at least 1")

    # ------------------------------------------------------------------ the Caller protocol

    def call(self, function: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> CallOutcome:
        skipped = self._skip(function)
        if skipped is not None:
            return skipped
        start = time.perf_counter()
        outcome = self._call(function, args, kwargs)
        if outcome.crashed is not None or outcome.timed_out is not None:
            outcome.seconds = time.perf_counter() - start
            self._strikes.setdefault(function, _Strikes()).add(
                outcome, outcome.timed_out if outcome.timed_out is not None else outcome.seconds)
        return outcome

    def close(self) -> None:
        """Stop the worker (politely, then by force) and remove its files."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        if process is not None:
            try:
                process.wait(1.0)
            except subprocess.TimeoutExpired:
                self._kill(process)
        if conn is not None:
            conn.close()
        if self._fault_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._fault_path)
            self._fault_path = None

    def new_search(self) -> None:
        """A new rule search begins: functions skipped only within the last one may be called again."""
        for strikes in self._strikes.values():
            strikes.in_search = 0

    # ------------------------------------------------------------------ the circuit breaker

    def _skip(self, function: str) -> CallOutcome | None:
        strikes = self._strikes.get(function)
        if strikes is None or strikes.last is None:
            return None
        if strikes.seconds >= self.max_strikes * self.timeout:
            why = f"it {strikes.describe()} in this run, losing {strikes.seconds:.1f} s"
        elif strikes.in_search >= self.max_strikes:
            why = f"it {strikes.describe()} in this run, {strikes.in_search} times in this search"
        else:
            return None
        last = strikes.last
        return CallOutcome(function, crashed=last.crashed, timed_out=last.timed_out, where=last.where,
                           skipped=f"was not called again: {why}")

    # ------------------------------------------------------------------ the worker

    def _start(self) -> str | None:
        """Start a worker; the reason it could not start, or None."""
        self.close()
        fd, self._fault_path = tempfile.mkstemp(prefix="convspec-worker-", suffix=".faults")
        os.close(fd)
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen([sys.executable, "-c", _BOOTSTRAP, str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        self._process, self._conn = process, conn
        self.starts += 1
        conn.send((list(sys.path), os.getcwd(), self.target, self.memory_limit_mib, self._fault_path))
        ready = wait([conn], self.startup_timeout)
        reason = f"the worker process did not load backend {self.target!r} within {self.startup_timeout:g} s"
        if ready:
            try:
                kind, detail = conn.recv()
            except (EOFError, OSError):
                kind, detail = "died", describe_exit(self._reap())
            if kind == "ready":
                return None
            reason = f"the worker process could not load backend {self.target!r}: {detail}"
        self.close()
        return reason

    def _call(self, function: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> CallOutcome:
        if self._process is None or self._process.poll() is not None:
            failure = self._start()
            if failure is not None:
                return CallOutcome(function, crashed=failure)
        process, conn = self._process, self._conn
        assert process is not None and conn is not None
        try:
            conn.send((function, list(args), dict(kwargs)))
        except (OSError, ValueError):
            return self._crashed(function)
        deadline = time.perf_counter() + self.timeout
        while True:
            remaining = deadline - time.perf_counter()
            if wait([conn], max(0.0, min(remaining, _POLL_SECONDS))):
                try:
                    payload = conn.recv_bytes()
                except (EOFError, OSError):
                    return self._crashed(function)
                outcome = self._decode(function, payload)
                if outcome.crashed is not None:  # exceeded the memory limit: start afresh
                    self.close()
                return outcome
            if process.poll() is not None:  # died, but a child of the backend holds the socket open
                return self._crashed(function)
            resident = _resident_mib(process.pid)
            if resident > self.memory_limit_mib:
                self.close()
                return CallOutcome(function, crashed=f"exceeded the memory limit of {self.memory_limit_mib} MiB "
                                                     f"({resident:.0f} MiB resident)")
            if remaining <= 0:
                where = self._dump_stack(process)
                self.close()
                return CallOutcome(function, timed_out=self.timeout, where=where)

    def _decode(self, function: str, payload: bytes) -> CallOutcome:
        try:
            outcome = pickle.loads(payload)
        except Exception as exc:  # the worker checked; but a class may still not load here
            return CallOutcome(function, problems=[f"result could not be received from the worker process: "
                                                   f"{type(exc).__name__}: {exc}"])
        if not isinstance(outcome, CallOutcome):
            return CallOutcome(function, problems=[f"the worker process sent a {type(outcome).__name__}"])
        return outcome

    def _crashed(self, function: str) -> CallOutcome:
        exitcode = self._reap()
        where = self._where()
        self.close()
        return CallOutcome(function, crashed=describe_exit(exitcode), where=where)

    def _reap(self) -> int | None:
        process = self._process
        if process is None:
            return None
        try:
            return process.wait(2.0)
        except subprocess.TimeoutExpired:
            self._kill(process)
            return None

    def _where(self) -> str | None:
        if self._fault_path is None:
            return None
        try:
            with open(self._fault_path, encoding="utf-8", errors="replace") as dump:
                return where_it_was(dump.read())
        except OSError:
            return None

    def _dump_stack(self, process: subprocess.Popen[bytes]) -> str | None:
        """Ask the hanging worker where it is (faulthandler on SIGUSR1), for the report."""
        if self._fault_path is None:
            return None
        size = os.path.getsize(self._fault_path)
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGUSR1)
        give_up = time.perf_counter() + 0.5
        while time.perf_counter() < give_up and os.path.getsize(self._fault_path) == size:
            time.sleep(0.01)
        time.sleep(0.02)
        return self._where()

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            with contextlib.suppress(OSError):
                if os.getpgid(process.pid) == process.pid:  # the worker leads its own group: take its children too
                    os.killpg(process.pid, signal.SIGKILL)
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5.0)


def importable_in_a_worker(target: str) -> bool:
    """Whether a fresh process can import ``target``'s module (not one made in memory by a test)."""
    module = sys.modules.get(target.partition(":")[0])
    return module is None or getattr(module, "__spec__", None) is not None

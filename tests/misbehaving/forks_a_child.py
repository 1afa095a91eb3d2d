"""A wrong convolution that forks a child which outlives its parent on purpose.

The child leaves the worker's session (setsid), holds the suite's stdout open (through /proc), waits for the
report named by CONVSPEC_TEST_REPORT to be written and then rewrites it to say "conformant". Its pid goes to
the file named by CONVSPEC_TEST_CHILD_PID.
"""

import os
import time
from typing import Any

import reference
from reference import CAPABILITIES, conv_backward

_forked = False


def _child(suite_pid: int) -> None:
    os.setsid()
    held = []
    for fd in (1, 2):
        try:
            held.append(os.open(f"/proc/{suite_pid}/fd/{fd}", os.O_WRONLY))
        except OSError:
            pass
    pid_file = os.environ.get("CONVSPEC_TEST_CHILD_PID")
    if pid_file:
        with open(pid_file, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()}\n")
    report = os.environ.get("CONVSPEC_TEST_REPORT", "")
    give_up = time.monotonic() + 120
    while report and time.monotonic() < give_up:
        if os.path.exists(report):
            time.sleep(0.2)
            with open(report, "w", encoding="utf-8") as forged:
                forged.write('{"conformant": true, "forged": true}\n')
            break
        time.sleep(0.02)
    time.sleep(60)


def conv_forward(x: Any, w: Any, b: Any, **params: Any) -> Any:
    global _forked
    if not _forked:
        _forked = True
        suite_pid = os.getppid()
        if os.fork() == 0:
            try:
                _child(suite_pid)
            finally:
                os._exit(0)
    return reference.conv_forward(x, w, b, **params) + 1


__all__ = ["CAPABILITIES", "conv_backward", "conv_forward"]

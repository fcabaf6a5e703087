"""A watchdog that kills a ``queue exec`` job when its worker dies without doing so.

Jobs run in their own session (so a Ctrl-C in the terminal reaches the worker, which
finishes the message, and not the job). The price: if the worker is SIGKILLed, nothing
stops its job, which would run on as an orphan while the message is delivered again.
``PR_SET_PDEATHSIG`` would kill only the direct child (not its children) and needs a
``preexec_fn``, which makes every spawn a full fork (2.7 ms instead of 0.7 ms).

Instead the worker forks one small watchdog when it starts (before any thread or store
exists). The two share a pipe: the worker writes ``+PGID`` when a job starts and
``-PGID`` when it is over. When the pipe reaches end-of-file -- the worker is gone, however
it went -- the watchdog sends SIGTERM to every job group still listed, SIGKILL to those
still alive after ``KILL_GRACE`` seconds, and exits. The watchdog is in its own session
and ignores SIGINT/SIGTERM, so signals meant for the worker's group do not reach it.

Left open: a worker SIGKILLed between starting a job and writing its ``+PGID`` (a few
microseconds) still leaves that job running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

__all__ = ["start", "track", "untrack"]

KILL_GRACE = 2.0
_pipe: int | None = None


def start() -> None:
    """Fork the watchdog (once per process; later calls do nothing)."""
    global _pipe
    if _pipe is not None:
        return
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # the watchdog: never returns into the worker's code
        try:
            os.close(write_end)
            _watch(read_end)
        finally:
            os._exit(0)
    os.close(read_end)
    os.set_inheritable(write_end, False)
    _pipe = write_end  # the watchdog exits with the worker (end-of-file), never before


def _send(line: bytes) -> None:
    if _pipe is not None:
        with contextlib.suppress(OSError):
            os.write(_pipe, line)


def track(pgid: int) -> None:
    """A job's process group has started."""
    _send(b"+%d\n" % pgid)


def untrack(pgid: int) -> None:
    """A job is over (exited, or killed by the worker itself)."""
    _send(b"-%d\n" % pgid)


def _watch(fd: int) -> None:
    os.setsid()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    os.closerange(3, fd)
    os.closerange(fd + 1, 65536)
    groups: set[int] = set()
    pending = b""
    while chunk := os.read(fd, 4096):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
    _kill(groups, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE
    while groups and time.monotonic() < deadline:
        time.sleep(0.05)
        groups = {g for g in groups if _alive(g)}
    _kill(groups, signal.SIGKILL)


def _kill(groups: set[int], signum: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True

"""A watchdog that kills a ``queue exec`` job when its worker dies without doing so.

Jobs run in their own session (so a Ctrl-C in the terminal reaches the worker, which
finishes the message, and not the job). The price: if the worker is SIGKILLed, nothing
stops its job, which would run on as an orphan while the message is delivered again.
``PR_SET_PDEATHSIG`` would kill only the direct child (not its children) and needs a
``preexec_fn``, which makes every spawn a full fork (2.7 ms instead of 0.7 ms).

Instead the worker forks one small watchdog when it starts (before any thread or store
exists). The two share a pipe, which the worker never writes, and a page of memory, where
the worker keeps the process group of the job it is running (0 when none): a job costs
two stores to memory, not two writes that wake another process. When the pipe reaches
end-of-file -- the worker is gone, however it went -- the watchdog sends SIGTERM to the
group still recorded, SIGKILL if it is still alive after ``KILL_GRACE`` seconds, and
exits. The watchdog is in its own session and ignores SIGINT/SIGTERM, so signals meant
for the worker's group do not reach it.

Left open: a worker SIGKILLed between starting a job and recording its group (a few
microseconds) still leaves that job running.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import sys
import time

__all__ = ["start", "track", "untrack"]

KILL_GRACE = 2.0
_pipe: int | None = None
_shared: mmap.mmap | None = None  # 8 bytes used: the running job's process group


def start() -> None:
    """Fork the watchdog (once per process; later calls do nothing)."""
    global _pipe, _shared
    if _pipe is not None:
        return
    shared = mmap.mmap(-1, mmap.PAGESIZE)  # anonymous and shared: the fork sees our writes
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # the watchdog: never returns into the worker's code
        try:
            os.close(write_end)
            _watch(read_end, shared)
        finally:
            os._exit(0)
    os.close(read_end)
    os.set_inheritable(write_end, False)
    _pipe, _shared = write_end, shared  # the watchdog exits with the worker (end-of-file)


def track(pgid: int) -> None:
    """A job's process group has started (one job at a time)."""
    if _shared is not None:
        _shared[:8] = pgid.to_bytes(8, sys.byteorder)


def untrack(pgid: int) -> None:
    """A job is over (exited, or killed by the worker itself)."""
    if _shared is not None and int.from_bytes(_shared[:8], sys.byteorder) == pgid:
        _shared[:8] = bytes(8)


def _watch(fd: int, shared: mmap.mmap) -> None:
    os.setsid()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    os.closerange(3, fd)
    os.closerange(fd + 1, 65536)
    while os.read(fd, 4096):  # nobody writes: this returns at end-of-file
        pass
    pgid = int.from_bytes(shared[:8], sys.byteorder)
    if not pgid:
        return
    _kill(pgid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE
    while _alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pgid):
        _kill(pgid, signal.SIGKILL)


def _kill(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True

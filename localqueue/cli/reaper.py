"""A watchdog that kills a ``queue exec`` job when its worker dies without doing so.

Jobs run in their own session (so a Ctrl-C in the terminal reaches the worker, which
finishes the message, and not the job). The price: if the worker is SIGKILLed, nothing
stops its job, which would run on as an orphan while the message is delivered again.
``PR_SET_PDEATHSIG`` would kill only the direct child (not its children) and needs a
``preexec_fn``, which makes every spawn a full fork (2.7 ms instead of 0.7 ms).

Instead the worker forks one small watchdog when it starts (before any thread or store
exists). The two share a pipe, which the worker never writes, and a page of memory, where
the worker keeps the process groups of the jobs it is running, one cell per running job
(0 when free): a job costs two stores to memory, not two writes that wake another
process. When the pipe reaches end-of-file -- the worker is gone, however it went -- the
watchdog sends SIGTERM to every group still recorded, SIGKILL to those still alive after
``KILL_GRACE`` seconds, and exits. The watchdog is in its own session and ignores
SIGINT/SIGTERM, so signals meant for the worker's group do not reach it.

Left open: a worker SIGKILLed between starting a job and recording its group (a few
microseconds) still leaves that job running.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import sys
import threading
import time

__all__ = ["CELLS", "KILL_GRACE", "Watchdog"]

KILL_GRACE = 2.0
_CELL = 8  # bytes per recorded process group
CELLS = mmap.PAGESIZE // _CELL  # jobs one watchdog can watch at once


class Watchdog:
    """The worker's side of the watchdog: :meth:`start` forks it; :meth:`track` and
    :meth:`untrack` record the process groups of running jobs (thread-safe)."""

    def __init__(self, pipe: int, shared: mmap.mmap) -> None:
        self._pipe, self._shared = pipe, shared  # the watchdog exits with us (end-of-file)
        self._lock = threading.Lock()
        self._cells: dict[int, int] = {}  # pgid -> cell

    @classmethod
    def start(cls) -> Watchdog:
        """Fork the watchdog. Call it before any thread or store exists: it forks."""
        shared = mmap.mmap(-1, mmap.PAGESIZE)  # anonymous and shared: the fork sees writes
        read_end, write_end = os.pipe()
        if os.fork() == 0:  # the watchdog: never returns into the worker's code
            try:
                os.close(write_end)
                _watch(read_end, shared)
            finally:
                os._exit(0)
        os.close(read_end)
        os.set_inheritable(write_end, False)
        return cls(write_end, shared)

    def track(self, pgid: int) -> None:
        """A job's process group has started."""
        with self._lock:
            used = set(self._cells.values())
            cell = next((c for c in range(CELLS) if c not in used), None)
            if cell is None:  # more jobs than cells: the page's limit (never with -j <= 512)
                return
            self._cells[pgid] = cell
            self._shared[cell * _CELL : (cell + 1) * _CELL] = pgid.to_bytes(_CELL, sys.byteorder)

    def untrack(self, pgid: int) -> None:
        """A job is over (exited, or killed by the worker itself)."""
        with self._lock:
            cell = self._cells.pop(pgid, None)
            if cell is not None:
                self._shared[cell * _CELL : (cell + 1) * _CELL] = bytes(_CELL)


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
    groups = [
        pgid
        for cell in range(CELLS)
        if (pgid := int.from_bytes(shared[cell * _CELL : (cell + 1) * _CELL], sys.byteorder))
    ]
    for pgid in groups:
        _kill(pgid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE
    while any(_alive(pgid) for pgid in groups) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pgid in groups:
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

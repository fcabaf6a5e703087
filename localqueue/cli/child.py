"""Running one ``queue exec`` child: no shell, value on stdin, bounded capture, timeout.

The child runs in its own session (``start_new_session``), so a Ctrl-C in the terminal
reaches the worker (which finishes the message) and not the job; ``close_fds`` keeps the
store's descriptors out of it. Everything happens in the calling thread with ``poll``: the
value is written without blocking (a child that never reads stdin, or a 4 MiB value, cannot
stall the worker), stdout and stderr are drained as they come and only their LAST
``CAPTURE_LIMIT`` bytes are kept (bounded memory whatever the child prints; the end of the
output is where errors usually are). On timeout the child's whole process group gets
SIGTERM, then SIGKILL after ``KILL_GRACE`` seconds, and the exit code is recorded as 124.

If the worker itself is SIGKILLed, the watchdog of :mod:`localqueue.cli.reaper` kills
the child's group (when the worker started one: ``queue exec`` does).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from localqueue.cli import interrupts, reaper

__all__ = ["CAPTURE_LIMIT", "KILL_GRACE", "TIMEOUT_EXIT_CODE", "ChildResult", "run_child"]

CAPTURE_LIMIT = 4096  # bytes kept of each of stdout and stderr
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
TIMEOUT_EXIT_CODE = 124  # like timeout(1)
_CHUNK = 65536
_EXITED_GRACE = 0.25  # after the child exits, stop waiting for pipes a grandchild holds


class _Tail:
    """The last ``limit`` bytes of a stream, and how many bytes it had in total."""

    def __init__(self, limit: int) -> None:
        self.limit, self.total, self.data = limit, 0, bytearray()

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > 2 * self.limit:
            del self.data[: -self.limit]

    def text(self) -> str:
        return bytes(self.data[-self.limit :]).decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class ChildResult:
    exit_code: int  # 124 on timeout, 128 + N when killed by signal N
    timed_out: bool
    stdout: str  # last CAPTURE_LIMIT bytes, decoded (invalid UTF-8 replaced)
    stderr: str
    stdout_bytes: int
    stderr_bytes: int


def _kill_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group; SIGKILL it if the child outlives the grace."""
    _kill_group(process, signal.SIGTERM)
    try:
        process.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        _kill_group(process, signal.SIGKILL)
        process.wait()


def run_child(
    argv: Sequence[str],
    payload: bytes,
    env: Mapping[str, str],
    timeout: float | None = None,
) -> ChildResult:
    """Run ``argv`` with ``payload`` on stdin until it exits (or ``timeout``).

    Any BaseException raised meanwhile (a second signal) terminates the child's group
    before it propagates."""
    process: subprocess.Popen[bytes] | None = None
    try:
        # A second signal during the spawn is held until the worker knows the pid and
        # the watchdog knows the group: then it takes the job down with it (below).
        with interrupts.shielded():
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env),
                start_new_session=True,
                close_fds=True,
            )
            reaper.track(process.pid)
        return _communicate(process, payload, timeout)
    except BaseException:
        if process is not None:
            terminate(process)
        raise
    finally:
        if process is not None:
            reaper.untrack(process.pid)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


def _communicate(
    process: subprocess.Popen[bytes], payload: bytes, timeout: float | None
) -> ChildResult:
    assert process.stdin and process.stdout and process.stderr
    deadline = None if timeout is None else time.monotonic() + timeout
    tails = {
        process.stdout.fileno(): _Tail(CAPTURE_LIMIT),
        process.stderr.fileno(): _Tail(CAPTURE_LIMIT),
    }
    selector = selectors.PollSelector()
    for fd in tails:
        selector.register(fd, selectors.EVENT_READ)
    stdin_fd = process.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    view = memoryview(payload)
    view = _write_some(stdin_fd, view)
    if view:
        selector.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        process.stdin.close()
    timed_out = False
    exited_at: float | None = None
    try:
        while selector.get_map():
            wait = 0.25
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0.0))
            for key, _ in selector.select(wait):
                fd = key.fd
                if fd == stdin_fd:
                    view = _write_some(fd, view)
                    if not view:
                        selector.unregister(fd)
                        process.stdin.close()
                    continue
                chunk = os.read(fd, _CHUNK)
                if chunk:
                    tails[fd].add(chunk)
                else:
                    selector.unregister(fd)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                timed_out = True
                break
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= _EXITED_GRACE:
                break  # a background grandchild keeps the pipes open; do not wait for it
    finally:
        selector.close()
    if not timed_out:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            process.wait(remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        terminate(process)
        code = TIMEOUT_EXIT_CODE
    else:
        code = process.returncode
        code = 128 - code if code < 0 else code
    out, err = tails[process.stdout.fileno()], tails[process.stderr.fileno()]
    return ChildResult(code, timed_out, out.text(), err.text(), out.total, err.total)


def _write_some(fd: int, view: memoryview) -> memoryview:
    """Write what the pipe takes now; the rest is returned. A closed reader ends it."""
    try:
        while view:
            written = os.write(fd, view[:_CHUNK])
            view = view[written:]
    except BlockingIOError:
        pass
    except (BrokenPipeError, OSError):  # the child closed stdin or exited: that is its choice
        return memoryview(b"")
    return view

"""Running one ``queue exec`` child: no shell, value on stdin, bounded capture, timeout.

The child runs in its own session, so a Ctrl-C in the terminal reaches the worker (which
finishes the message) and not the job. It is started with ``posix_spawn`` (vfork and
exec, no Python between them: 0.6 ms against 0.8 ms for ``subprocess.Popen`` with three
pipes); the worker's own descriptors are made non-inheritable before the first job, so
the job gets only its stdin, stdout and stderr (what ``close_fds`` did).

A job never starts without its whole value on stdin: the value is written into a pipe
before the spawn when the pipe can hold it (64 KiB, grown up to 1 MiB where the system
allows), else into an anonymous file (``memfd``, or an unlinked temporary file) that
becomes the job's stdin. A worker killed at any moment cannot leave a job reading an
empty or partial value, and a job that never reads its stdin cannot stall the worker.

Everything else happens in the calling thread with ``poll`` (``queue exec -j N`` runs N
of these threads): stdout and stderr are drained as they come and only their LAST
``CAPTURE_LIMIT`` bytes are kept (bounded memory whatever the child prints; the end of
the output is where errors usually are). On timeout the child's whole process group
gets SIGTERM, then SIGKILL after ``KILL_GRACE`` seconds, and the exit code is recorded
as 124.

If the worker itself is SIGKILLed, the watchdog of :mod:`localqueue.cli.reaper` kills
the jobs' groups (when the worker started one: ``queue exec`` does).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import time
from collections.abc import Callable, Mapping, Sequence

from localqueue.cli.reaper import Watchdog

__all__ = [
    "CAPTURE_LIMIT",
    "KILL_GRACE",
    "TIMEOUT_EXIT_CODE",
    "ChildResult",
    "run_child",
    "seal_descriptors",
]

CAPTURE_LIMIT = 4096  # bytes kept of each of stdout and stderr
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
TIMEOUT_EXIT_CODE = 124  # like timeout(1)
_CHUNK = 65536
_EXITED_GRACE = 0.25  # after the child exits, stop waiting for pipes a grandchild holds


def find_executable(command: str) -> str | None:
    """Where ``command`` runs from, as a shell finds it: itself when it names a
    directory, else the first executable file of that name on PATH (what
    ``shutil.which`` answers, without importing shutil and its compressors)."""
    if os.path.dirname(command):
        return command if _is_executable(command) else None
    search = os.environ.get("PATH")
    if search is None:
        try:
            search = os.confstr("CS_PATH") or os.defpath
        except (AttributeError, ValueError):  # no confstr, or no CS_PATH here
            search = os.defpath
    if not search:  # PATH="" finds nothing (PATH=":" looks in the working directory)
        return None
    for directory in dict.fromkeys(search.split(os.pathsep)):
        candidate = os.path.join(directory, command)
        if _is_executable(candidate):
            return candidate
    return None


def _is_executable(path: str) -> bool:
    return os.access(path, os.X_OK) and os.path.isfile(path)


class _Tail:
    """The last ``limit`` bytes of a stream, how many bytes it had in total, and, with
    ``keep``, its first ``keep`` bytes whole (what the worker shows or parses)."""

    def __init__(self, limit: int, keep: int = 0) -> None:
        self.limit, self.total, self.data = limit, 0, bytearray()
        self.keep, self.kept = keep, bytearray()

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(self.kept) < self.keep:
            self.kept += chunk[: self.keep - len(self.kept)]
        self.data += chunk
        if len(self.data) > 2 * self.limit:
            del self.data[: -self.limit]

    def text(self) -> str:
        return bytes(self.data[-self.limit :]).decode("utf-8", "replace")


class ChildResult:
    """How a job ended, the tails of its output, and (when asked for) the output itself:
    ``output`` and ``errors`` hold the first ``keep`` bytes of stdout and stderr."""

    __slots__ = (
        "errors", "exit_code", "output", "stderr", "stderr_bytes", "stdout", "stdout_bytes",
        "timed_out",
    )  # fmt: skip

    def __init__(
        self,
        exit_code: int,  # 124 on timeout, 128 + N when killed by signal N
        timed_out: bool,
        stdout: str,  # last CAPTURE_LIMIT bytes, decoded (invalid UTF-8 replaced)
        stderr: str,
        stdout_bytes: int,
        stderr_bytes: int,
        output: bytes = b"",
        errors: bytes = b"",
    ) -> None:
        self.exit_code, self.timed_out = exit_code, timed_out
        self.stdout, self.stderr = stdout, stderr
        self.stdout_bytes, self.stderr_bytes = stdout_bytes, stderr_bytes
        self.output, self.errors = output, errors

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"ChildResult({fields})"


class Job:
    """A spawned command: its pid (also its process group) and, once reaped, its status."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None  # -N when killed by signal N

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit status; TimeoutError if the job is still running after ``timeout``."""
        if timeout is None:
            while self.returncode is None:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while (code := self.poll()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {self.pid} still running")
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)
        return code


def _kill_group(job: Job, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(job.pid, signum)


def terminate(job: Job) -> None:
    """SIGTERM the job's process group; SIGKILL it if the job outlives the grace."""
    _kill_group(job, signal.SIGTERM)
    try:
        job.wait(KILL_GRACE)
    except TimeoutError:
        _kill_group(job, signal.SIGKILL)
        job.wait()


# Python ignores these for itself; a job gets them back at their defaults, as from
# subprocess (an ignored SIGPIPE would survive exec: `yes | head -1` would complain).
_PYTHON_IGNORES = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)


def seal_descriptors() -> None:
    """Make every descriptor above stderr non-inheritable: Python's and SQLite's already
    are, but LMDB's data file and anything the worker inherited (a make jobserver, say)
    are not, and posix_spawn would pass them on to every job. Call it once the store is
    open, before the first job (the descriptors opened later are Python's own)."""
    directory = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    for name in os.listdir(directory):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor is gone
                os.set_inheritable(fd, False)


_PIPE_MAX = 1 << 20  # the largest pipe an unprivileged process may ask for (Linux default)


def stdin_with(payload: bytes) -> int:
    """A descriptor holding all of ``payload`` and then end-of-file, filled now: a pipe
    when the value fits in one, else an anonymous file positioned at its start."""
    read_end, write_end = os.pipe()
    try:
        # A pipe holds at least PIPE_BUF bytes (one page, even where the system shrinks
        # pipes), so a value that small need not ask: one system call, and one release
        # of the GIL under -j N, less per job (strace -f of a 500-job `queue exec -j 4
        # -- true` drain: 500 F_GETPIPE_SZ calls before, none after).
        size = select.PIPE_BUF
        if len(payload) > size:
            size = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
        if len(payload) > size and len(payload) <= _PIPE_MAX:
            with contextlib.suppress(OSError):  # capped lower here: use a file instead
                size = fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, len(payload))
        if len(payload) <= size:
            view = memoryview(payload)
            while view:  # never blocks: the empty pipe holds it all
                view = view[os.write(write_end, view) :]
            return read_end
    finally:
        os.close(write_end)
    os.close(read_end)
    return _file_with(payload)


def _file_with(payload: bytes) -> int:
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("localqueue-value", os.MFD_CLOEXEC)
    else:  # pragma: no cover - not Linux
        import tempfile

        with tempfile.TemporaryFile() as file:
            fd = os.dup(file.fileno())
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def spawn(
    path: str, argv: Sequence[str], env: Mapping[str, str], stdin: int
) -> tuple[Job, int, int]:
    """Start ``path`` in a new session reading ``stdin`` (a descriptor, closed here) with
    pipes on its stdout and stderr; returns the job and the worker's ends of those two.
    OSError when it cannot be executed."""
    mine: list[int] = []
    theirs: list[int] = [stdin]
    try:
        for _ in range(2):
            read_end, write_end = os.pipe()  # non-inheritable: only the dup2 copies pass
            mine.append(read_end)
            theirs.append(write_end)
        actions = [(os.POSIX_SPAWN_DUP2, fd, std) for std, fd in enumerate(theirs)]
        pid = os.posix_spawn(
            path, list(argv), env, file_actions=actions, setsid=True, setsigdef=_PYTHON_IGNORES
        )
    except BaseException:
        for fd in mine:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return Job(pid), mine[0], mine[1]


def run_child(
    argv: Sequence[str],
    payload: bytes,
    env: Mapping[str, str],
    timeout: float | None = None,
    *,
    executable: str | None = None,
    watchdog: Watchdog | None = None,
    on_start: Callable[[Job | None], None] | None = None,
    keep: int = 0,
) -> ChildResult:
    """Run ``argv`` (``executable``: its resolved path, else ``argv[0]`` is searched on
    PATH) with ``payload`` on stdin until it exits (or ``timeout``). ``watchdog`` kills
    the job if this process dies; ``on_start(job)`` is told of the running job (and of
    None once it is over), for a caller that may have to stop it from another thread;
    ``keep``: how many bytes of stdout and of stderr to keep whole.

    Any BaseException raised meanwhile terminates the child's group before it
    propagates."""
    if executable is None:
        executable = find_executable(argv[0]) or argv[0]
    job: Job | None = None
    fds: list[int] = []
    try:
        job, *ends = spawn(executable, argv, env, stdin_with(payload))
        fds.extend(ends)
        if watchdog is not None:
            watchdog.track(job.pid)
        if on_start is not None:
            on_start(job)
        return _communicate(job, fds, timeout, keep)
    except BaseException:
        if job is not None:
            terminate(job)
        raise
    finally:
        if job is not None:
            if on_start is not None:
                on_start(None)
            if watchdog is not None:
                watchdog.untrack(job.pid)
        for fd in fds:
            os.close(fd)


def _communicate(job: Job, fds: list[int], timeout: float | None, keep: int) -> ChildResult:
    """Drain stdout and stderr, wait for the exit. ``fds`` are the worker's ends."""
    deadline = None if timeout is None else time.monotonic() + timeout
    stdout_fd, stderr_fd = fds
    tails = {stdout_fd: _Tail(CAPTURE_LIMIT, keep), stderr_fd: _Tail(CAPTURE_LIMIT, keep)}
    poller = select.poll()
    poller.register(stdout_fd, select.POLLIN)
    poller.register(stderr_fd, select.POLLIN)
    watched = 2
    timed_out = False
    exited_at: float | None = None
    while watched:
        wait = 250
        if deadline is not None:
            wait = min(wait, max(int((deadline - time.monotonic()) * 1000) + 1, 0))
        for fd, _ in poller.poll(wait):
            chunk = os.read(fd, _CHUNK)
            if chunk:
                tails[fd].add(chunk)
            else:
                poller.unregister(fd)
                watched -= 1
        if not watched:
            break
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            timed_out = True
            break
        if exited_at is None and job.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at >= _EXITED_GRACE:
            break  # a background grandchild keeps the pipes open; do not wait for it
    if not timed_out:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            job.wait(remaining)
        except TimeoutError:
            timed_out = True
    if timed_out:
        terminate(job)
        code = TIMEOUT_EXIT_CODE
    else:
        code = job.wait()
        code = 128 - code if code < 0 else code
    out, err = tails[stdout_fd], tails[stderr_fd]
    return ChildResult(
        code,
        timed_out,
        out.text(),
        err.text(),
        out.total,
        err.total,
        bytes(out.kept),
        bytes(err.kept),
    )

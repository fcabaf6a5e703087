"""Running the real ``localqueue`` executable (and small Python children) for the fault
suite, with a clean environment, and waiting on the lines they print."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

LOCALQUEUE = str(Path(sys.executable).with_name("localqueue"))
REPO = Path(__file__).resolve().parents[2]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALQUEUE_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "xdg"), PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def run(
    home: Path, *args: str, stdin: bytes | str = b"", timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``localqueue ARGS`` to completion; stdout/stderr as text."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    env = kwargs.pop("env", None) or clean_env(home)
    done = subprocess.run(
        [LOCALQUEUE, *args],
        input=data,
        capture_output=True,
        timeout=timeout,
        env=env,
        cwd=kwargs.pop("cwd", home),
        **kwargs,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def popen(home: Path, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start ``localqueue ARGS`` with piped text stdout/stderr."""
    return subprocess.Popen(
        [LOCALQUEUE, *args],
        stdin=kwargs.pop("stdin", subprocess.DEVNULL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kwargs.pop("env", None) or clean_env(home),
        cwd=kwargs.pop("cwd", home),
        **kwargs,
    )


def python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start ``python -c code ARGS`` with piped text stdin/stdout/stderr."""
    env = kwargs.pop("env", None) or dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def read_line(stream: IO[str] | None, timeout: float = 30) -> str:
    """The next line of ``stream``; fails the test after ``timeout`` seconds."""
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no line within {timeout}s"
    return stream.readline()


def wait_for(stream: IO[str] | None, needle: str, timeout: float = 30) -> list[str]:
    """Read lines until one contains ``needle``; returns every line read."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        line = read_line(stream, max(deadline - time.monotonic(), 0.01))
        assert line, f"stream ended before {needle!r}; got {seen}"
        seen.append(line)
        if needle in line:
            return seen


def read_fifo(path: Path, timeout: float = 30) -> str:
    """One line written to the named pipe ``path`` by a child (opened without blocking)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data:
            left = deadline - time.monotonic()
            assert left > 0, f"nothing on {path} within {timeout}s"
            select.select([fd], [], [], left)
            chunk = os.read(fd, 4096)
            if not chunk:  # no writer yet (or it closed): wait for one to appear
                time.sleep(0.01)
            data += chunk
        return data.decode()
    finally:
        os.close(fd)


def stats(home: Path, store: Path | str, queue: str = "q") -> dict[str, int]:
    done = run(home, "queue", "stats", queue, "--store-path", str(store))
    assert done.returncode == 0, done.stderr
    result: dict[str, int] = json.loads(done.stdout)
    return result


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def gone(pid: int, timeout: float = 10) -> bool:
    """Wait (up to ``timeout``) for ``pid`` to end; True when it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

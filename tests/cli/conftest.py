"""CLI test fixtures: every command runs as a real ``localqueue`` process in a temp dir
(each test module sets ``pytestmark = SUBPROCESS``).

``HOME``, ``XDG_CONFIG_HOME`` and the working directory point into ``tmp_path`` and every
``LOCALQUEUE_*`` variable is cleared, so no test reads or writes the real home.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCALQUEUE = str(Path(sys.executable).with_name("localqueue"))
SUBPROCESS = pytest.mark.script_launch_mode("subprocess")


# Handlers for `queue process`, written into the working directory as tests_handlers.py.
HANDLERS = """
import os
import time


def ok(value):
    pass


def fail(value):
    raise RuntimeError(f"handler failed on {value}")


def flaky(value):
    # fails until the file named in value["marker"] exists; creates it on the first call
    if not os.path.exists(value["marker"]):
        open(value["marker"], "w").close()
        raise ConnectionError("first call fails")


def noisy(value):
    print("handler chatter on stdout")


def crash(value):
    os._exit(9)


def wait_for_go(value):
    # writes "started" to value["ready"] (a FIFO), then blocks until "go" arrives on
    # value["go"] (another FIFO)
    with open(value["ready"], "w") as ready:
        ready.write("started\\n")
    with open(value["go"]) as go:
        go.readline()


def hang(value):
    with open(value["ready"], "w") as ready:
        ready.write("started\\n")
    time.sleep(120)


async def async_ok(value):
    pass


not_callable = 42
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("LOCALQUEUE_") and not name.startswith("LOCALQUEUE_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "tests_handlers.py").write_text(HANDLERS)
    monkeypatch.chdir(work)
    return tmp_path


class Cli:
    """Runs ``localqueue ARGS`` with ``--store-path`` (and a retry store) in ``tmp_path``."""

    def __init__(self, runner: Any, tmp_path: Path) -> None:
        self.runner = runner
        self.store = tmp_path / "q.sqlite3"
        self.retries = tmp_path / "r.sqlite3"
        self.cwd = tmp_path / "work"

    def store_args(self, args: tuple[str, ...]) -> list[str]:
        extra = ["--store-path", str(self.store)]
        if args[:2] in (("queue", "process"), ("queue", "exec")):
            extra += ["--retry-store-path", str(self.retries)]
        if "--" in args:
            cut = args.index("--")
            return [*args[:cut], *extra, *args[cut:]]
        return [*args, *extra]

    def __call__(
        self, *args: str, stdin: str | None = None, store: bool = True, **kwargs: Any
    ) -> Any:
        argv = self.store_args(args) if store else list(args)
        import io

        return self.runner.run(
            [LOCALQUEUE, *argv],
            stdin=io.StringIO(stdin if stdin is not None else ""),
            cwd=kwargs.pop("cwd", self.cwd),
            print_result=False,
            **kwargs,
        )

    def json(self, *args: str, code: int | None = None, **kwargs: Any) -> list[Any]:
        """Run a command that must succeed (exit ``code``, default 0; a draining worker
        may also report failed jobs with 5 or 6); its stdout as a list of JSON values."""
        result = self(*args, **kwargs)
        if code is not None:
            assert result.returncode == code, result.stderr
        elif args[:2] in (("queue", "process"), ("queue", "exec")):
            assert result.returncode in (0, 5, 6), result.stderr
        else:
            assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def add(self, queue: str, *values: Any) -> list[str]:
        lines = "".join(json.dumps(value) + "\n" for value in values)
        return [m["id"] for m in self.json("queue", "add", queue, stdin=lines)]

    def empty_queue(self, queue: str) -> None:
        """Make ``queue`` a queue the store has held, now empty (readers and workers
        refuse a store that does not exist, and warn about a queue it never held)."""
        self.add(queue, "placeholder")
        self.json("queue", "purge", queue, "--yes")

    def stats(self, queue: str) -> dict[str, int]:
        result: dict[str, int] = self.json("queue", "stats", queue)[0]
        return result

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start a long-running command (workers, --watch) with piped stdout/stderr."""
        return subprocess.Popen(
            [LOCALQUEUE, *self.store_args(args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=kwargs.pop("cwd", self.cwd),
            **kwargs,
        )


@pytest.fixture
def cli(home: Path, script_runner: Any) -> Cli:
    return Cli(script_runner, home)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Named pipes: a test blocks reading one until a child writes its ready line."""
    made: list[Path] = []

    def make(name: str) -> Path:
        path = tmp_path / name
        os.mkfifo(path)
        made.append(path)
        return path

    yield make


def untimed(line: dict) -> dict:
    """A worker's outcome line without its timing: ``finished_at`` (epoch seconds, near
    now) and ``duration`` (seconds, >= 0) are checked here and left out."""
    import time

    rest = dict(line)
    finished_at, duration = rest.pop("finished_at"), rest.pop("duration")
    assert isinstance(finished_at, float) and abs(time.time() - finished_at) < 600
    assert isinstance(duration, float) and duration >= 0
    return rest

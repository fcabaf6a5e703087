"""Pausing a queue that four worker processes drain, on SQLite and PostgreSQL: once
``queue pause`` returns nothing new starts anywhere, the running jobs finish and are
acked, and ``queue resume`` starts the rest; a draining worker of a paused queue exits 0
saying so. Every job logs its start to a file; the tests read that log and the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localqueue.worker.loop import IDLE_SLICE
from tests.conftest import fresh_schema, postgres_url

LOCALQUEUE = str(Path(sys.executable).with_name("localqueue"))
DEADLINE = 60.0
# A job: log its message id, then wait until the test creates the file "go".
JOB = 'echo "$LOCALQUEUE_MESSAGE_ID" >> starts; while [ ! -e go ]; do sleep 0.01; done'


@pytest.fixture(params=["sqlite", "postgres"])
def store_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "q.sqlite3")
        return
    import psycopg

    url = postgres_url()
    schema = fresh_schema()
    yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def env(tmp_path: Path, store_path: str) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "LOCALQUEUE_STORE_PATH": store_path,
    }


def run(env: dict[str, str], cwd: Path, *args: str, stdin: str = "") -> Any:
    return subprocess.run(
        [LOCALQUEUE, *args], env=env, cwd=cwd, input=stdin, capture_output=True, text=True
    )


def stats(env: dict[str, str], cwd: Path) -> dict[str, int]:
    result = run(env, cwd, "queue", "stats", "q")
    assert result.returncode == 0, result.stderr
    counts: dict[str, int] = json.loads(result.stdout)
    return counts


def starts(cwd: Path) -> list[str]:
    log = cwd / "starts"
    return log.read_text().split() if log.exists() else []


def wait_until(what: str, done: Any) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)


def add(env: dict[str, str], cwd: Path, values: range) -> list[str]:
    result = run(env, cwd, "queue", "add", "q", stdin="".join(f"{v}\n" for v in values))
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["id"] for line in result.stdout.splitlines()]


def test_pause_with_four_workers_running_starts_nothing_new_until_resume(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A worker at -j 1 leases its next message while its job runs. Such a message,
    leased before the pause, still starts if the job ends within one poll interval
    (IDLE_SLICE) of its lease, as the issue allows; a job ending later gives it back. So
    the jobs end one poll interval after the pause, and from then nothing new starts."""
    first = add(env, tmp_path, range(12))
    workers = [
        subprocess.Popen(
            [LOCALQUEUE, "queue", "exec", "q", "--block", "--", "sh", "-c", JOB],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        wait_until("a job running in each worker", lambda: len(starts(tmp_path)) == 4)
        paused = run(env, tmp_path, "queue", "pause", "q")
        shown = json.loads(paused.stdout)
        assert (shown["queue"], shown["paused"]) == ("q", True), paused.stderr
        leased = stats(env, tmp_path)["inflight"]  # from now on, nothing more is leased
        assert 4 <= leased <= 8  # the running jobs, and at most one leased next per worker
        one_poll_interval = time.monotonic() + IDLE_SLICE + 0.05
        later = add(env, tmp_path, range(12, 16))  # add still works on a paused queue
        wait_until("one poll interval past the pause", lambda: time.monotonic() > one_poll_interval)
        (tmp_path / "go").touch()  # the running jobs finish ...
        wait_until("the leased jobs acked", lambda: stats(env, tmp_path)["inflight"] == 0)
        counts = stats(env, tmp_path)
        # ... and are acked, and nothing started after the pause anywhere.
        assert (counts["ready"], counts["total"], counts["paused"]) == (12,) * 2 + (True,)
        assert len(starts(tmp_path)) == 4
        pop = run(env, tmp_path, "queue", "pop", "q")
        assert pop.returncode == 3 and "is paused" in pop.stderr
        run(env, tmp_path, "queue", "resume", "q")
        wait_until("the rest done", lambda: stats(env, tmp_path)["total"] == 0)
        assert sorted(starts(tmp_path)) == sorted(first + later)
        assert all(worker.poll() is None for worker in workers)  # still waiting for work
    finally:
        for worker in workers:
            worker.terminate()
    outcomes = []
    for worker in workers:
        out, err = worker.communicate(timeout=DEADLINE)
        assert worker.returncode == 0, err
        outcomes += [json.loads(line) for line in out.splitlines()]
    assert sorted(o["id"] for o in outcomes if o["status"] == "acked") == sorted(first + later)


def test_a_draining_worker_of_a_paused_queue_exits_0_saying_so(
    env: dict[str, str], tmp_path: Path
) -> None:
    add(env, tmp_path, range(3))
    run(env, tmp_path, "queue", "pause", "q")
    drain = run(env, tmp_path, "queue", "exec", "q", "-j", "4", "--", "true")
    assert (drain.returncode, drain.stdout) == (0, "")
    assert "queue 'q' is paused" in drain.stderr
    assert stats(env, tmp_path)["ready"] == 3
    wait = run(env, tmp_path, "queue", "wait", "q", "--timeout", "0")
    assert wait.returncode == 3 and "the queue is paused" in wait.stderr

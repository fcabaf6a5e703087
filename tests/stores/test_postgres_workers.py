"""Worker processes on PostgreSQL: many consumers never share a message, and a worker
whose server connection is killed reconnects and finishes without losing anything.

Each worker is a fresh interpreter (``python -m tests.stores.test_postgres_workers``,
the ``__main__`` block below). It prints one JSON line when connected, waits for a
line on stdin, drains the queue, and prints what it did as one final JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localqueue import Empty, LeaseLostError, PersistentQueue, StoreError
from tests.conftest import fresh_schema, postgres_url, unavailable

ROOT = Path(__file__).resolve().parents[2]


def with_params(url: str, **params: str) -> str:
    extra = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


# -- the worker process ------------------------------------------------------------------


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def work(dsn: str, schema: str, lease_timeout: float, pause_after: int) -> None:
    from localqueue.stores.postgres import PostgresQueueStore

    store = PostgresQueueStore(dsn, schema=schema)
    queue = PersistentQueue("jobs", store=store, lease_timeout=lease_timeout)
    queue.stats()  # connected
    say(ready=os.getpid())
    sys.stdin.readline()
    handled: list[Any] = []
    acked: list[str] = []
    failed: list[str] = []
    while True:
        try:
            message = queue.get_message(timeout=0.5, leased_by=str(os.getpid()))
        except Empty:
            if queue.stats().total == 0:
                break
            continue  # others hold leases that may yet come back
        except StoreError as exc:  # the connection died twice in a row: go on
            say(error=str(exc))
            continue
        handled.append(message.value)
        if len(acked) == pause_after:
            say(paused=message.id)  # holding the lease; the test kills our connection
            sys.stdin.readline()
        try:
            queue.ack(message)
        except (StoreError, LeaseLostError):
            failed.append(message.id)  # redelivered when the lease expires
            continue
        acked.append(message.id)
    store.close()
    say(handled=handled, acked=acked, failed=failed)


# -- the tests ---------------------------------------------------------------------------


@pytest.fixture
def url() -> str:
    return postgres_url()


@pytest.fixture
def admin(url: str) -> Iterator[Any]:
    try:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
    except (ImportError, psycopg.Error) as exc:
        unavailable(f"cannot connect to LOCALQUEUE_TEST_POSTGRES_URL: {exc}")
    with conn:
        yield conn


@pytest.fixture
def schema(admin: Any) -> Iterator[str]:
    name = fresh_schema()
    yield name
    admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def jobs(url: str, schema: str) -> Iterator[PersistentQueue]:
    from localqueue.stores.postgres import PostgresQueueStore

    with PostgresQueueStore(url, schema=schema) as store:
        yield PersistentQueue("jobs", store=store)


class Worker:
    def __init__(self, dsn: str, schema: str, *, lease_timeout: float = 30, pause_after: int = -1):
        args = [dsn, schema, str(lease_timeout), str(pause_after)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.stores.test_postgres_workers", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.read()  # {"ready": pid}

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"worker exited early with {self.proc.wait()}"
        return dict(json.loads(line))

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        while "handled" not in (line := self.read()):
            pass  # diagnostics ({"error": ...}) before the summary
        assert self.proc.wait(timeout=120) == 0
        return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start Worker processes; whatever happens, none outlives the test."""
    started: list[Worker] = []

    def start(*args: Any, **kwargs: Any) -> Worker:
        started.append(Worker(*args, **kwargs))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


def kill_backends(admin: Any, app: str, wait_ms: int = 10000) -> int:
    row = admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, %s)) "
        "FROM pg_stat_activity WHERE application_name = %s",
        (wait_ms, app),
    ).fetchone()
    return int(row[0])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_four_workers_ack_ten_thousand_messages_exactly_once(
    url: str, schema: str, jobs: PersistentQueue, spawn: Any
) -> None:
    put_ids = [
        m.id for start in range(0, 10_000, 1000) for m in jobs.put_many(range(start, start + 1000))
    ]
    workers = [spawn(url, schema) for _ in range(4)]
    for worker in workers:
        worker.go()
    results = [worker.result() for worker in workers]
    acked = Counter(message_id for result in results for message_id in result["acked"])
    assert sorted(acked) == sorted(put_ids)
    assert set(acked.values()) == {1}
    assert all(result["failed"] == [] for result in results)
    assert all(result["acked"] for result in results)  # SKIP LOCKED let all four work
    assert jobs.stats().total == 0


@pytest.mark.slow
def test_worker_reconnects_after_its_connection_is_killed(
    url: str, schema: str, jobs: PersistentQueue, admin: Any, spawn: Any
) -> None:
    put_ids = [m.id for m in jobs.put_many(range(50))]
    app = f"lq_test_{uuid.uuid4().hex[:10]}"
    worker = spawn(with_params(url, application_name=app), schema, pause_after=5)
    worker.go()
    paused = worker.read()  # holding a lease on its 6th message
    assert kill_backends(admin, app) >= 1
    worker.go()
    result = worker.result()
    assert paused["paused"] in result["acked"]
    assert sorted(result["acked"]) == sorted(put_ids)
    assert result["handled"] == list(range(50)) and result["failed"] == []
    assert jobs.stats().total == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_workers_under_repeated_connection_kills_lose_nothing(
    url: str, schema: str, jobs: PersistentQueue, admin: Any, spawn: Any
) -> None:
    put_ids = {m.id for m in jobs.put_many(range(2000))}
    app = f"lq_test_{uuid.uuid4().hex[:10]}"
    workers = [
        spawn(with_params(url, application_name=app), schema, lease_timeout=1) for _ in range(2)
    ]
    stop = threading.Event()
    kills: list[int] = []

    def killer() -> None:
        while not stop.wait(0.05):
            kills.append(kill_backends(admin, app, wait_ms=0))

    thread = threading.Thread(target=killer)
    for worker in workers:
        worker.go()
    thread.start()
    try:
        results = [worker.result() for worker in workers]
    finally:
        stop.set()
        thread.join()
    assert sum(kills) > 0
    handled = Counter(value for result in results for value in result["handled"])
    assert set(handled) == set(range(2000))  # every message reached a handler
    acked = Counter(message_id for result in results for message_id in result["acked"])
    failed = {message_id for result in results for message_id in result["failed"]}
    assert all(count == 1 or message_id in failed for message_id, count in acked.items())
    assert put_ids <= set(acked) | failed
    assert jobs.stats().total == 0  # and nothing is left behind


if __name__ == "__main__":
    dsn_arg, schema_arg, lease_arg, pause_arg = sys.argv[1:5]
    work(dsn_arg, schema_arg, float(lease_arg), int(pause_arg))

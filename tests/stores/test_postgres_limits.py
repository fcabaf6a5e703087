"""Queue limits on PostgreSQL across processes: workers racing to lease from one queue
never hold more than ``max_inflight`` of its messages at once, nor more than
``per_group`` of one group, nor start more than ``rate`` leases in any window.

The store serializes the leases of a queue with limits (an advisory lock taken by an
earlier statement of each lease's transaction), so each lease counts every lease
committed before it; without that, two lease statements racing would each count the
same live leases and both lease past the limit.

Each worker is a fresh interpreter (``python -m tests.stores.test_postgres_limits``, the
``__main__`` block below): it says it is connected, waits for a line on stdin, then
drains the queue, by batches (``settle_many``: settle what it holds and lease up to four
more in one statement) or one message at a time (``lease`` then ``ack``), and prints
every lease it held as ``[group, leased_at, ended]`` in server time. ``leased_at`` is
read after the lease's statement took the lock and ``ended`` before the statement that
settles it, so a recorded interval lies inside the time the lease really held its slot:
two recorded intervals that overlap were live together for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localqueue import PersistentQueue, codec
from tests.conftest import fresh_schema, postgres_url, unavailable

ROOT = Path(__file__).resolve().parents[2]
SLOTS = 4  # leases a batch worker asks for at once


# -- the worker process ------------------------------------------------------------------


def work(dsn: str, schema: str, mode: str) -> None:
    from localqueue.outcome import Settlement
    from localqueue.stores.postgres import PostgresQueueStore

    store = PostgresQueueStore(dsn, schema=schema)
    store.stats("jobs")  # connected
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    held: list[Any] = []
    spans: list[tuple[str | None, float, float]] = []
    while True:
        ended = store.clock()
        spans.extend((row.group, row.leased_at, ended) for row in held)
        if mode == "batch":
            settle = [Settlement(row.id, row.lease_token, "acked") for row in held]
            _, held = store.settle_many("jobs", settle, lease=SLOTS, lease_timeout=120)
        else:
            for row in held:
                store.ack("jobs", row.id, row.lease_token)
            row = store.lease("jobs", lease_timeout=120, leased_by=None)
            held = [] if row is None else [row]
        if held:
            continue
        if store.stats("jobs").total == 0:
            break
        store.wait("jobs", 0.05)  # woken by an ack that frees a slot, or a start's turn
    store.close()
    print(json.dumps({"spans": spans}), flush=True)


# -- the tests ---------------------------------------------------------------------------


@pytest.fixture
def url() -> str:
    return postgres_url()


@pytest.fixture
def jobs(url: str) -> Iterator[tuple[PersistentQueue, str]]:
    try:
        from localqueue.stores.postgres import PostgresQueueStore
    except ImportError as exc:
        unavailable(f"PostgreSQL backend not importable: {exc}")
    schema = fresh_schema()
    store = PostgresQueueStore(url, schema=schema)
    try:
        yield PersistentQueue("jobs", store=store), schema
    finally:
        store.drop_schema()
        store.close()


def race(url: str, schema: str, modes: list[str]) -> list[tuple[str | None, float, float]]:
    """Start one worker per mode, let them all go at once, and return every lease they
    held (group, start, end)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.stores.test_postgres_limits", url, schema, mode],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode in modes
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and json.loads(proc.stdout.readline()) == {"ready": True}
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        spans: list[tuple[str | None, float, float]] = []
        for proc in procs:
            assert proc.stdout is not None
            spans.extend(tuple(span) for span in json.loads(proc.stdout.readline())["spans"])
            assert proc.wait(timeout=300) == 0
        return spans
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans that overlap at one instant (an end before a start
    at the same instant)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_a_lease_waiting_for_the_lock_counts_the_lease_committed_while_it_waited(
    url: str, jobs: tuple[PersistentQueue, str]
) -> None:
    """The lease lock is taken by a statement before the lease's own, so the lease's
    snapshot is taken after the previous holder committed: a lock taken inside the
    lease statement, or none, would miss the first lease and hand out the urgent one."""
    import psycopg

    queue, schema = jobs
    store: Any = queue.store
    queue.put("first")
    queue.set_limits(max_inflight=1)
    params = {**store._lease_params("jobs", 1, 60.0, "holder")}
    params["lease_lock"] = f"localqueue:lease:{schema}:jobs"
    with psycopg.connect(url, autocommit=True) as holder:
        with holder.transaction():
            holder.execute(store._sql["LOCK_LEASES"], params)
            (row,) = holder.execute(store._sql["LEASE_MANY_LIMITED"], params).fetchall()
            assert row[1] == 1  # "first" is leased, not committed yet
            queue.put("urgent", priority=5)
            got: list[Any] = []
            other = threading.Thread(target=lambda: got.append(queue.get_messages(1)))
            other.start()
            deadline = time.monotonic() + 30
            while other.is_alive() and not waiting_for_lock(holder, params["lease_lock"]):
                assert time.monotonic() < deadline, "the second lease neither ended nor waited"
                time.sleep(0.01)
        other.join()
    assert got == [[]]  # "first" holds the one slot
    assert queue.store.held_back("jobs") == ("max_inflight", 1)


@pytest.mark.parametrize("free", ["settle", "lift"])
def test_a_settle_freeing_a_slot_or_a_lifted_limit_wakes_the_waiters(
    url: str, jobs: tuple[PersistentQueue, str], free: str
) -> None:
    from localqueue.outcome import Outcome
    from localqueue.stores.postgres import PostgresQueueStore

    queue, schema = jobs
    queue.put_many(["a", "b"])
    queue.set_limits(max_inflight=1)
    (held,) = queue.get_messages(2)
    with PostgresQueueStore(url, schema=schema) as waiting:
        waiting.listen()
        assert waiting.lease("jobs", lease_timeout=30, leased_by=None) is None
        woke = threading.Event()
        waiter = threading.Thread(
            target=lambda: (waiting.wait("jobs", 60), woke.set()), daemon=True
        )
        waiter.start()
        if free == "settle":
            queue.settle_many([Outcome(held, "acked")])
        else:
            queue.set_limits(max_inflight=None)
        waiter.join(timeout=30)  # far sooner than the minute it would wait unwoken
        assert woke.is_set()
        row = waiting.lease("jobs", lease_timeout=30, leased_by=None)
        assert row is not None and codec.decode(row.value) == "b"


def waiting_for_lock(conn: Any, key: str) -> bool:
    """Whether a session waits for the advisory lock ``hashtext(key)``."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND objid::bigint = hashtext(%s)::bigint & 4294967295",
        (key,),
    ).fetchone()
    return bool(row[0])


MODES = ["batch", "batch", "single", "single"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_racing_workers_never_hold_more_than_max_inflight(
    url: str, jobs: tuple[PersistentQueue, str]
) -> None:
    queue, schema = jobs
    queue.put_many(range(400))
    queue.set_limits(max_inflight=3)
    spans = race(url, schema, MODES)
    assert len(spans) == 400 and queue.stats().total == 0
    assert most_at_once([(start, end) for _, start, end in spans]) <= 3


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_racing_workers_never_hold_two_of_one_group(
    url: str, jobs: tuple[PersistentQueue, str]
) -> None:
    queue, schema = jobs
    groups = [f"g{i % 6}" if i % 5 else None for i in range(400)]
    queue.put_many(range(400), groups=groups)
    queue.set_limits(per_group=1)
    spans = race(url, schema, MODES)
    assert len(spans) == 400 and queue.stats().total == 0
    by_group: dict[str | None, list[tuple[float, float]]] = defaultdict(list)
    for group, start, end in spans:
        by_group[group].append((start, end))
    peaks = {group: most_at_once(held) for group, held in by_group.items()}
    assert set(peaks) == {None, *(f"g{i}" for i in range(6))}
    assert all(peaks[f"g{i}"] == 1 for i in range(6))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_racing_workers_never_start_more_than_the_rate_in_any_window(
    url: str, jobs: tuple[PersistentQueue, str]
) -> None:
    queue, schema = jobs
    queue.put_many(range(60))
    queue.set_limits(rate=(20, 0.5))
    spans = race(url, schema, MODES)
    assert len(spans) == 60 and queue.stats().total == 0
    starts = sorted(start for _, start, _ in spans)
    # Any window of 0.5 s holds at most 20 starts: the 21st start after each one is
    # at least 0.5 s later.
    assert all(later - first >= 0.5 for first, later in zip(starts, starts[20:], strict=False))


if __name__ == "__main__":
    work(*sys.argv[1:4])

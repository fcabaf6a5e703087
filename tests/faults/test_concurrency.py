"""Many processes at once, a lock held too long, a reader held open."""

from __future__ import annotations

import json
import os
import queue
import textwrap
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from localqueue import PersistentQueue
from tests.faults.conftest import snapshot
from tests.faults.helpers import popen, python, read_fifo, read_line, run, stats, wait_for

PRODUCER = textwrap.dedent(
    """
    import sys
    from localqueue import PersistentQueue
    path, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    q = PersistentQueue("jobs", path, durability="normal")
    for first in range(start, start + count, 50):
        q.put_many(list(range(first, min(first + 50, start + count))))
    """
)
CONSUMER = textwrap.dedent(
    """
    import sys
    from localqueue import Empty, PersistentQueue
    q = PersistentQueue("jobs", sys.argv[1], durability="normal")
    done = sys.argv[2]
    import os
    while True:
        try:
            message = q.get_message(timeout=0.2)
        except Empty:
            if os.path.exists(done) and q.qsize() == 0 and q.stats().inflight == 0:
                break
            continue
        q.ack(message)
        print(message.value, flush=True)
    """
)


@pytest.mark.slow
def test_four_producers_four_consumers_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    path, done = tmp_path / "q.sqlite3", tmp_path / "producers-done"
    PersistentQueue("jobs", path).close()
    consumers = [python(CONSUMER, str(path), str(done)) for _ in range(4)]
    producers = [python(PRODUCER, str(path), str(i * 2500), "2500") for i in range(4)]
    for producer in producers:
        _, err = producer.communicate(timeout=120)
        assert producer.returncode == 0, err
    done.touch()
    acked: list[int] = []
    for consumer in consumers:
        out, err = consumer.communicate(timeout=120)
        assert consumer.returncode == 0, err  # no lock error escaped
        acked += [int(line) for line in out.split()]
    assert len(acked) == 10_000 and set(acked) == set(range(10_000))
    assert snapshot(path) == {"integrity": ["ok"], "rows": []}


def _drained_queue(store: Path, name: str) -> None:
    q = PersistentQueue(name, store)
    q.put(0)
    q.purge()
    q.close()


@pytest.mark.slow
def test_cli_producers_and_exec_forever_workers(tmp_path: Path) -> None:
    store, retries = tmp_path / "q.sqlite3", tmp_path / "r.sqlite3"
    stores = ("--store-path", str(store))
    argv = ("queue", "exec", "q", "--forever", "--idle-sleep", "0.05", *stores)
    argv += ("--retry-store-path", str(retries), "--", "true")
    _drained_queue(store, "q")  # workers refuse a store that does not exist
    workers = [popen(tmp_path, *argv) for _ in range(4)]
    adders = []
    for p in range(4):
        lines = tmp_path / f"lines-{p}"
        lines.write_text("".join(f"{p * 150 + i}\n" for i in range(150)))
        with open(lines) as stdin:
            adders.append(popen(tmp_path, "queue", "add", "q", *stores, stdin=stdin))
    produced: set[str] = set()
    for adder in adders:
        out, err = adder.communicate(timeout=60)
        assert adder.returncode == 0, err
        produced |= {json.loads(line)["id"] for line in out.splitlines()}
    lines: queue.Queue[str] = queue.Queue()
    readers = [threading.Thread(target=_pump, args=(w.stdout, lines)) for w in workers]
    for reader in readers:
        reader.start()
    acked: list[str] = []
    while len(acked) < len(produced):
        result = json.loads(lines.get(timeout=60))
        assert result["status"] == "acked"
        acked.append(result["id"])
    for worker in workers:
        worker.terminate()
    for worker, reader in zip(workers, readers, strict=True):
        assert worker.wait(30) == 0
        reader.join(10)
        assert worker.stderr is not None
        assert worker.stderr.read() == ""  # no lock error, no warning
    while not lines.empty():
        acked.append(json.loads(lines.get())["id"])
    assert len(produced) == 600
    assert len(acked) == len(set(acked)) and set(acked) == produced


def _pump(stream: IO[str] | None, into: queue.Queue[str]) -> None:
    assert stream is not None
    for line in stream:
        into.put(line)


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    print("unlocked", flush=True)
    sys.stdin.readline()
    """
)
BUSY_TIMEOUT = 5.0  # the store's default


@pytest.mark.slow
def test_a_lock_held_past_busy_timeout(tmp_path: Path) -> None:
    """Commands exit 75 having written nothing; a worker with a finished job keeps trying
    to ack it; an idle --forever worker keeps polling with reads, which need no lock, so
    it neither fails nor backs off. All under one lock, then all succeed."""
    store, ready, go = tmp_path / "q.sqlite3", tmp_path / "ready", tmp_path / "go"
    os.mkfifo(ready)
    os.mkfifo(go)
    sp = ("--store-path", str(store))
    stores = (*sp, "--retry-store-path", str(tmp_path / "r.sqlite3"))
    for name, value in (("c", "1"), ("c", "2"), ("w", "3")):
        assert run(tmp_path, "queue", "add", name, "--value", value, *sp).returncode == 0
    leased = json.loads(run(tmp_path, "queue", "pop", "c", *sp).stdout)
    busy = popen(
        tmp_path, "queue", "exec", "w", "--forever", "--lease-timeout", "30", *stores,
        "--", "sh", "-c", f"echo started > {ready}; read line < {go}",
    )  # fmt: skip
    read_fifo(ready)
    _drained_queue(store, "i")  # a queue the store knows: no warning on stderr
    idle = popen(tmp_path, "queue", "exec", "i", "--forever", *stores, "--", "true")
    before = [row for row in snapshot(store)["rows"] if row[1] == "c"]

    locker = python(LOCKER, str(store))
    assert read_line(locker.stdout) == "locked\n"
    with open(go, "w") as handle:  # the job succeeds while the store is locked
        handle.write("go\n")
    commands = {
        "add": ("queue", "add", "c", "--value", "3"),
        "pop": ("queue", "pop", "c"),
        "ack": ("queue", "ack", "c", leased["id"], "--lease-token", leased["lease_token"]),
    }
    running = {name: popen(tmp_path, *argv, *sp) for name, argv in commands.items()}
    for name, process in running.items():  # each gives up after its busy timeout
        out, err = process.communicate(timeout=30)
        assert process.returncode == 75, (name, err)
        assert out == "" and "locked" in err and "try again" in err
    wait_for(busy.stderr, "still trying to settle", timeout=10)
    assert [row for row in snapshot(store)["rows"] if row[1] == "c"] == before
    assert locker.stdin is not None
    locker.stdin.write("\n")
    locker.stdin.flush()
    assert read_line(locker.stdout) == "unlocked\n"
    locker.stdin.close()
    locker.wait(10)

    assert json.loads(read_line(busy.stdout))["status"] == "acked"
    for name, argv in commands.items():
        done = run(tmp_path, *argv, *sp)
        assert done.returncode == 0, (name, done.stderr)
    assert run(tmp_path, "queue", "add", "i", "--value", "4", *sp).returncode == 0
    assert json.loads(read_line(idle.stdout))["status"] == "acked"
    for worker in (busy, idle):
        worker.terminate()
        _, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err
    assert "localqueue:" not in err  # the idle worker never met the lock
    assert stats(tmp_path, store, "w")["total"] == stats(tmp_path, store, "i")["total"] == 0


READER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM messages").fetchone()
    print("reading", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
    conn.close()
    """
)


@pytest.mark.slow
def test_wal_is_checkpointed_back_after_a_long_reader_closes(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    wal = Path(f"{path}-wal")
    q = PersistentQueue("jobs", path, durability="normal")
    reader = python(READER, str(path))
    assert read_line(reader.stdout) == "reading\n"
    for i in range(5000):
        q.put({"n": i, "pad": "x" * 200})
        q.ack(q.get_message(block=False))
    grown = wal.stat().st_size
    assert reader.stdin is not None
    reader.stdin.write("\n")
    reader.stdin.close()
    reader.wait(10)
    for i in range(100):  # ordinary traffic after the reader is gone
        q.put({"n": i})
        q.ack(q.get_message(block=False))
    q.store.checkpoint()  # what an idle moment or close does
    settled = wal.stat().st_size
    q.close()
    assert grown > 8 * 1024 * 1024, grown  # the reader really pinned the WAL
    assert settled <= 8 * 1024 * 1024  # journal_size_limit
    assert snapshot(path) == {"integrity": ["ok"], "rows": []}


def test_decorated_worker_ack_under_the_lock_waits_for_it(tmp_path: Path) -> None:
    from localqueue import persistent_worker
    from localqueue.retry import MemoryAttemptStore
    from localqueue.stores.sqlite import SQLiteQueueStore

    path = tmp_path / "q.sqlite3"
    q = PersistentQueue("jobs", store=SQLiteQueueStore(path, busy_timeout=0.2), lease_timeout=30)
    q.put("job")
    locker = python(LOCKER, str(path))
    assert locker.stdin is not None

    @persistent_worker(q, retry_store=MemoryAttemptStore())
    def handle(value: str) -> str:
        assert read_line(locker.stdout) == "locked\n"
        # the ack will meet the lock for 5 busy timeouts, then the lock goes away
        threading.Timer(1.0, lambda: (locker.stdin.write("\n"), locker.stdin.flush())).start()
        return value

    started = time.monotonic()
    assert handle() == "job"
    assert time.monotonic() - started >= 1.0
    assert q.stats().total == 0
    locker.stdin.close()
    locker.wait(10)

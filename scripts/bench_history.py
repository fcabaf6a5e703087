"""Measure the history of finished jobs at scale (issue 28), outside the test suite:

* a SQLite store holding 1,000,000 history records of one queue: how long
  ``localqueue queue history NAME -n 20`` takes (the whole command, and the store's query
  alone);
* pruning 100,000 expired records (``store.prune_expired``, a batch of 100 per
  transaction, as ``store vacuum`` does) while another process puts one
  message at a time: the longest any put waited, beside the same process's puts in
  the 5 s before pruning started (the machine's own latency).

    python scripts/bench_history.py [--records 1000000] [--expired 100000] [--dir DIR]
        [--put-interval SECONDS] [--only history|pruning]

The putter waits ``--put-interval`` (default 1 ms) between its puts. With none (0), a
process putting at full durability as fast as it can holds SQLite's write lock nearly
all the time, and SQLite's lock is not fair: another writer's busy wait (1, 2, 5, 10,
... ms sleeps) rarely lands in the microseconds between two commits, so the pruning
itself may wait past its busy timeout (StoreLockedError), with or without history code
in the way.

The records are written straight into the store (one transaction), as a million
settles would leave them, so that setting up takes seconds rather than hours: one in
a hundred a dead letter's, in the ``history`` table, and the rest acked messages,
finished in place (``messages``, state 3).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localqueue import PersistentQueue
from localqueue.history import PRUNE_BATCH
from localqueue.stores.sqlite import SQLiteQueueStore

LOCALQUEUE = str(Path(sys.executable).with_name("localqueue"))
WEEK = 7 * 86400


def fill(path: Path, records: int, expired: int) -> None:
    """``records`` records of queue "hooks", the oldest ``expired`` of them finished
    more than a week ago (past a 7d retention), the rest in the last day."""
    PersistentQueue("hooks", str(path)).keep(WEEK)
    now = time.time()
    value = json.dumps({"order": 812, "url": "https://example.com/hook"}).encode()
    output = json.dumps({"stdout": "ok\n", "stdout_bytes": 3, "stderr": "", "stderr_bytes": 0})
    error = json.dumps({"type": "CalledProcessError", "message": "exit 22"}).encode()
    finished = [_finished(i, now, records, expired) for i in range(records)]
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO messages (seq, nonce, queue, value, state, visible_at, attempts,"
            " enqueued_at, first_started_at, leased_by, key, duration, exit_code, output)"
            " VALUES (?, 43981, 'hooks', ?, 3, ?, 1, ?, ?, 'bench', ?, 0.5, 0, ?)",
            (
                (i + 1, value, f, f - 1.0, f - 0.5, f"k{i}", output.encode())
                for i, f in enumerate(finished)
                if i % 100 != 7
            ),
        )
        conn.executemany(
            "INSERT INTO history (queue, id, key, value, status, attempts, enqueued_at,"
            " first_started_at, finished_at, duration, worker, exit_code, error)"
            " VALUES ('hooks', ?, ?, ?, 'dead', 3, ?, ?, ?, 0.5, 'bench', 22, ?)",
            (
                (f"{i + 1}-00000000abcd", f"k{i}", value, f - 1.0, f - 0.5, f, error)
                for i, f in enumerate(finished)
                if i % 100 == 7
            ),
        )
    conn.close()


def _finished(i: int, now: float, records: int, expired: int) -> float:
    """When record ``i`` finished: the oldest ``expired`` two weeks ago, a ms apart."""
    if i < expired:
        return now - 2 * WEEK + i * 0.001
    return now - 86400 + (i - expired) * 86400 / records


def time_history(path: Path, runs: int = 11) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALQUEUE_")}
    argv = [LOCALQUEUE, "queue", "history", "hooks", "-n", "20", "--store-path", str(path)]
    command = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, check=True)
        command.append(time.perf_counter() - started)
        assert len(done.stdout.splitlines()) == 20
    python = subprocess.run(
        [sys.executable, "-c", "pass"], capture_output=True, env=env, check=True
    )
    assert python.returncode == 0
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        bare.append(time.perf_counter() - started)
    store = SQLiteQueueStore(path)
    query = []
    for _ in range(runs):
        started = time.perf_counter()
        assert len(store.history("hooks", limit=20)) == 20
        query.append(time.perf_counter() - started)
    filtered = []
    for _ in range(runs):
        started = time.perf_counter()
        store.history("hooks", status="acked", since=time.time() - 3600, limit=20)
        filtered.append(time.perf_counter() - started)
    store.close()
    return {
        "command_ms": statistics.median(command) * 1000,
        "python_c_pass_ms": statistics.median(bare) * 1000,
        "query_ms": statistics.median(query) * 1000,
        "query_since_status_ms": statistics.median(filtered) * 1000,
    }


def _putter(path: str, interval: float, stop: object, out: object) -> None:
    queue = PersistentQueue("other", path)
    waits = []  # (when it started, epoch seconds; how long it took)
    while not stop.is_set():  # type: ignore[attr-defined]
        when, started = time.time(), time.perf_counter()
        queue.put({"n": len(waits)})
        waits.append((when, time.perf_counter() - started))
        if interval:
            time.sleep(interval)
    out.put(waits)  # type: ignore[attr-defined]


def time_pruning(path: Path, interval: float = 0.001) -> dict[str, float]:
    stop = multiprocessing.Event()
    out: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
    putter = multiprocessing.Process(target=_putter, args=(str(path), interval, stop, out))
    putter.start()
    try:
        time.sleep(5.0)  # the putter alone first: the machine's own put latency
        store = SQLiteQueueStore(path)
        began = time.time()
        started = time.perf_counter()
        pruned = store.prune_expired()  # as store vacuum does, a batch at a time
        batches = -(-pruned // PRUNE_BATCH)
        elapsed = time.perf_counter() - started
        store.close()
        time.sleep(0.5)
    finally:  # never leave the putter running
        stop.set()
        timed = out.get(timeout=60)
        putter.join(timeout=60)
    alone = [wait for when, wait in timed if when < began]
    waits = [wait for when, wait in timed if began <= when <= began + elapsed]
    return {
        "pruned": pruned,
        "batches": batches,
        "prune_s": elapsed,
        "puts_while_pruning": len(waits),
        "put_max_ms": max(waits) * 1000,
        "put_p99_ms": sorted(waits)[int(len(waits) * 0.99)] * 1000,
        "put_median_ms": statistics.median(waits) * 1000,
        "puts_over_100ms": sum(wait > 0.1 for wait in waits),
        "puts_alone": len(alone),
        "alone_put_max_ms": max(alone) * 1000,
        "alone_put_p99_ms": sorted(alone)[int(len(alone) * 0.99)] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--expired", type=int, default=100_000)
    parser.add_argument("--dir", help="where to make the store (default: a temporary dir)")
    parser.add_argument("--put-interval", type=float, default=0.001, metavar="SECONDS")
    parser.add_argument("--only", choices=("history", "pruning"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "history.sqlite3"
        started = time.perf_counter()
        fill(path, args.records, args.expired)
        report: dict[str, object] = {"records": args.records, "expired": args.expired}
        report["fill_s"] = time.perf_counter() - started
        if args.only != "pruning":
            report["history"] = time_history(path)
        if args.only != "history":
            report["put_interval_s"] = args.put_interval
            report["pruning"] = time_pruning(path, args.put_interval)
        report["bytes"] = path.stat().st_size
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

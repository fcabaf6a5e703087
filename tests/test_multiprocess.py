"""Real OS processes on one SQLite file: nothing lost, nothing delivered twice, and a
SIGKILLed holder's message comes back once its lease expires."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from localqueue import Empty, PersistentQueue

PRODUCERS, CONSUMERS, PER_PRODUCER = 3, 3, 1000


def _produce(path: str, producer: int, start: Any) -> None:
    q = PersistentQueue("jobs", path)
    start.wait()
    i = 0
    while i < PER_PRODUCER:
        if i % 100 == 0:  # a batch now and then, single puts otherwise
            q.put_many([f"{producer}-{i + k}" for k in range(20)])
            i += 20
        else:
            q.put(f"{producer}-{i}")
            i += 1
    q.close()


def _consume(path: str, start: Any, done: Any, results: Any) -> None:
    q = PersistentQueue("jobs", path, lease_timeout=60)
    acked: list[tuple[str, str]] = []
    start.wait()
    while True:
        try:
            message = q.get_message(timeout=0.2)
        except Empty:
            if done.is_set() and q.stats().total == 0:
                break
            continue
        q.ack(message)
        acked.append((message.id, message.value))
    results.put(acked)
    q.close()


@pytest.mark.slow
def test_three_producers_three_consumers_every_id_acked_exactly_once(tmp_path: Path) -> None:
    path = str(tmp_path / "q.sqlite3")
    PersistentQueue("jobs", path).close()  # create the schema up front
    ctx = mp.get_context("spawn")
    start, done, results = ctx.Event(), ctx.Event(), ctx.Queue()
    producers = [ctx.Process(target=_produce, args=(path, p, start)) for p in range(PRODUCERS)]
    consumers = [
        ctx.Process(target=_consume, args=(path, start, done, results)) for _ in range(CONSUMERS)
    ]
    for process in producers + consumers:
        process.start()
    start.set()
    for process in producers:
        process.join(120)
        assert process.exitcode == 0
    done.set()
    acked = [item for _ in consumers for item in results.get(timeout=120)]
    for process in consumers:
        process.join(30)
        assert process.exitcode == 0  # no "database is locked" escaped
    ids = [message_id for message_id, _ in acked]
    values = sorted(value for _, value in acked)
    expected = sorted(f"{p}-{i}" for p in range(PRODUCERS) for i in range(PER_PRODUCER))
    assert len(ids) == len(set(ids)) == PRODUCERS * PER_PRODUCER  # none twice
    assert values == expected  # none lost
    assert PersistentQueue("jobs", path).stats().total == 0


HOLDER = textwrap.dedent(
    """
    import sys, time
    from localqueue import PersistentQueue
    q = PersistentQueue("jobs", sys.argv[1], lease_timeout=1.0)
    message = q.get_message(block=False, leased_by="doomed")
    print(message.id, message.lease_token, flush=True)
    time.sleep(600)
    """
)


def test_sigkilled_holder_message_returns_after_lease_expiry(tmp_path: Path) -> None:
    path = str(tmp_path / "q.sqlite3")
    q = PersistentQueue("jobs", path, lease_timeout=30)
    put = q.put({"job": "important"})
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    message_id, token = child.stdout.readline().split()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert message_id == put.id
    held = q.inspect(put.id)
    assert held is not None and held.leased_by == "doomed" and held.lease_token == token
    again = q.get_message(timeout=10, leased_by="survivor")  # returns once the 1 s lease expires
    assert again.id == put.id
    assert again.attempts == 2 and again.lease_token != token
    q.ack(again)
    assert q.stats().total == 0

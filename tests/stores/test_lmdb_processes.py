"""Real OS processes on one LMDB environment: producers and consumers lose nothing and
deliver nothing twice; SIGKILLed lease holders, writers and readers leave nothing behind.
Every child says "ready" on stdout before the parent acts; no test sleeps and hopes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("lmdb")

from localqueue import LeaseLostError, PersistentQueue
from localqueue.stores.lmdb import LMDBQueueStore

PRODUCERS, CONSUMERS, PER_PRODUCER = 3, 3, 1000


def _url(path: str) -> str:
    return "lmdb://" + path


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _ready(child: subprocess.Popen[str]) -> list[str]:
    """Block until the child prints its "ready ..." line; returns the words after it."""
    assert child.stdout is not None
    words = child.stdout.readline().split()
    assert words[:1] == ["ready"], f"child said {words!r} (exit code {child.poll()})"
    return words[1:]


def _start_together(children: list[subprocess.Popen[str]]) -> None:
    """Wait until every child is ready, then tell them all to go at once."""
    for child in children:
        _ready(child)
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


def _kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(30) == -signal.SIGKILL


PRODUCER = """
    import sys
    from localqueue import PersistentQueue
    path, producer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    q = PersistentQueue("jobs", "lmdb://" + path)
    print("ready", flush=True)
    sys.stdin.readline()
    i = 0
    while i < count:
        if i % 100 == 0:  # a batch now and then, single puts otherwise
            q.put_many([f"{producer}-{i + k}" for k in range(20)])
            i += 20
        else:
            q.put(f"{producer}-{i}")
            i += 1
    q.close()
"""

CONSUMER = """
    import json, sys
    from localqueue import PersistentQueue
    q = PersistentQueue("jobs", "lmdb://" + sys.argv[1], lease_timeout=60)
    print("ready", flush=True)
    sys.stdin.readline()
    while True:
        message = q.get_message(timeout=60)
        q.ack(message)  # raises if the lease was lost: then this exits non-zero
        if message.value == "stop":
            break
        print(json.dumps([message.id, message.value]))
    q.close()
"""


@pytest.mark.slow
def test_three_producers_three_consumers_every_id_acked_exactly_once(tmp_path: Path) -> None:
    path = str(tmp_path / "env")
    producers = [_child(PRODUCER, path, str(p), str(PER_PRODUCER)) for p in range(PRODUCERS)]
    consumers = [_child(CONSUMER, path) for _ in range(CONSUMERS)]
    _start_together(producers + consumers)
    for child in producers:
        assert child.wait(120) == 0
    q = PersistentQueue("jobs", _url(path))
    q.put_many(["stop"] * CONSUMERS)  # after every real message: FIFO
    acked = []
    for child in consumers:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        acked += [json.loads(line) for line in out.splitlines()]
    ids = [message_id for message_id, _ in acked]
    values = sorted(value for _, value in acked)
    expected = sorted(f"{p}-{i}" for p in range(PRODUCERS) for i in range(PER_PRODUCER))
    assert len(ids) == len(set(ids)) == PRODUCERS * PER_PRODUCER  # none twice
    assert values == expected  # none lost
    assert q.stats().total == 0
    q.close()


HOLDER = """
    import sys, time
    from localqueue import PersistentQueue
    q = PersistentQueue("jobs", "lmdb://" + sys.argv[1], lease_timeout=1.0)
    message = q.get_message(block=False, leased_by="doomed")
    print("ready", message.id, message.lease_token, flush=True)
    time.sleep(600)
"""


def test_sigkilled_lease_holder_message_returns_after_expiry(tmp_path: Path) -> None:
    path = str(tmp_path / "env")
    q = PersistentQueue("jobs", _url(path), lease_timeout=30)
    put = q.put({"job": "important"})
    child = _child(HOLDER, path)
    message_id, token = _ready(child)
    _kill(child)
    assert message_id == put.id
    held = q.inspect(put.id)
    assert held is not None and held.leased_by == "doomed" and held.lease_token == token
    again = q.get_message(timeout=10, leased_by="survivor")  # once the 1 s lease expires
    assert again.id == put.id and again.value == {"job": "important"}
    assert again.attempts == 2 and again.lease_token != token
    with pytest.raises(LeaseLostError):
        q.ack(put.id, lease_token=token)  # the dead holder's token is fenced off
    q.ack(again)
    assert q.stats().total == 0
    q.close()


LIMITED_HOLDER = """
    import sys, time
    from localqueue import PersistentQueue
    q = PersistentQueue("jobs", "lmdb://" + sys.argv[1], lease_timeout=1.0)
    print("ready", *[m.value for m in q.get_messages(3)], flush=True)
    time.sleep(600)
"""


def test_sigkilled_holder_frees_its_group_when_its_lease_ends(tmp_path: Path) -> None:
    path = str(tmp_path / "env")
    q = PersistentQueue("jobs", _url(path), lease_timeout=30)
    q.put_many(["a1", "a2", "b1"], groups=["a", "a", "b"])
    q.set_limits(per_group=1)
    child = _child(LIMITED_HOLDER, path)
    assert _ready(child) == ["a1", "b1"]  # "a2" waits for its group
    _kill(child)
    deadline = time.monotonic() + 30
    while not (leased := q.get_messages(3)) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the dead holder's 1 s leases end
    # "a2" (visible first) takes group "a"; "a1", expired, waits for it again.
    assert [m.value for m in leased] == ["a2", "b1"]
    assert q.store.held_back("jobs") == ("per_group", 1)
    q.close()


LEASER = """
    import json, sys
    from localqueue import PersistentQueue
    q = PersistentQueue("jobs", "lmdb://" + sys.argv[1], lease_timeout=3600)
    print("ready", flush=True)
    sys.stdin.readline()
    got = [m for _ in range(6) for m in q.get_messages(1)]  # one transaction each
    print(json.dumps([m.group for m in got]), flush=True)
"""


@pytest.mark.parametrize(
    ("limits", "leased"),
    # 4/h: one start each 15 minutes at most, so one in all
    [({"max_inflight": 3}, 3), ({"rate": "4/h"}, 1), ({"per_group": 1}, 10)],
)
def test_limits_hold_across_processes_leasing_at_once(
    tmp_path: Path, limits: dict[str, object], leased: int
) -> None:
    """Four processes try 24 leases of 20 messages (two per group) at once: together
    they get exactly what the limit allows, and with ``per_group`` 1 each group once."""
    path = str(tmp_path / "env")
    q = PersistentQueue("jobs", _url(path))
    q.put_many(range(20), groups=[f"g{i % 10}" for i in range(20)])
    q.set_limits(**limits)  # type: ignore[arg-type]
    children = [_child(LEASER, path) for _ in range(4)]
    _start_together(children)
    groups = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0, out
        groups += json.loads(out)
    assert len(groups) == leased == q.stats().inflight
    if "per_group" in limits:
        assert sorted(groups) == sorted(f"g{i}" for i in range(10))
    q.close()


BATCH_WRITER = """
    import os, sys, time
    from collections.abc import Sequence
    from localqueue.stores.lmdb import LMDBQueueStore

    class StopsHalfway(Sequence):
        # The store reads the batch inside its write transaction: at the halfway mark
        # the first half is written (uncommitted) and the write lock is held.
        def __len__(self):
            return 1000
        def __getitem__(self, i):
            if i >= len(self):
                raise IndexError(i)
            if i == 500:
                print("ready", os.getpid(), flush=True)
                time.sleep(600)
            return b'"%d"' % i

    store = LMDBQueueStore(sys.argv[1])
    store.put("jobs", StopsHalfway())
"""

AFTER_WRITER = """
    import sys
    from localqueue import PersistentQueue
    q = PersistentQueue("jobs", "lmdb://" + sys.argv[1])
    q.put("after")
    print("ready", q.qsize(), flush=True)
"""


def test_sigkill_in_the_middle_of_a_batch_put_writes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "env")
    q = PersistentQueue("jobs", _url(path))
    q.put("before")
    writer = _child(BATCH_WRITER, path)
    _ready(writer)  # 500 of 1000 values are in its open write transaction now
    _kill(writer)
    assert q.stats().total == 1  # nothing of the half-written batch
    # The killed writer held LMDB's write lock; another process gets it at once.
    other = _child(AFTER_WRITER, path)
    assert _ready(other) == ["2"]
    assert other.wait(30) == 0
    q.put("and this process writes too")
    assert [q.get_message(block=False).value for _ in range(3)] == [
        "before",
        "after",
        "and this process writes too",
    ]
    q.close()


KEEPER = """
    import sys
    from localqueue.stores.lmdb import LMDBQueueStore
    store = LMDBQueueStore(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    print(store.reader_check(), flush=True)
"""

READER = """
    import os, sys, time
    import lmdb
    env = lmdb.open(sys.argv[1], max_dbs=8)
    txn = env.begin()  # a reader slot, held until the process dies
    print("ready", os.getpid(), flush=True)
    time.sleep(600)
"""


def test_reader_slot_of_a_sigkilled_process_is_cleared_on_open(tmp_path: Path) -> None:
    path = str(tmp_path / "env")
    LMDBQueueStore(path).close()
    # A live process keeps the environment open: otherwise the next opener would own it
    # alone and LMDB would reset the whole reader table anyway.
    keeper = _child(KEEPER, path)
    _ready(keeper)
    reader = _child(READER, path)
    _ready(reader)
    _kill(reader)
    store = LMDBQueueStore(path)
    assert store.stale_readers_cleared == 1
    assert store.reader_check() == 0
    assert keeper.stdin is not None
    out, _ = keeper.communicate("go\n", timeout=30)
    assert out.split() == ["0"]  # nothing stale left for anyone else
    PersistentQueue("jobs", store=store).put("still fine")
    assert store.stats("jobs").ready == 1
    store.close()


OPEN_AND_PUT = """
    import sys
    from localqueue import PersistentQueue
    print("ready", flush=True)
    sys.stdin.readline()
    PersistentQueue("jobs", "lmdb://" + sys.argv[1]).put(sys.argv[2])
    print("ok", flush=True)
"""


@pytest.mark.slow
def test_processes_creating_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    for round_ in range(5):
        path = str(tmp_path / f"env{round_}")
        children = [_child(OPEN_AND_PUT, path, str(i)) for i in range(6)]
        _start_together(children)
        for child in children:
            out, _ = child.communicate(timeout=60)
            assert child.returncode == 0 and out.split() == ["ok"], out
        store = LMDBQueueStore(path)
        assert store.stats("jobs").ready == 6
        store.close()

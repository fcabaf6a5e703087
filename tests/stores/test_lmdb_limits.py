"""Queue limits on the LMDB store beyond the contract (``localqueue/stores/_lmdb_limits.py``):
the same answers as the reference store under random limits, the ``live`` sub-database
kept only while a queue counts its leases, and the 4 -> 5 step of a store with
settings."""

from __future__ import annotations

import collections
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

lmdb = pytest.importorskip("lmdb")  # the CI job installs the extra; conftest fails there

from localqueue import PersistentQueue  # noqa: E402
from localqueue.message import QueueSettings  # noqa: E402
from localqueue.outcome import Settlement  # noqa: E402
from localqueue.stores.base import QueueStore, Row  # noqa: E402
from localqueue.stores.lmdb import LMDBQueueStore  # noqa: E402
from tests.stores.test_lmdb import Twins  # noqa: E402

QUEUES = ("a", "b")
GROUPS = (None, "x", "y", "z")
LIMITS: tuple[dict[str, Any], ...] = (
    {"max_inflight": 2},
    {"max_inflight": None},
    {"per_group": 1},
    {"per_group": 2},
    {"per_group": None},
    {"rate": 3, "rate_period": 4.0},
    {"rate": 1, "rate_period": 1.5},
    {"rate": None, "rate_period": None},
)


def _shape(row: Row | None) -> tuple[object, ...] | None:
    """A row without its id and token, which differ between stores by design."""
    return None if row is None else row._replace(id=None, lease_token=None)


def _entries(path: Path, name: bytes) -> list[bytes]:
    """The keys of one sub-database of the environment at ``path`` (closed meanwhile)."""
    env = lmdb.open(str(path), max_dbs=16, readonly=True, lock=False)
    with env.begin() as txn:
        keys = list(txn.cursor(db=env.open_db(name, txn=txn, create=False)).iternext(values=False))
    env.close()
    return keys


def test_random_operations_under_limits_agree_with_the_memory_store(tmp_path: Path) -> None:
    """LMDB and Memory, one fake clock, one random script of puts in groups, batch
    leases, settles and limits set and lifted: the same answers to everything, held-back
    reasons and waits included."""
    twins = Twins(tmp_path / "env")
    stores, handles = twins.stores, twins.handles
    queue_of: dict[bytes, str] = {}
    rng = random.Random(20261206)
    seen: collections.Counter[str] = collections.Counter()

    def both(action: Callable[[str, QueueStore], object]) -> Any:
        return twins.answer(action)[1]

    def lease(queue: str, n: int, timeout: float) -> Callable[[str, QueueStore], object]:
        def run(name: str, store: QueueStore) -> object:
            rows = store.lease_many(queue, n, lease_timeout=timeout, leased_by="w")
            handles[name].update({row.value: (row.id, row.lease_token) for row in rows})
            return [_shape(row) for row in rows]

        return run

    def settle(value: bytes, kind: str) -> Callable[[str, QueueStore], object]:
        def run(name: str, store: QueueStore) -> object:
            message_id, token = handles[name][value]
            queue = queue_of[value]
            if kind == "ack":
                return store.ack(queue, message_id, token)
            if kind == "release":
                return _shape(store.release(queue, message_id, token, delay=rng_delay))
            if kind == "dead":
                return _shape(store.dead_letter(queue, message_id, token))
            return _shape(store.extend_lease(queue, message_id, token, 4.0))

        return run

    def put(queue: str, values: list[bytes], groups: list[str | None], priority: int) -> Any:
        def run(name: str, store: QueueStore) -> object:
            rows = store.put(queue, values, priority=priority, groups=groups)
            handles[name].update({row.value: (row.id, None) for row in rows})
            return [_shape(row) for row in rows]

        return run

    def replace(queue: str, value: bytes, group: str | None) -> Any:
        """A keyed put that takes the holder of key "k" (a new group too) when waiting."""

        def run(name: str, store: QueueStore) -> object:
            rows, duplicates = store.put_keyed(
                queue, [value], ["k"], on_conflict="replace", groups=[group]
            )
            handles[name].setdefault(rows[0].value, (rows[0].id, None))
            return [_shape(row) for row in rows], duplicates

        return run

    def settle_and_lease(queue: str, values: list[bytes], n: int) -> Any:
        """A worker's batch: ack what it holds of ``values`` and lease ``n`` more."""

        def run(name: str, store: QueueStore) -> object:
            held = [handles[name][value] for value in values]
            done = [Settlement(message_id, token, "acked") for message_id, token in held]
            applied, rows = store.settle_many(queue, done, lease=n, lease_timeout=6.0)
            handles[name].update({row.value: (row.id, row.lease_token) for row in rows})
            return applied, [_shape(row) for row in rows]

        return run

    for step in range(1200):
        queue = rng.choice(QUEUES)
        op = rng.random()
        rng_delay = rng.choice([0.0, 0.0, 2.0])
        if op < 0.25:
            values = [b"%d" % (step * 10 + k) for k in range(rng.choice([1, 2, 4]))]
            groups = [rng.choice(GROUPS) for _ in values]
            queue_of.update(dict.fromkeys(values, queue))
            both(put(queue, values, groups, rng.choice([0, 0, 3])))
        elif op < 0.45:
            leased = both(lease(queue, rng.choice([1, 2, 5]), rng.choice([1.0, 6.0])))
            seen["leased"] += len(leased)
        elif op < 0.5 and queue_of:
            mine = sorted(v for v, q in queue_of.items() if q == queue)
            _, leased = both(settle_and_lease(queue, rng.sample(mine, min(2, len(mine))), 2))
            seen["leased"] += len(leased)
        elif op < 0.52:
            value = b"r%d" % step
            queue_of[value] = queue
            both(replace(queue, value, rng.choice(GROUPS)))
        elif op < 0.7 and queue_of:
            value = rng.choice(sorted(queue_of))
            both(settle(value, rng.choice(["ack", "ack", "release", "dead", "extend"])))
        elif op < 0.78:
            limits = rng.choice(LIMITS)
            both(lambda name, store, q=queue, lim=limits: store.set_limits(q, lim))
        elif op < 0.8:
            both(lambda name, store, q=queue: store.purge(q))
        else:
            twins.now += rng.choice([0.5, 1.0, 2.5])
        for q in QUEUES:
            reason = both(lambda name, store, q=q: store.held_back(q))
            seen[str(reason[0])] += 1
            both(lambda name, store, q=q: store.next_visible_in(q))
            both(lambda name, store, q=q: store.stats(q))
            both(lambda name, store, q=q: store.settings(q))
    stores["lmdb"].close()
    # the script held leases back by every limit, and leased past them too
    assert {"max_inflight", "rate", "per_group"} <= set(seen), seen
    assert seen["leased"] > 200, seen


def test_live_holds_the_leases_of_a_queue_only_while_it_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "env"
    store = LMDBQueueStore(path)
    q = PersistentQueue("jobs", store=store)
    q.put_many(range(4), groups=["g", None, "g", "h"])
    first = q.get_message(block=False)  # leased before any limit: indexed when one is set
    q.set_limits(rate="10/s")
    q.get_message(block=False)
    store.close()
    assert _entries(path, b"live") == []  # a rate alone counts no lease
    q.set_limits(per_group=1, rate=None)
    assert [m.value for m in q.get_messages(4)] == [3]  # "g" is busy with the first one
    store.close()
    assert len(_entries(path, b"live")) == 3
    q.ack(first)
    store.close()
    assert len(_entries(path, b"live")) == 2
    q.set_limits(per_group=None)
    store.close()
    assert _entries(path, b"live") == []
    q.ack(q.get_message(block=False))  # its lease was counted, then unflagged
    assert q.stats().inflight == 2
    store.close()


def test_a_version_4_store_with_settings_migrates_them(tmp_path: Path) -> None:
    """Version 4 kept one byte per queue in ``settings`` (paused); version 5 packs the
    limits beside it. A paused queue and a resumed one keep their pause."""
    path = tmp_path / "env"
    store = LMDBQueueStore(path)
    PersistentQueue("paused", store=store).pause()
    PersistentQueue("resumed", store=store).resume()
    store.close()
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:  # as version 4 wrote them
        meta = env.open_db(b"meta", txn=txn)
        settings = env.open_db(b"settings", txn=txn)
        txn.put(b"version", b"4", db=meta)
        txn.put(b"paused", b"\x01", db=settings)
        txn.put(b"resumed", b"\x00", db=settings)
    env.close()
    store = LMDBQueueStore(path)
    assert store.settings("paused") == QueueSettings(paused=True)
    assert store.settings("resumed") == QueueSettings()
    assert store.set_limits("paused", {"max_inflight": 1}) == QueueSettings(True, 1)
    store.close()

"""The store contract for the history of finished messages (issue 28), run over every
store that keeps one through ``PersistentQueue``: retention is a queue setting; while it
is on, an ack or a dead-letter leaves one record in its own transaction, with every
attempt's error; records past the retention are pruned in batches."""

from __future__ import annotations

import pytest

from localqueue import Empty, PersistentQueue
from localqueue.history import PRUNE_BATCH, Deferred
from localqueue.outcome import Outcome
from localqueue.stores.base import QueueStore
from tests.conftest import Clock, FakeClock

KEEPING = {"sqlite", "memory", "postgres", "lmdb"}


@pytest.fixture
def q(store_kind: str, store: QueueStore) -> PersistentQueue:
    if store_kind not in KEEPING:
        pytest.skip(f"the {store_kind} store keeps no history yet (issue 28: SQLite, Memory)")
    return PersistentQueue("jobs", store=store, lease_timeout=30)


def test_without_retention_an_acked_message_leaves_nothing(q: PersistentQueue) -> None:
    q.put("a")
    q.ack(q.get_message(block=False))
    assert q.retention() == (None, None)
    assert q.history() == []


def test_an_acked_message_leaves_one_record_with_its_fields(q: PersistentQueue) -> None:
    q.keep(7 * 86400)
    assert q.retention() == (7 * 86400, None)
    put = q.put({"order": 812}, key="order-812")
    message = q.get_message(block=False, leased_by="worker-1")
    done = Outcome(message, "acked", duration=0.25, exit_code=0, output="sent\n")
    assert q.settle_many([done]) == ([True], [])
    (record,) = q.history()
    assert record == {
        "id": put.id,
        "queue": "jobs",
        "state": "finished",
        "key": "order-812",
        "value": {"order": 812},
        "status": "acked",
        "attempts": 1,
        "enqueued_at": put.enqueued_at,
        "first_started_at": message.leased_at,
        "finished_at": record["finished_at"],
        "duration": 0.25,
        "worker": "worker-1",
        "exit_code": 0,
        "error": None,
        "errors": [],
        "output": "sent\n",
    }
    assert record["finished_at"] >= message.leased_at
    assert q.finished(put.id) == record
    assert q.inspect(put.id) is None


def test_an_output_is_worked_out_only_for_a_record(q: PersistentQueue, store_kind: str) -> None:
    asked: list[str] = []

    def output(text: str) -> Deferred:
        return Deferred(lambda: asked.append(text) or {"stdout": text})

    q.put_many(["a", "b", "c"])
    first = q.get_message(block=False)
    assert q.settle_many([Outcome(first, "acked", output=output("off"))]) == ([True], [])
    q.keep(count=10)
    second = q.get_message(block=False)
    q.settle_many([Outcome(second, "acked", output=output("on"))])
    third = q.get_message(block=False)
    q.settle_many([Outcome(third, "released", output=output("released"))])
    # No history, or no record: never worked out. PostgreSQL's one settle statement
    # takes the outputs of its acks and dead-letters encoded, records or not.
    assert asked == (["off", "on"] if store_kind == "postgres" else ["on"])
    (record,) = q.history()
    assert (record["id"], record["output"]) == (second.id, {"stdout": "on"})


def test_a_record_holds_every_attempts_error(q: PersistentQueue, clock: Clock) -> None:
    q.keep(count=10)
    put = q.put("job")
    for n in (1, 2):
        q.release(q.get_message(block=False), error=f"try {n}")
    first_started = q.inspect(put.id)
    assert first_started is not None
    q.dead_letter(q.get_message(block=False), error="try 3")
    (record,) = q.history(status="dead")
    assert [e["message"] for e in record["errors"]] == ["try 1", "try 2", "try 3"]
    assert record["error"]["message"] == "try 3"
    assert record["attempts"] == 3
    assert q.dead_letters()[0].id == put.id  # the dead letter stays as it was
    assert q.history(status="acked") == []


def test_a_lost_lease_writes_no_record(q: PersistentQueue, clock: Clock) -> None:
    q.keep(3600)
    q.put("job")
    stale = q.get_message(block=False)
    q.release(stale)
    fresh = q.get_message(block=False)
    assert q.settle_many([Outcome(stale, "acked")]) == ([False], [])
    assert q.history() == []
    q.ack(fresh)
    assert [r["attempts"] for r in q.history()] == [2]


def test_history_is_newest_first_and_filters(q: PersistentQueue, clock: Clock) -> None:
    q.keep(3600)
    ids = []
    for n in range(4):
        ids.append(q.put(n, key=f"k{n}").id)
        message = q.get_message(block=False)
        if n == 2:
            q.dead_letter(message, error="no")
        else:
            q.ack(message)
        clock.advance(1.0)
    assert [r["id"] for r in q.history()] == ids[::-1]
    assert [r["id"] for r in q.history(limit=2)] == [ids[3], ids[2]]
    assert [r["id"] for r in q.history(status="dead")] == [ids[2]]
    assert [r["id"] for r in q.history(key="k1")] == [ids[1]]
    since = q.history()[1]["finished_at"]
    assert [r["id"] for r in q.history(since=since)] == [ids[3], ids[2]]
    with pytest.raises(ValueError, match="status"):
        q.history(status="released")


def test_history_stays_newest_first_over_many_records(q: PersistentQueue, clock: Clock) -> None:
    # More than a batch, acked and dead: a store may keep records of the two apart
    # (SQLite: an acked message finished in place, a dead letter's copied into its
    # history table), and reads must not tell, also at a finish time both share.
    q.keep(3600)
    count = PRUNE_BATCH + PRUNE_BATCH // 2 + 7
    ids = [m.id for m in q.put_many(list(range(count)))]
    for n in range(count):
        message = q.get_message(block=False)
        if n % 10 == 3:
            q.dead_letter(message, error="no")
        else:
            q.settle_many([Outcome(message, "acked", output=n)])
        if n % 2 == 0 and isinstance(clock, FakeClock):
            # pairs finish at one time, (49, 50) too: their order is the settles' (the
            # server's clock moves on between settles by itself)
            clock.advance(1.0)
    assert [r["id"] for r in q.history()] == ids[::-1]
    assert [r["id"] for r in q.history(limit=3)] == ids[:-4:-1]
    assert [r["id"] for r in q.history(status="dead", limit=2)] == [ids[n] for n in (153, 143)]
    for n in (0, count - 1):
        record = q.finished(ids[n])
        assert record is not None and record["output"] == n


def test_retention_by_age_prunes_records_past_it(q: PersistentQueue, clock: Clock) -> None:
    q.keep(2.0)  # real seconds on PostgreSQL
    for n in range(3):
        q.put(n)
        q.ack(q.get_message(block=False))
    clock.advance(2.5)
    # Settling workers prune as they go: within a batch's worth of settlements.
    q.put_many(["late"] * PRUNE_BATCH)
    while messages := q.get_messages(10):
        q.settle_many([Outcome(m, "acked") for m in messages])
    assert {r["value"] for r in q.history()} == {"late"}
    assert len(q.history()) == PRUNE_BATCH


def test_prune_history_deletes_a_batch_past_the_age(
    q: PersistentQueue, store: QueueStore, clock: Clock
) -> None:
    q.keep(2.0)
    q.put_many(list(range(3)))
    q.settle_many([Outcome(m, "acked") for m in q.get_messages(3)])
    assert store.prune_history("jobs") == 0
    clock.advance(2.5)
    assert store.prune_history("jobs") == 3
    assert q.history() == []


def test_retention_by_count_keeps_the_store_within_a_batch_of_it(
    q: PersistentQueue, store: QueueStore
) -> None:
    q.keep(count=10)
    for _ in range(6):
        q.put_many(list(range(50)))
        messages = q.get_messages(50)
        q.settle_many([Outcome(m, "acked") for m in messages])
        assert len(q.history()) <= 10 + PRUNE_BATCH
    while store.prune_history("jobs"):
        pass
    assert [r["value"] for r in q.history()] == list(range(49, 39, -1))


def test_turning_retention_off_stops_records_and_prunes_the_kept(
    q: PersistentQueue, store: QueueStore
) -> None:
    q.keep(3600)
    q.put("kept")
    q.ack(q.get_message(block=False))
    q.keep()
    assert q.retention() == (None, None)
    q.put("not kept")
    q.ack(q.get_message(block=False))
    assert [r["value"] for r in q.history()] == ["kept"]
    assert store.history_queues() == ["jobs"]
    assert store.prune_history("jobs") == 1
    assert q.history() == []


def test_retention_is_per_queue(q: PersistentQueue, store: QueueStore) -> None:
    other = PersistentQueue("other", store=store)
    q.keep(3600)
    for queue in (q, other):
        queue.put("x")
        queue.ack(queue.get_message(block=False))
    assert len(q.history()) == 1 and other.history() == []
    assert other.finished(q.history()[0]["id"]) is None


def test_keep_refuses_a_bad_setting(q: PersistentQueue) -> None:
    with pytest.raises(ValueError, match="duration"):
        q.keep(0)
    with pytest.raises(ValueError, match="count"):
        q.keep(count=0)


def test_retention_and_pause_are_settings_of_one_queue_that_leave_each_other_be(
    q: PersistentQueue, store: QueueStore
) -> None:
    # SQLite and PostgreSQL keep both in one queue_settings row; each upserts its columns.
    q.pause()
    q.keep(3600, count=10)
    assert q.settings().paused and q.retention() == (3600, 10)
    q.put("while paused")
    with pytest.raises(Empty):
        q.get_message(block=False)
    q.resume()
    assert not q.settings().paused and q.retention() == (3600, 10)
    q.ack(q.get_message(block=False))
    q.pause()
    q.keep()
    assert q.settings().paused and q.retention() == (None, None)
    assert [r["value"] for r in q.history()] == ["while paused"]
    paused_only = PersistentQueue("paused-only", store=store)
    paused_only.pause()
    assert paused_only.retention() == (None, None)
    assert store.prune_history("paused-only") == 0

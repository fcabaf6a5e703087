"""The store contract (``localqueue/stores/base.py``), run over every backend through
``PersistentQueue``. Time passes through the ``clock`` fixture (tests/conftest.py): a fake
clock the test moves on the stores that read ``QueueStore.clock``, a wait on the server's
clock on PostgreSQL. No test sleeps: real time passes only in blocking gets under a timeout
and, on PostgreSQL, in ``clock.advance``."""

from __future__ import annotations

import math
import threading
import time

import pytest

from localqueue import (
    Empty,
    Full,
    LeaseLostError,
    MessageNotFoundError,
    PersistentQueue,
    QueueMessage,
)
from localqueue.outcome import Outcome
from localqueue.stores.base import QueueStore
from tests.conftest import Clock

SPEC_FIELDS = [
    "id",
    "queue",
    "value",
    "state",
    "attempts",
    "enqueued_at",
    "available_at",
    "leased_at",
    "lease_expires_at",
    "leased_by",
    "lease_token",
    "last_error",
    "failed_at",
    "dead_at",
    "key",
    "priority",
    "group",
]
# Seconds: a lease or delay that tests move the clock past. Real time on PostgreSQL, so
# long enough that it does not run out between two statements of a test.
SHORT = 1.0
PAST_SHORT = SHORT + 0.1


@pytest.fixture
def q(store: QueueStore) -> PersistentQueue:
    return PersistentQueue("jobs", store=store, lease_timeout=30)


def short_lease_queue(store: QueueStore) -> PersistentQueue:
    """Queue "jobs" leasing for SHORT seconds (a lease a test then lets run out)."""
    return PersistentQueue("jobs", store=store, lease_timeout=SHORT)


# -- put and the message shape ------------------------------------------------------


def test_put_returns_the_spec_shape(q: PersistentQueue) -> None:
    before = time.time()
    message = q.put({"to": "a@b.c", "n": [1, 2.5, None, True]})
    assert list(message.to_dict()) == SPEC_FIELDS
    assert message.value == {"to": "a@b.c", "n": [1, 2.5, None, True]}
    assert message.queue == "jobs"
    assert message.state == "ready"
    assert message.attempts == 0
    assert isinstance(message.id, str) and message.id
    assert before - 1 <= message.enqueued_at <= time.time() + 1
    assert message.available_at == pytest.approx(message.enqueued_at)
    assert message.lease_token is None and message.leased_by is None
    assert q.inspect(message.id) == message


@pytest.mark.parametrize(
    "value", [None, 0, -(2**63), 2**64 - 1, "ünïcode ✓", [], {}, {"a": {"b": [1, {"c": ""}]}}]
)
def test_any_json_value_round_trips(q: PersistentQueue, value: object) -> None:
    q.put(value)
    assert q.get_message(block=False).value == value


def test_ids_are_unique_and_never_reused(q: PersistentQueue) -> None:
    first = q.put(1)
    q.ack(q.get_message(block=False))
    ids = {first.id} | {q.put(i).id for i in range(20)}
    assert len(ids) == 21


def test_fifo_order(q: PersistentQueue) -> None:
    for i in range(10):
        q.put(i)
    assert [q.get_message(block=False).value for _ in range(10)] == list(range(10))


def test_queues_are_isolated(store: QueueStore) -> None:
    a = PersistentQueue("a", store=store)
    b = PersistentQueue("b", store=store)
    message = a.put("for a")
    with pytest.raises(Empty):
        b.get_message(block=False)
    assert b.inspect(message.id) is None
    with pytest.raises((MessageNotFoundError, LeaseLostError)):
        b.ack(message.id)
    assert a.get_message(block=False).value == "for a"


# -- values are checked before anything is written ------------------------------------


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (object(), TypeError),
        ({1: "non-string key"}, TypeError),
        (2**64, TypeError),
        (float("nan"), ValueError),
        ({"x": [math.inf]}, ValueError),
    ],
)
def test_bad_values_raise_and_write_nothing(q: PersistentQueue, bad: object, error: type) -> None:
    with pytest.raises(error):
        q.put(bad)
    with pytest.raises(error):
        q.put_many([1, 2, bad, 4])
    assert q.stats().total == 0


def test_put_many_is_one_batch_in_order(q: PersistentQueue) -> None:
    messages = q.put_many([{"i": i} for i in range(100)])
    assert [m.value for m in messages] == [{"i": i} for i in range(100)]
    assert len({m.id for m in messages}) == 100
    assert q.qsize() == 100
    assert q.put_many([]) == []
    assert [q.get_message(block=False).value["i"] for _ in range(3)] == [0, 1, 2]


def test_negative_durations_are_value_errors(q: PersistentQueue) -> None:
    with pytest.raises(ValueError):
        q.put(1, delay=-1)
    with pytest.raises(ValueError):
        q.put_many([1], delay=-0.5)
    with pytest.raises(ValueError):
        q.get_message(timeout=-1)
    message = q.put(1)
    leased = q.get_message(block=False)
    with pytest.raises(ValueError):
        q.release(leased, delay=-1)
    with pytest.raises(ValueError):
        q.extend_lease(leased, -5)
    with pytest.raises(ValueError):
        q.requeue_dead(message.id, delay=-1)
    with pytest.raises(ValueError):
        PersistentQueue("jobs", store=q.store, lease_timeout=-1)


# -- leasing -----------------------------------------------------------------------------


def test_lease_marks_inflight_with_a_token(q: PersistentQueue) -> None:
    put = q.put("x")
    leased = q.get_message(block=False, leased_by="worker-7")
    assert leased.id == put.id
    assert leased.state == "inflight"
    assert leased.attempts == 1
    assert leased.leased_by == "worker-7"
    assert leased.lease_token
    assert leased.lease_expires_at == pytest.approx(leased.leased_at + 30, abs=0.01)
    assert q.inspect(put.id).state == "inflight"
    with pytest.raises(Empty):
        q.get_message(block=False)  # a live lease is not handed out twice


def test_empty_queue_raises_empty_and_timeout_elapses(q: PersistentQueue) -> None:
    with pytest.raises(Empty):
        q.get_message(block=False)
    started = time.monotonic()
    with pytest.raises(Empty):
        q.get_message(timeout=0.2)
    assert time.monotonic() - started >= 0.2


def test_blocking_get_wakes_when_another_thread_puts(q: PersistentQueue) -> None:
    timer = threading.Timer(0.2, lambda: q.put("late"))
    timer.start()
    try:
        assert q.get_message(timeout=10).value == "late"
    finally:
        timer.join()


def test_expired_lease_is_redelivered_with_new_token(store: QueueStore, clock: Clock) -> None:
    q = short_lease_queue(store)
    q.put("job")
    first = q.get_message(block=False)
    clock.advance(PAST_SHORT)
    assert q.stats().ready == 1  # an expired lease counts as ready
    second = q.get_message(block=False)
    assert second.id == first.id
    assert second.attempts == first.attempts + 1 == 2
    assert second.lease_token != first.lease_token


def test_stale_holder_is_fenced_and_new_holder_acks(q: PersistentQueue, clock: Clock) -> None:
    q.put("job")
    stale = short_lease_queue(q.store).get_message(block=False)
    clock.advance(PAST_SHORT)
    fresh = q.get_message(block=False)
    for settle in (
        lambda: q.ack(stale),
        lambda: q.release(stale, error="x"),
        lambda: q.dead_letter(stale, error="x"),
        lambda: q.extend_lease(stale, 10),
    ):
        with pytest.raises(LeaseLostError):
            settle()
    after = q.inspect(fresh.id)
    assert after.state == "inflight" and after.lease_token == fresh.lease_token
    assert after.last_error is None
    q.ack(fresh)
    assert q.inspect(fresh.id) is None
    assert q.stats().total == 0


def test_settle_many_acks_and_leases_the_next_in_one_call(q: PersistentQueue) -> None:
    first, second = q.put_many(["a", "b"])
    held = q.get_message(block=False)
    assert held.id == first.id
    applied, leased = q.settle_many([Outcome(held, "acked")], lease=1, leased_by="w1")
    assert applied == [True]
    [following] = leased
    assert following.id == second.id
    assert following.state == "inflight" and following.leased_by == "w1"
    assert following.attempts == 1 and following.lease_token
    assert q.inspect(first.id) is None
    assert q.settle_many([Outcome(following, "acked")], lease=1) == ([True], [])
    assert q.stats().total == 0


def test_settle_many_applies_each_outcome_and_skips_lost_leases(
    q: PersistentQueue, clock: Clock
) -> None:
    q.put("stale")
    stale = short_lease_queue(q.store).get_message(block=False)
    clock.advance(PAST_SHORT)
    fresh = q.get_message(block=False)  # the same message, leased again
    done, retry, doomed = q.put_many(["done", "retry", "doomed"])
    held = q.get_messages(3)
    assert [m.id for m in held] == [done.id, retry.id, doomed.id]
    applied, leased = q.settle_many(
        [
            Outcome(held[0], "acked"),
            Outcome(stale, "acked"),
            Outcome(held[1], "released", delay=60, error="flaky"),
            Outcome(held[2], "dead", error={"type": "Boom", "module": None, "message": "x"}),
        ],
        lease=5,
    )
    assert applied == [True, False, True, True]
    assert leased == []  # the release is delayed: nothing else is visible
    assert q.inspect(fresh.id).lease_token == fresh.lease_token
    assert q.inspect(done.id) is None
    released = q.inspect(retry.id)
    assert released.state == "delayed" and released.last_error["message"] == "flaky"
    dead = q.inspect(doomed.id)
    assert dead.state == "dead" and dead.last_error["type"] == "Boom"


def test_get_messages_leases_up_to_n_in_order(q: PersistentQueue) -> None:
    assert q.get_messages(3) == []
    puts = q.put_many(list(range(5)))
    first = q.get_messages(3, leased_by="w")
    assert [m.id for m in first] == [m.id for m in puts[:3]]
    assert all(m.state == "inflight" and m.leased_by == "w" for m in first)
    assert len({m.lease_token for m in first}) == 3
    rest = q.get_messages(10)
    assert [m.id for m in rest] == [m.id for m in puts[3:]]
    assert q.get_messages(0) == []


def test_extend_leases_extends_the_held_and_reports_the_lost(
    q: PersistentQueue, clock: Clock
) -> None:
    q.put("lost")
    stale = short_lease_queue(q.store).get_message(block=False)
    clock.advance(PAST_SHORT)
    q.get_message(block=False)
    q.put("kept")
    kept = q.get_message(block=False)
    before = kept.lease_expires_at
    assert q.extend_leases([stale, kept], 60) == [False, True]
    assert kept.lease_expires_at > before
    assert q.inspect(kept.id).lease_expires_at == kept.lease_expires_at


def test_ack_with_then_put_moves_values_to_the_next_queue(store: QueueStore) -> None:
    q = PersistentQueue("stage1", store=store)
    nxt = PersistentQueue("stage2", store=store)
    q.put({"url": "u"})
    held = q.get_message(block=False)
    q.ack(held, then_put=[{"page": 1}, {"page": 2}], to="stage2")
    assert q.stats().total == 0
    assert [nxt.get_message(block=False).value for _ in range(2)] == [{"page": 1}, {"page": 2}]
    assert store.known_queues() == ["stage1", "stage2"]  # a queue only then_put reached too


def test_ack_with_then_put_on_a_lost_lease_puts_nothing(store: QueueStore, clock: Clock) -> None:
    q = short_lease_queue(store)
    q.put("job")
    stale = q.get_message(block=False)
    clock.advance(PAST_SHORT)
    q.get_message(block=False)
    with pytest.raises(LeaseLostError):
        q.ack(stale, then_put=["result"], to="results")
    assert PersistentQueue("results", store=store).stats().total == 0


def test_ack_twice_is_lease_lost(q: PersistentQueue) -> None:
    q.put(1)
    message = q.get_message(block=False)
    q.ack(message)
    with pytest.raises(LeaseLostError):
        q.ack(message)
    with pytest.raises(LeaseLostError):
        q.release(message)


def test_settling_a_message_that_is_not_inflight_is_refused(q: PersistentQueue) -> None:
    ready = q.put(1)
    with pytest.raises(LeaseLostError):
        q.ack(ready.id)
    with pytest.raises(LeaseLostError):
        q.release(ready.id)
    assert q.inspect(ready.id).state == "ready"


def test_ack_by_id_without_token_and_unknown_ids(q: PersistentQueue) -> None:
    q.put(1)
    leased = q.get_message(block=False)
    with pytest.raises(LeaseLostError):
        q.ack(leased.id, lease_token="not-the-token")
    q.ack(leased.id)
    assert q.stats().total == 0
    with pytest.raises(MessageNotFoundError):
        q.ack("no-such-id")
    with pytest.raises(MessageNotFoundError):
        q.release("no-such-id")
    with pytest.raises(MessageNotFoundError):
        q.requeue_dead("no-such-id")
    assert q.inspect("no-such-id") is None


def test_extend_lease_keeps_the_message(store: QueueStore, clock: Clock) -> None:
    q = short_lease_queue(store)
    q.put("long job")
    message = q.get_message(block=False)
    first_expiry = message.lease_expires_at
    extended = q.extend_lease(message, 10)
    assert extended.lease_token == message.lease_token
    assert extended.lease_expires_at > first_expiry + 5
    assert message.lease_expires_at == extended.lease_expires_at  # the holder's copy follows
    clock.advance(PAST_SHORT)
    with pytest.raises(Empty):
        q.get_message(block=False)
    q.ack(message)


# -- release, delay, dead letters ---------------------------------------------------------


def test_release_with_delay_and_error(q: PersistentQueue, clock: Clock) -> None:
    q.put("job")
    message = q.get_message(block=False)
    try:
        raise ConnectionError("smtp down")
    except ConnectionError as exc:
        released = q.release(message, delay=SHORT, error=exc)
    assert released.state == "delayed"
    assert released.last_error == {
        "type": "ConnectionError",
        "module": "builtins",
        "message": "smtp down",
    }
    assert released.failed_at is not None
    assert released.lease_token is None and released.leased_by is None
    with pytest.raises(Empty):
        q.get_message(block=False)
    assert q.stats().delayed == 1
    clock.advance(PAST_SHORT)
    again = q.get_message(block=False)
    assert again.attempts == 2
    assert again.last_error["message"] == "smtp down"


def test_release_without_delay_is_ready_at_once(q: PersistentQueue) -> None:
    q.put("job")
    q.release(q.get_message(block=False))
    assert q.get_message(block=False).attempts == 2


def test_delayed_put_is_invisible_until_due(q: PersistentQueue, clock: Clock) -> None:
    q.put("later", delay=SHORT)
    now = q.put("now")
    assert q.stats().to_dict() == {"ready": 1, "delayed": 1, "inflight": 0, "dead": 0, "total": 2}
    assert q.get_message(block=False).id == now.id
    with pytest.raises(Empty):
        q.get_message(block=False)
    clock.advance(PAST_SHORT)
    assert q.get_message(block=False).value == "later"


def test_blocking_get_waits_for_a_delayed_message_to_be_due(q: PersistentQueue) -> None:
    q.put("later", delay=0.2)  # the real clock: the blocking get polls next_visible_in
    assert q.get_message(timeout=30).value == "later"


def test_every_timestamp_comes_from_the_store_clock(q: PersistentQueue, clock: Clock) -> None:
    """Where the store takes a fake clock (far from the real time), a single read of
    ``time.time()`` inside it would put a timestamp outside these bounds."""
    start = clock.now()
    put = q.put("x")
    leased = q.get_message(block=False)
    released = q.release(leased, error="e")
    dead = q.dead_letter(q.get_message(block=False))
    revived = q.requeue_dead(dead, delay=60)
    end = clock.now()
    stamps = [put.enqueued_at, put.available_at, leased.leased_at, released.failed_at]
    stamps += [released.available_at, dead.dead_at, revived.available_at - 60]
    assert all(start <= stamp <= end for stamp in stamps), (start, stamps, end)
    assert leased.lease_expires_at == pytest.approx(leased.leased_at + 30)
    assert 0 < q.store.next_visible_in("jobs") <= 60


def test_dead_letter_then_requeue(q: PersistentQueue) -> None:
    put = q.put({"job": 1})
    leased = q.get_message(block=False)
    dead = q.dead_letter(leased, error={"type": "Boom", "module": "x", "message": "no"})
    assert dead.state == "dead" and dead.dead_at is not None
    assert dead.last_error["type"] == "Boom"
    with pytest.raises(Empty):
        q.get_message(block=False)
    assert [m.id for m in q.dead_letters()] == [put.id]
    assert q.stats().dead == 1
    revived = q.requeue_dead(put.id)
    assert revived.state == "ready" and revived.dead_at is None
    assert q.dead_letters() == []
    again = q.get_message(block=False)
    assert again.id == put.id and again.attempts == 2
    with pytest.raises(MessageNotFoundError):
        q.requeue_dead(put.id)  # it is inflight, not dead


def test_requeue_all_dead_and_dead_letters_limit(q: PersistentQueue) -> None:
    for i in range(5):
        q.put(i)
    for _ in range(5):
        q.dead_letter(q.get_message(block=False), error="bad")
    assert [m.value for m in q.dead_letters()] == [0, 1, 2, 3, 4]
    assert [m.value for m in q.dead_letters(limit=2)] == [0, 1]
    assert q.requeue_all_dead() == 5
    assert q.requeue_all_dead() == 0
    assert q.stats().ready == 5


def test_requeue_dead_with_delay(q: PersistentQueue) -> None:
    q.put(1)
    message = q.dead_letter(q.get_message(block=False))
    assert q.requeue_dead(message, delay=60).state == "delayed"
    with pytest.raises(Empty):
        q.get_message(block=False)


# -- counts, sizes, housekeeping ----------------------------------------------------------


def test_stats_and_queues(store: QueueStore) -> None:
    q = PersistentQueue("jobs", store=store)
    other = PersistentQueue("other", store=store)
    for i in range(4):
        q.put(i)
    q.put("later", delay=60)
    q.get_message(block=False)
    q.dead_letter(q.get_message(block=False))
    other.put("x")
    assert q.stats().to_dict() == {"ready": 2, "delayed": 1, "inflight": 1, "dead": 1, "total": 5}
    listing = store.queues()
    assert list(listing) == ["jobs", "other"]
    assert listing["jobs"] == q.stats()
    assert listing["other"].ready == 1
    assert PersistentQueue("unknown", store=store).stats().total == 0


def test_known_queues_remember_drained_queues(store: QueueStore) -> None:
    assert store.known_queues() == []
    jobs = PersistentQueue("jobs", store=store)
    jobs.put_many([1, 2])
    PersistentQueue("alpha", store=store).put("x")
    jobs.ack(jobs.get_message(block=False))
    jobs.dead_letter(jobs.get_message(block=False))
    assert jobs.purge() == 1
    PersistentQueue("alpha", store=store).purge()
    PersistentQueue("never-put", store=store).stats()  # reading a name does not record it
    assert store.queues() == {}
    assert store.known_queues() == ["alpha", "jobs"]


def test_peek_lists_messages_by_state_in_enqueue_order_without_leasing(store: QueueStore) -> None:
    q = PersistentQueue("jobs", store=store)
    _, delayed, _, _ = (q.put(i) for i in ("ready", "delayed", "leased", "dead"))
    q.release(q.get_message(block=False), delay=60)  # "ready" leased, then delayed
    q.put("other", delay=0)
    PersistentQueue("elsewhere", store=store).put("not ours")
    held = q.get_message(block=False)  # "delayed" (the first still ready one)
    assert held.id == delayed.id
    q.dead_letter(q.get_message(block=False))  # "leased"
    every = q.peek()
    assert [m.value for m in every] == ["ready", "delayed", "leased", "dead", "other"]
    assert [m.state for m in every] == ["delayed", "inflight", "dead", "ready", "ready"]
    assert [m.value for m in q.peek("ready")] == ["dead", "other"]
    assert [m.value for m in q.peek("delayed")] == ["ready"]
    assert [m.value for m in q.peek("inflight")] == ["delayed"]
    assert [m.value for m in q.peek("dead")] == ["leased"]
    assert [m.value for m in q.peek(limit=2)] == ["ready", "delayed"]
    assert q.peek("ready", limit=0) == []
    assert q.peek() == every  # nothing was leased or changed
    assert PersistentQueue("empty", store=store).peek() == []
    with pytest.raises(ValueError):
        q.peek("sleeping")


def test_delete_removes_messages_in_any_state_all_or_nothing(store: QueueStore) -> None:
    q = PersistentQueue("jobs", store=store)
    a, b, c, d = q.put_many(["a", "b", "c", "d"])
    held = q.get_message(block=False)  # a, inflight
    q.dead_letter(q.get_message(block=False))  # b, dead
    other = PersistentQueue("other", store=store).put("x")
    with pytest.raises(MessageNotFoundError, match="nope"):
        q.delete(c.id, "nope")
    with pytest.raises(MessageNotFoundError):
        q.delete(other.id)  # another queue's message
    assert q.stats().total == 4  # nothing deleted
    assert q.delete(a.id, b.id, c.id, c.id) == 3
    assert [m.id for m in q.peek()] == [d.id]
    with pytest.raises(LeaseLostError):
        q.ack(held)
    assert PersistentQueue("other", store=store).stats().total == 1


def test_qsize_empty_full_and_maxsize(store: QueueStore) -> None:
    q = PersistentQueue("bounded", store=store, maxsize=2)
    assert q.empty() and not q.full() and q.qsize() == 0
    q.put(1)
    q.put(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(Full):
        q.put(3, timeout=0.05)
    with pytest.raises(Full):
        q.put_many([3])
    assert q.qsize() == 2
    q.get_message(block=False)
    q.put(3)  # the leased one no longer counts as pending
    assert q.qsize() == 2


def test_put_encoded_stores_json_as_given_and_returns_its_rows(store: QueueStore) -> None:
    q = PersistentQueue("encoded", store=store, maxsize=2)
    rows, _ = q.put_encoded([b'{"a":1}', b"[2]"], delay=0)
    assert [row.value for row in rows] == [b'{"a":1}', b"[2]"]
    assert [m.value for m in q.peek()] == [{"a": 1}, [2]]
    assert [m.id for m in q.peek()] == [row.id for row in rows]
    with pytest.raises(Full):
        q.put_encoded([b"3"])
    assert q.qsize() == 2


def test_get_and_task_done(q: PersistentQueue) -> None:
    q.put("a")
    q.put("b")
    assert q.get_nowait() == "a"
    assert q.get() == "b"
    q.task_done()
    q.task_done()
    assert q.stats().total == 0
    with pytest.raises(ValueError):
        q.task_done()


def test_purge(q: PersistentQueue) -> None:
    for i in range(3):
        q.put(i)
    q.dead_letter(q.get_message(block=False))
    q.get_message(block=False)
    assert q.purge(dead_only=True) == 1
    assert q.stats().to_dict()["dead"] == 0
    assert q.purge() == 2
    assert q.stats().total == 0
    assert q.purge() == 0


def test_next_visible_in(store: QueueStore) -> None:
    assert store.next_visible_in("jobs") is None
    q = PersistentQueue("jobs", store=store)
    q.put(1, delay=60)
    assert 55 < store.next_visible_in("jobs") <= 60
    q.put(2)
    assert store.next_visible_in("jobs") == 0


def test_inspect_reflects_every_state(q: PersistentQueue) -> None:
    message = q.put("x", delay=60)
    assert q.inspect(message.id).state == "delayed"
    assert isinstance(q.inspect(message.id), QueueMessage)

"""The store contract for deduplication keys, priorities and ``at`` (issue 26), run over
every backend through ``PersistentQueue`` like ``test_contract.py``: a key is held while
its message is ready, delayed or inflight, and free after ack, dead-letter, delete and
purge; leasing takes the highest priority first, the oldest first within one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from localqueue import KeyHeldError, PersistentQueue
from localqueue.outcome import Settlement
from localqueue.stores.base import QueueStore
from tests.conftest import Clock
from tests.stores.test_contract import PAST_SHORT, SHORT, short_lease_queue


@pytest.fixture
def q(store: QueueStore) -> PersistentQueue:
    return PersistentQueue("jobs", store=store, lease_timeout=30)


# -- keys: skip, error, replace ------------------------------------------------------


def test_a_keyed_put_shows_its_key_and_a_second_one_is_a_duplicate(q: PersistentQueue) -> None:
    first = q.put({"n": 1}, key="account-42")
    assert first.key == "account-42" and not first.duplicate
    again = q.put({"n": 2}, key="account-42")
    assert again.duplicate
    assert again.id == first.id and again.value == {"n": 1}
    assert [m.id for m in q.peek()] == [first.id]
    assert q.inspect(first.id) == first


def test_keys_are_per_queue(store: QueueStore) -> None:
    a = PersistentQueue("a", store=store).put(1, key="k")
    b = PersistentQueue("b", store=store).put(2, key="k")
    assert not a.duplicate and not b.duplicate and a.id != b.id


def test_on_conflict_error_writes_nothing_of_the_call(q: PersistentQueue) -> None:
    held = q.put("first", key="k1")
    with pytest.raises(KeyHeldError) as raised:
        q.put_many(["new", "clash"], keys=["k2", "k1"], on_conflict="error")
    assert raised.value.key == "k1" and raised.value.message_id == held.id
    assert "k1" in str(raised.value)
    assert [m.id for m in q.peek()] == [held.id]
    assert q.put("k2 is still free", key="k2", on_conflict="error").key == "k2"


def test_replace_gives_a_waiting_message_the_new_value_priority_and_time(
    q: PersistentQueue,
) -> None:
    delayed = q.put("old", key="k", delay=3600)
    assert delayed.state == "delayed"
    replaced = q.put("new", key="k", on_conflict="replace", priority=5)
    assert not replaced.duplicate
    assert replaced.id == delayed.id and replaced.enqueued_at == delayed.enqueued_at
    stored = q.inspect(delayed.id)
    assert stored is not None
    assert (stored.value, stored.priority, stored.state) == ("new", 5, "ready")
    assert [m.id for m in q.peek()] == [delayed.id]


def test_replace_leaves_an_inflight_message_alone_and_reports_a_duplicate(
    q: PersistentQueue,
) -> None:
    q.put("old", key="k")
    leased = q.get_message(block=False)
    again = q.put("new", key="k", on_conflict="replace")
    assert again.duplicate and again.id == leased.id
    assert again.value == "old" and again.state == "inflight"
    assert again.lease_token == leased.lease_token
    q.ack(leased)


@pytest.mark.parametrize("on_conflict", ["skip", "replace"])
def test_the_same_key_twice_in_one_batch_meets_its_first_message(
    q: PersistentQueue, on_conflict: str
) -> None:
    got = q.put_many(["a", "b", "c"], keys=["x", "y", "x"], on_conflict=on_conflict)  # type: ignore[arg-type]
    assert got[2].id == got[0].id
    assert [m.duplicate for m in got] == [False, False, on_conflict == "skip"]
    expected = {"skip": "a", "replace": "c"}[on_conflict]
    assert [m.value for m in q.peek()] == [expected, "b"]


def test_the_same_key_twice_in_one_batch_with_error_writes_nothing(q: PersistentQueue) -> None:
    with pytest.raises(KeyHeldError):
        q.put_many(["a", "b"], keys=["x", "x"], on_conflict="error")
    assert q.peek() == []
    assert q.put("a", key="x", on_conflict="error").key == "x"


def test_keyless_values_mix_with_keyed_ones_in_a_batch(q: PersistentQueue) -> None:
    got = q.put_many([1, 2, 3], keys=[None, "k", None])
    assert [m.key for m in got] == [None, "k", None]
    assert q.qsize() == 3


def test_bad_keyed_calls_are_value_errors(q: PersistentQueue) -> None:
    with pytest.raises(ValueError, match="one key per value"):
        q.put_many([1, 2], keys=["a"])
    with pytest.raises(ValueError, match="on_conflict"):
        q.put(1, key="a", on_conflict="ignore")  # type: ignore[arg-type]
    assert q.peek() == []


# -- which states hold a key -----------------------------------------------------------


def _held(q: PersistentQueue, key: str) -> bool:
    """Whether ``key`` is held now (a put of it would be a duplicate); nothing changes."""
    try:
        q.put("probe", key=key, on_conflict="error")
    except KeyHeldError:
        return True
    q.purge()  # the probe took the key: drop everything again (tests keep the queue empty)
    return False


def test_a_key_is_held_while_ready_delayed_and_inflight_also_when_expired(
    store: QueueStore, clock: Clock
) -> None:
    q = short_lease_queue(store)
    q.put("v", key="delayed", delay=3600)
    assert _held(q, "delayed")
    q.purge()
    q.put("v", key="k")
    assert _held(q, "k")  # ready
    q.get_message(block=False)
    assert _held(q, "k")  # inflight
    clock.advance(PAST_SHORT)
    assert q.peek()[0].state == "ready"  # an expired lease
    assert _held(q, "k")


def test_a_key_is_free_after_ack_dead_letter_delete_and_purge(q: PersistentQueue) -> None:
    q.put("v", key="k")
    q.ack(q.get_message(block=False))
    assert not _held(q, "k")
    q.put("v", key="k")
    q.dead_letter(q.get_message(block=False), error="boom")
    dead = q.dead_letters()[0]
    assert dead.key == "k"  # kept for inspection
    fresh = q.put("again", key="k")
    assert not fresh.duplicate
    q.delete(fresh.id)
    q.purge(dead_only=True)
    assert not _held(q, "k")
    q.put("v", key="k")
    q.purge()
    assert not _held(q, "k")


def test_requeue_dead_is_refused_while_another_message_holds_its_key(q: PersistentQueue) -> None:
    q.put("first", key="k")
    q.dead_letter(q.get_message(block=False))
    dead = q.dead_letters()[0]
    holder = q.put("second", key="k")
    with pytest.raises(KeyHeldError) as raised:
        q.requeue_dead(dead)
    assert raised.value.message_id == holder.id
    with pytest.raises(KeyHeldError):
        q.requeue_all_dead()
    assert q.stats().dead == 1 and q.stats().ready == 1
    q.ack(q.get_message(block=False))
    revived = q.requeue_dead(dead)
    assert revived.key == "k" and revived.state == "ready"
    assert _held(q, "k")


def test_requeue_all_dead_refuses_two_dead_letters_of_one_key(q: PersistentQueue) -> None:
    for _ in range(2):
        q.put("v", key="k")
        q.dead_letter(q.get_message(block=False))
    with pytest.raises(KeyHeldError):
        q.requeue_all_dead()
    assert q.stats().dead == 2
    q.put("other", key="free")
    q.dead_letter(q.get_message(block=False))
    assert q.stats().dead == 3


def test_settle_many_then_put_and_release_keep_key_and_priority(q: PersistentQueue) -> None:
    q.put("v", key="k", priority=7)
    leased = q.get_message(block=False)
    q.release(leased, error="try again")
    again = q.get_message(block=False)
    assert (again.key, again.priority, again.attempts) == ("k", 7, 2)
    applied, _ = q.store.settle_many("jobs", [Settlement(again.id, again.lease_token, "acked")])
    assert applied == [True]
    assert not _held(q, "k")


# -- priorities --------------------------------------------------------------------------


def test_leasing_takes_the_highest_priority_first_and_the_oldest_within_one(
    q: PersistentQueue,
) -> None:
    for value, priority in [("low", -1), ("a0", 0), ("a5", 5), ("b0", 0), ("b5", 5), ("top", 9)]:
        q.put(value, priority=priority)
    assert [m.value for m in q.peek()] == ["top", "a5", "b5", "a0", "b0", "low"]
    assert [m.priority for m in q.peek()] == [9, 5, 5, 0, 0, -1]
    got = [q.get_message(block=False).value for _ in range(6)]
    assert got == ["top", "a5", "b5", "a0", "b0", "low"]


def test_a_batch_lease_follows_priorities(store: QueueStore) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put_many(["a", "b"], priority=1)
    q.put_many(["c", "d"], priority=3)
    rows = store.lease_many("jobs", 3, lease_timeout=30, leased_by="w")
    assert [row.value for row in rows] == [b'"c"', b'"d"', b'"a"']
    _, more = store.settle_many(
        "jobs", [Settlement(rows[0].id, rows[0].lease_token, "acked")], lease=5
    )
    assert [row.value for row in more] == [b'"b"']


def test_delayed_messages_of_a_higher_priority_do_not_block_ready_ones(
    store: QueueStore, clock: Clock
) -> None:
    q = PersistentQueue("jobs", store=store)
    q.put("later", priority=9, delay=SHORT)
    q.put("now", priority=1)
    assert q.get_message(block=False).value == "now"
    assert q.store.next_visible_in("jobs") is not None
    clock.advance(PAST_SHORT)
    assert q.get_message(block=False).value == "later"


def test_a_released_message_keeps_its_priority(q: PersistentQueue) -> None:
    q.put("hi", priority=2)
    q.put("lo")
    q.release(q.get_message(block=False))
    assert q.get_message(block=False).value == "hi"


# -- at -----------------------------------------------------------------------------------


def test_at_delivers_no_sooner_than_an_aware_time(store: QueueStore, clock: Clock) -> None:
    q = PersistentQueue("jobs", store=store)
    when = datetime.fromtimestamp(clock.now() + SHORT, tz=timezone(timedelta(hours=1)))
    message = q.put("x", at=when)
    assert message.state == "delayed"
    assert message.available_at == pytest.approx(when.timestamp(), abs=0.5)
    clock.advance(PAST_SHORT)
    assert q.get_message(block=False).value == "x"


def test_at_in_the_past_is_ready_now(q: PersistentQueue) -> None:
    message = q.put("x", at=datetime(2001, 1, 1, tzinfo=UTC))
    assert message.state == "ready"
    assert q.put_many(["y"], at=datetime(2001, 1, 1, tzinfo=UTC))[0].state == "ready"


def test_at_must_be_aware_and_is_exclusive_with_delay(q: PersistentQueue) -> None:
    with pytest.raises(ValueError, match="timezone"):
        q.put("x", at=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="not both"):
        q.put("x", delay=5, at=datetime(2030, 1, 1, tzinfo=UTC))
    assert q.peek() == []


def test_a_priority_must_be_a_64_bit_int_and_a_key_a_string(q: PersistentQueue) -> None:
    with pytest.raises(TypeError):
        q.put(1, priority=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        q.put(1, priority=True)
    with pytest.raises(ValueError, match="64 bits"):
        q.put_many([1], priority=2**63)
    with pytest.raises(TypeError):
        q.put(1, key=42)  # type: ignore[arg-type]
    assert q.peek() == []
    assert q.put(1, priority=2**63 - 1).priority == 2**63 - 1
    assert q.put(2, priority=-(2**63)).priority == -(2**63)
    assert [m.value for m in q.peek()] == [1, 2]

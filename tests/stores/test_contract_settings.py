"""Queue settings in the store contract (``localqueue/stores/base.py``, "Queue
settings"), run over every backend: a paused queue leases nothing to anyone, by every
lease path, until it is resumed; the settings are kept by the store itself."""

from __future__ import annotations

import threading

import pytest

from localqueue import Empty, PersistentQueue, QueueSettings
from localqueue.outcome import Outcome
from localqueue.stores.base import QueueStore


@pytest.fixture
def q(store: QueueStore) -> PersistentQueue:
    return PersistentQueue("jobs", store=store, lease_timeout=30)


def test_a_queue_never_given_settings_has_the_defaults(q: PersistentQueue) -> None:
    assert q.settings() == QueueSettings(paused=False)
    assert q.settings()._asdict() == {
        "paused": False,
        "max_inflight": None,
        "rate": None,
        "rate_period": None,
        "per_group": None,
    }


def test_a_paused_queue_leases_nothing_by_any_lease_path(q: PersistentQueue) -> None:
    q.put_many([1, 2, 3])
    assert q.pause() == QueueSettings(paused=True)
    assert q.settings().paused
    with pytest.raises(Empty):
        q.get_message(block=False)
    with pytest.raises(Empty):
        q.get_message(timeout=0.05)
    assert q.get_messages(3) == []
    assert q.settle_many([], lease=3) == ([], [])
    # A waiting consumer is told nothing is due, so it does not poll hard meanwhile.
    assert q.store.next_visible_in("jobs") is None
    assert q.stats().ready == 3  # nothing was leased, nothing else changed


def test_put_still_works_on_a_paused_queue_and_resume_leases_again(
    q: PersistentQueue,
) -> None:
    q.pause()
    q.put("a")
    q.put_many(["b", "c"])
    assert q.resume() == QueueSettings(paused=False)
    assert [m.value for m in q.get_messages(3)] == ["a", "b", "c"]


def test_a_running_job_of_a_paused_queue_still_settles_and_leases_nothing_more(
    q: PersistentQueue,
) -> None:
    q.put_many([1, 2, 3])
    first, second = q.get_messages(2)
    q.pause()
    assert q.extend_lease(second, 60).state == "inflight"  # its heartbeat goes on
    assert q.settle_many([Outcome(first, "acked")], lease=2) == ([True], [])
    q.release(second)
    assert (q.stats().inflight, q.stats().ready) == (0, 2)
    assert q.get_messages(5) == []


def test_pausing_one_queue_leaves_the_others_alone(store: QueueStore) -> None:
    jobs = PersistentQueue("jobs", store=store)
    other = PersistentQueue("other", store=store)
    jobs.put(1)
    other.put(2)
    jobs.pause()
    assert other.get_message(block=False).value == 2
    assert not other.settings().paused
    with pytest.raises(Empty):
        jobs.get_message(block=False)


def test_the_settings_are_kept_by_the_store_for_a_queue_object_made_later(
    store: QueueStore,
) -> None:
    PersistentQueue("jobs", store=store).pause()
    later = PersistentQueue("jobs", store=store)
    later.put(1)
    assert later.settings().paused
    with pytest.raises(Empty):
        later.get_message(block=False)


def test_a_consumer_blocked_on_a_paused_queue_leases_once_it_is_resumed(
    q: PersistentQueue,
) -> None:
    q.put("waiting")
    q.pause()
    got: list[object] = []
    consumer = threading.Thread(target=lambda: got.append(q.get_message(timeout=30).value))
    consumer.start()
    try:
        with pytest.raises(Empty):  # still paused: the consumer is still waiting
            q.get_message(block=False)
        assert got == []
    finally:
        q.resume()
        consumer.join(30)
    assert got == ["waiting"]

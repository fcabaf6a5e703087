"""Queue limits and groups in the store contract (``localqueue/stores/base.py``, "Queue
settings", issue 27), run over every backend: ``max_inflight``, ``rate`` and
``per_group`` hold leases back by every lease path, count only live leases, are kept by
the store, and say what holds ready messages back."""

from __future__ import annotations

import pytest

from localqueue import PersistentQueue, QueueSettings
from localqueue.outcome import Outcome
from localqueue.stores.base import QueueStore
from tests.conftest import Clock
from tests.stores.test_contract import PAST_SHORT, SHORT, short_lease_queue


@pytest.fixture
def q(store: QueueStore) -> PersistentQueue:
    return PersistentQueue("jobs", store=store, lease_timeout=30)


def test_a_queue_has_no_limits_until_given_and_keeps_the_ones_not_named(
    q: PersistentQueue,
) -> None:
    assert q.limits() == {
        "max_inflight": None,
        "rate": None,
        "rate_period": None,
        "per_group": None,
    }
    q.set_limits(max_inflight=3)
    q.set_limits(rate="10/m")
    assert q.set_limits(per_group=1) == QueueSettings(
        paused=False, max_inflight=3, rate=10, rate_period=60.0, per_group=1
    )
    q.pause()
    assert q.settings().max_inflight == 3  # pausing keeps the limits, and back
    q.set_limits(max_inflight=None)
    assert q.settings() == QueueSettings(True, None, 10, 60.0, 1)
    assert q.store.held_back("jobs") == (None, 0)  # nothing ready: nothing held


@pytest.mark.parametrize(
    "limits",
    [{"max_inflight": 0}, {"per_group": -1}, {"max_inflight": 1.5}, {"rate": "10/d"}],
)
def test_a_bad_limit_is_refused_and_changes_nothing(
    q: PersistentQueue, limits: dict[str, object]
) -> None:
    q.set_limits(max_inflight=2)
    with pytest.raises(ValueError):
        q.set_limits(**limits)  # type: ignore[arg-type]
    assert q.settings() == QueueSettings(max_inflight=2)


def test_max_inflight_holds_leases_back_by_every_lease_path(q: PersistentQueue) -> None:
    q.put_many(range(6))
    q.set_limits(max_inflight=2)
    first = q.get_messages(5)
    assert [m.value for m in first] == [0, 1]
    assert q.get_messages(1) == []
    assert q.settle_many([], lease=3) == ([], [])
    assert q.store.held_back("jobs") == ("max_inflight", 4)
    applied, leased = q.settle_many([Outcome(first[0], "acked")], lease=3)
    assert applied == [True] and [m.value for m in leased] == [2]
    q.set_limits(max_inflight=None)
    assert [m.value for m in q.get_messages(5)] == [3, 4, 5]


def test_an_expired_lease_frees_its_inflight_slot(store: QueueStore, clock: Clock) -> None:
    q = short_lease_queue(store)
    q.put_many(["a", "b"])
    q.set_limits(max_inflight=1)
    assert [m.value for m in q.get_messages(2)] == ["a"]
    clock.advance(PAST_SHORT)  # its holder died: the lease runs out
    # One slot again: "b" (visible since its enqueue, before "a"'s lease ended) takes it.
    assert [m.value for m in q.get_messages(2)] == ["b"]
    assert q.get_messages(1) == []


def test_the_rate_spreads_lease_starts_over_its_period(store: QueueStore, clock: Clock) -> None:
    q = short_lease_queue(store)
    q.put_many(range(5))
    q.set_limits(rate=(2, 2 * SHORT))  # 2 per 2 s: one start per second at most
    leased = q.get_messages(5)
    assert [m.value for m in leased] == [0]
    q.ack(leased[0])
    assert q.get_messages(1) == []  # settling does not give a start back
    assert q.store.held_back("jobs") == ("rate", 4)
    due = q.store.next_visible_in("jobs")
    assert due is not None and 0 < due <= SHORT
    clock.advance(PAST_SHORT)
    assert q.store.next_visible_in("jobs") == 0.0
    (released,) = q.get_messages(5)
    assert released.value == 1
    q.release(released)  # its next lease is a new start
    assert q.get_messages(5) == []
    clock.advance(PAST_SHORT)
    assert [m.value for m in q.get_messages(5)] == [2]
    q.set_limits(rate=None)
    assert sorted(m.value for m in q.get_messages(5)) == [1, 3, 4]


def test_a_rate_set_anew_starts_its_pacing_afresh(q: PersistentQueue) -> None:
    q.put_many(range(3))
    q.set_limits(rate="1/h")
    assert len(q.get_messages(3)) == 1  # the next start is an hour away
    assert q.get_messages(3) == []
    q.set_limits(max_inflight=5)  # other limits keep the rate's pace
    assert q.get_messages(3) == []
    q.set_limits(rate="100/s")  # not held back by the slower rate's next start
    assert len(q.get_messages(3)) == 1


def test_per_group_holds_a_busy_group_and_never_the_others(q: PersistentQueue) -> None:
    q.put_many(["a1", "a2", "b1", "n1", "a3", "b2"], groups=["a", "a", "b", None, "a", "b"])
    q.set_limits(per_group=1)
    leased = q.get_messages(6)
    assert [(m.value, m.group) for m in leased] == [("a1", "a"), ("b1", "b"), ("n1", None)]
    assert q.get_messages(6) == []
    assert q.store.held_back("jobs") == ("per_group", 3)
    q.ack(leased[0])
    assert [m.value for m in q.get_messages(6)] == ["a2"]  # one of "a" again, the oldest


def test_a_delayed_or_released_message_does_not_hold_its_group(q: PersistentQueue) -> None:
    q.put("a1", group="a")
    q.set_limits(per_group=1)
    first = q.get_message(block=False)
    q.put("a2", group="a")
    assert q.get_messages(1) == []
    q.release(first, delay=3600)  # retried later: "a" is free meanwhile
    assert [m.value for m in q.get_messages(2)] == ["a2"]
    q.put("a3", group="a", delay=3600)
    assert q.store.held_back("jobs") == (None, 0)  # delayed: not held back by anything


def test_a_group_is_freed_when_its_lease_expires(store: QueueStore, clock: Clock) -> None:
    q = short_lease_queue(store)
    q.put_many(["a1", "a2"], groups=["a", "a"])
    q.set_limits(per_group=1)
    assert [m.value for m in q.get_messages(2)] == ["a1"]
    clock.advance(PAST_SHORT)
    # "a" is free again: one of it is leased ("a2", visible before "a1"'s lease ended).
    assert [m.value for m in q.get_messages(2)] == ["a2"]


def test_a_message_shows_its_group_and_a_replace_takes_the_new_one(q: PersistentQueue) -> None:
    m = q.put({"n": 1}, key="k", group="old")
    assert m.group == "old" and m.to_dict()["group"] == "old"
    q.put({"n": 2}, key="k", on_conflict="replace", group="new")
    (peeked,) = q.peek()
    assert (peeked.value, peeked.group) == ({"n": 2}, "new")
    assert q.put("plain").group is None


def test_groups_must_be_one_per_value_and_strings(q: PersistentQueue) -> None:
    with pytest.raises(ValueError, match="groups"):
        q.put_many([1, 2], groups=["a"])
    with pytest.raises(TypeError, match="group"):
        q.put(1, group=7)  # type: ignore[arg-type]
    assert q.stats().total == 0


def test_limits_combine_with_a_pause_and_priorities(q: PersistentQueue) -> None:
    q.put_many(["low"], groups=["g"])
    q.put_many(["high"], groups=["g"], priority=5)
    q.put("other", group="h")
    q.set_limits(per_group=1, max_inflight=2)
    q.pause()
    assert q.store.held_back("jobs") == ("paused", 3)
    q.resume()
    assert [m.value for m in q.get_messages(3)] == ["high", "other"]
    assert q.store.held_back("jobs") == ("max_inflight", 1)

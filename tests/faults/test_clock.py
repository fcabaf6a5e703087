"""The wall clock steps an hour forward or back under live leases.
Nothing stays stuck longer than its lease timeout, and stale holders are fenced."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from localqueue import LeaseLostError, PersistentQueue
from localqueue.stores.sqlite import SQLiteQueueStore


def _jump(store: SQLiteQueueStore, seconds: float) -> None:
    store.clock = lambda: time.time() + seconds  # type: ignore[method-assign]


def test_clock_stepping_back_an_hour_does_not_strand_a_lease(tmp_path: Path) -> None:
    store = SQLiteQueueStore(tmp_path / "q.sqlite3")
    q = PersistentQueue("jobs", store=store, lease_timeout=1.0)
    q.put("job")
    holder = q.get_message(block=False)
    _jump(store, -3600)
    again = q.get_message(timeout=5)  # Empty after 5 s: it would wait an hour without the rebase
    assert again.id == holder.id and again.attempts == 2
    with pytest.raises(LeaseLostError):
        q.ack(holder)
    q.ack(again)
    assert q.stats().total == 0


def test_a_fresh_process_after_a_step_back_also_rebases(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    q = PersistentQueue("jobs", path, lease_timeout=1.0)
    q.put("job")
    holder = q.get_message(block=False)
    q.close()
    later = SQLiteQueueStore(path)  # started after the step: it never saw the old time
    _jump(later, -3600)
    later._skew = later.clock() - time.monotonic()  # as if it had always had this clock
    again = PersistentQueue("jobs", store=later, lease_timeout=1.0).get_message(timeout=10)
    assert again.id == holder.id


def test_clock_stepping_forward_expires_leases_and_fences_the_old_holder(tmp_path: Path) -> None:
    store = SQLiteQueueStore(tmp_path / "q.sqlite3")
    q = PersistentQueue("jobs", store=store, lease_timeout=30.0)
    q.put("job")
    holder = q.get_message(block=False)
    _jump(store, +3600)
    again = q.get_message(block=False)  # the lease looks an hour old: it is reclaimed
    assert again.id == holder.id and again.lease_token != holder.lease_token
    for stale in (lambda: q.ack(holder), lambda: q.extend_lease(holder, 30)):
        with pytest.raises(LeaseLostError):
            stale()
    q.ack(again)
